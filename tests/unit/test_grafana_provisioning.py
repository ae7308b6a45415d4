"""The provisioning files parse, reference what exists, follow Grafana's rules and are up to date."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pytest
import yaml
from support.shared_data import SHARED

from toolkit.grafana import build
from toolkit.grafana.provisioning import (
    DATASOURCES_DIR,
    ProvisioningError,
    annotation_targets,
    dashboard_files,
    load_alert_rules,
    load_alerting,
    load_dashboard,
    load_dashboards,
    load_datasources,
    panel_targets,
)
from vigil import schema as s
from vigil.settings import PROJECT_ROOT, Settings

SCHEMAS = SHARED / "reference" / "grafana-schemas"


def test_generated_files_are_up_to_date() -> None:
    stale = [
        str(p.relative_to(PROJECT_ROOT)) for p, text in build.render_all().items() if p.read_text() != text
    ]
    assert not stale, f"run `python -m toolkit.grafana.build`: {stale} differ from the generator"


def test_every_provisioning_file_parses_with_api_version_1() -> None:
    yamls = sorted((PROJECT_ROOT / "grafana" / "provisioning").rglob("*.yaml"))
    assert len(yamls) >= 5
    for path in yamls:
        assert yaml.safe_load(path.read_text())["apiVersion"] == 1, path
    assert len(load_dashboards()) == 3


def test_datasources_have_fixed_uids_credentials_from_env_and_match_settings() -> None:
    sources = {d["uid"]: d for d in load_datasources()}
    assert set(sources) == {build.RAW_DS_UID, build.VIGIL_DS_UID}
    defaults = Settings(_env_file=None)
    assert sources[build.RAW_DS_UID]["jsonData"]["dbName"] == defaults.influx.raw_db
    assert sources[build.VIGIL_DS_UID]["jsonData"]["dbName"] == defaults.influx.vigil_db
    text = (DATASOURCES_DIR / "influxdb.yaml").read_text()
    for ds in sources.values():
        assert ds["type"] == "influxdb" and ds["access"] == "proxy"
        assert ds["jsonData"]["httpMode"] == "GET" and ds["jsonData"]["version"] == "InfluxQL"
        assert ds["secureJsonData"]["password"] == "${VIGIL_INFLUX_PASSWORD}"
        assert ds["user"] == "${VIGIL_INFLUX_USERNAME}" and ds["url"] == "${VIGIL_INFLUX_URL}"
    assert "password:" in text and not re.search(r"password:\s*[^$\s]", text), "no literal secret"


def test_dashboards_validate_against_grafana_schema_and_uids_are_unique() -> None:
    schema = json.loads((SCHEMAS / "dashboard.jsonschema.json").read_text())
    dashboards = load_dashboards()
    uids = [d["uid"] for d in dashboards]
    assert len(uids) == len(set(uids))
    for d in dashboards:
        jsonschema.validate(d, {**schema, "$ref": "#/definitions/Dashboard"})
        ids = [p["id"] for p in d["panels"]]
        assert len(ids) == len(set(ids)), d["uid"]
        assert "id" not in d, "provisioned dashboards must not carry an id"


def test_every_target_uses_a_provisioned_datasource_and_time_filter() -> None:
    known = {d["uid"] for d in load_datasources()}
    for d in load_dashboards():
        targets = panel_targets(d) + annotation_targets(d)
        assert targets
        for t in targets:
            assert t.datasource_uid in known, (d["uid"], t.panel_title)
            assert "$timeFilter" in t.query, (d["uid"], t.panel_title)
    infra = next(d for d in load_dashboards() if d["uid"] == "vigil-infrastructure")
    assert [v["name"] for v in infra["templating"]["list"]] == ["host"]
    measured = " ".join(t.query for t in panel_targets(infra))
    for name in (s.RAW_CPU, s.RAW_MEM, s.RAW_NET, s.RAW_DISKIO):
        assert f'FROM "{name}"' in measured
    assert any(s.PREDICTIONS.name in a.query for a in annotation_targets(infra))


def test_alert_rules_follow_the_file_format() -> None:
    alerting = load_alerting()
    rules = load_alert_rules()
    uids = [r.uid for r in rules]
    assert len(uids) == len(set(uids)) == 5
    contact_names = {c["name"] for c in alerting["contactPoints"]}
    receiver_uids = [r["uid"] for c in alerting["contactPoints"] for r in c["receivers"]]
    assert len(receiver_uids) == len(set(receiver_uids))
    hook = alerting["contactPoints"][0]["receivers"][0]
    assert hook["type"] == "webhook" and hook["settings"]["url"] == "${VIGIL_ALERT_WEBHOOK_URL}"
    (policy,) = alerting["policies"]
    assert policy["receiver"] in contact_names
    assert all(r["receiver"] in contact_names for r in policy["routes"])
    known = {d["uid"] for d in load_datasources()} | {"__expr__"}
    dashboards = {d["uid"] for d in load_dashboards()}
    for rule in rules:
        spec = rule.rule
        assert len(spec["uid"]) <= 40 and re.fullmatch(r"[\w-]+", spec["uid"])
        assert spec["noDataState"] in ("NoData", "Alerting", "OK")
        assert spec["execErrState"] in ("Error", "Alerting", "OK")
        refs = {n["refId"] for n in spec["data"]}
        assert spec["condition"] in refs
        assert spec.get("dashboardUid") in dashboards
        for node in spec["data"]:
            assert node["datasourceUid"] in known
            if node["datasourceUid"] != "__expr__":
                rel = node["relativeTimeRange"]
                assert rel["from"] > rel["to"] >= 0, "seconds, from > to (Grafana rejects 0/0)"
                assert "$timeFilter" in node["model"]["query"]
                assert "$host" not in node["model"]["query"], "template variables are not resolved in alerts"
            else:
                assert node["model"]["expression"] in refs


def test_alert_rules_validate_against_the_api_rule_schema_after_mapping() -> None:
    """The foundation-sdk schema describes the API shape: map file fields as Grafana does, then validate."""
    schema = json.loads((SCHEMAS / "alerting.jsonschema.json").read_text())
    for rule in load_alert_rules():
        api = {k: v for k, v in rule.rule.items() if k not in ("dashboardUid",)}
        api.update({"folderUID": "vigil", "ruleGroup": rule.group, "orgID": 1})
        jsonschema.validate(api, {**schema, "$ref": "#/definitions/Rule"})


def test_a_broken_dashboard_file_is_reported_with_its_path(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"uid": "x", "title": ')
    with pytest.raises(ProvisioningError, match="bad.json: not valid JSON"):
        load_dashboard(bad)
    nameless = tmp_path / "nameless.json"
    nameless.write_text("{}")
    with pytest.raises(ProvisioningError, match="needs a uid and a title"):
        load_dashboard(nameless)
    assert [p.name for p in dashboard_files()] == sorted(build.DASHBOARDS)
