"""Operator feedback becomes labels, on a real InfluxDB: ``vigil label add | false-positive | list``,
``POST /labels`` over real HTTP (bearer token: 401 without it, 422 naming the field on bad input),
``vigil incidents list`` showing each incident's verdict; bad labels (end before start, overlapping
windows, malformed times, unknown incidents) are refused with a clear message and write nothing;
extract skips a stored label whose end is not after its start and lets an operator's verdict win
over an overlapping seeded one."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import requests
from click.testing import CliRunner
from fastapi import FastAPI
from pydantic import SecretStr

from detector.api import DetectorHttpServer
from detector.api.labels import labels_router
from detector.incidents import HostEpisode, Incident, incidents_root, write_json_atomic
from detector.incidents.cli import incidents
from detector.labels_cli import label
from pipelines.extract import join_labels
from toolkit.stack.services import settings_env
from vigil.influx import InfluxClient
from vigil.labels import FALSE_POSITIVE, Label, LabelError, add_labels, load_labels
from vigil.schema import LABELS
from vigil.settings import Settings, get_settings

T = pd.Timestamp("2026-02-02T10:00:00Z")
TOKEN = "s3cret-token"


@pytest.fixture()
def lab_settings(settings: Settings, fresh_db: str, tmp_path: Path) -> Settings:
    return settings.model_copy(
        update={"influx_vigil_db": fresh_db, "run_dir": tmp_path, "detector_api_token": SecretStr(TOKEN)}
    )


def _cli(s: Settings, monkeypatch: pytest.MonkeyPatch, group, *args: str):
    for key, value in settings_env(s).items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    try:
        return CliRunner().invoke(group, list(args))
    finally:
        get_settings.cache_clear()


def _stored(s: Settings) -> pd.DataFrame:
    return load_labels(
        InfluxClient(s.influx), s.influx, T - pd.Timedelta(days=1), T + pd.Timedelta(days=1), details=True
    )


# --- the label itself --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("label", "field"),
    [
        (Label("", T, T + pd.Timedelta("1min"), "spike"), "host"),
        (Label("web-1", T, T - pd.Timedelta("1min"), "spike"), "end"),
        (Label("web-1", T, T, "spike"), "end"),
        (Label("web-1", "yesterday-ish", T, "spike"), "start"),
        (Label("web-1", T, T + pd.Timedelta("1min"), "cpu spike!"), "kind"),
        (Label("web-1", T, pd.Timestamp.now(tz="UTC") + pd.Timedelta(days=3), "spike"), "end"),
        (Label("web-1", T, T + pd.Timedelta("1min"), "spike", source="somebody"), "source"),
    ],
)
def test_bad_labels_are_refused_naming_the_field(label: Label, field: str) -> None:
    with pytest.raises(LabelError) as err:
        label.validated()
    assert err.value.field == field and str(err.value).startswith(f"{field}:")


def test_overlapping_labels_are_refused_and_nothing_is_written(lab_settings: Settings) -> None:
    s, client = lab_settings, InfluxClient(lab_settings.influx)
    first = add_labels(client, s.influx, [Label("web-1", T, T + pd.Timedelta("5min"), "cpu_spike")])[0]
    again = add_labels(client, s.influx, [Label("web-1", T, T + pd.Timedelta("5min"), "cpu_spike")])[0]
    assert again.label_id == first.label_id and len(_stored(s)) == 1  # the same verdict twice: one label
    with pytest.raises(LabelError, match=f"overlaps label {first.label_id}"):
        add_labels(
            client,
            s.influx,
            [Label("web-1", T + pd.Timedelta("4min"), T + pd.Timedelta("9min"), FALSE_POSITIVE)],
        )
    with pytest.raises(LabelError, match="in the same request"):
        add_labels(
            client,
            s.influx,
            [
                Label("db-1", T, T + pd.Timedelta("5min"), "a"),
                Label("db-1", T + pd.Timedelta("1min"), T + pd.Timedelta("2min"), "b"),
            ],
        )
    other_host = add_labels(client, s.influx, [Label("web-2", T, T + pd.Timedelta("5min"), FALSE_POSITIVE)])
    assert len(other_host) == 1
    assert sorted(_stored(s)["host"]) == ["web-1", "web-2"]  # the refused ones left nothing behind


def test_extract_skips_an_impossible_stored_label_and_lets_the_operator_win() -> None:
    times = pd.date_range(T, periods=6, freq="10s")
    feats = pd.DataFrame({"host": ["a"] * 6, "time": times})
    labels = pd.DataFrame(
        {
            "host": ["a", "a", "a"],
            "kind": ["spike", FALSE_POSITIVE, "leak"],
            "start": [times[0], times[2], times[5]],
            "end": [times[4], times[4], times[1]],  # the last one ends before it starts
            "label_id": ["seeded", "op-1", "broken"],
            "source": ["seed", "operator", "manual"],
        }
    )
    out = join_labels(feats, labels, 10)
    assert out["label"].tolist() == [1, 1, 0, 0, 0, 0]
    assert out["label_id"].tolist() == ["seeded", "seeded", "op-1", "op-1", "", ""]
    assert out["label_source"].tolist() == ["seed", "seed", "operator", "operator", "", ""]


# --- vigil label / vigil incidents list ---------------------------------------------------------------


def _incident(s: Settings, hosts: dict[str, tuple[int, int]]) -> str:
    first = min(a for a, _ in hosts.values())
    inc = Incident(
        id="20260202T100000Z-abc123",
        status="open",
        first_alarm_ns=first,
        last_alarm_ns=max(b for _, b in hosts.values()),
        before_s=600,
        after_s=300,
        interval_s=10,
        hosts={
            h: HostEpisode(h, a, b, alarms=3, peak_score=1.4, peak_time_ns=a) for h, (a, b) in hosts.items()
        },
    )
    folder = incidents_root(s.incidents) / inc.id
    folder.mkdir(parents=True)
    write_json_atomic(folder / "meta.json", inc.to_meta())
    return inc.id


def test_label_commands_and_incident_verdicts(
    lab_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = lab_settings
    ns = lambda minutes: int((T + pd.Timedelta(minutes=minutes)).value)  # noqa: E731
    incident_id = _incident(s, {"web-1": (ns(0), ns(2)), "web-2": (ns(1), ns(1))})
    listed = _cli(s, monkeypatch, incidents, "list", "--json")
    assert listed.exit_code == 0, listed.output
    assert json.loads(listed.output.splitlines()[0])["verdict"] == "unreviewed"

    marked = _cli(s, monkeypatch, label, "false-positive", incident_id, "--note", "backup job")
    assert marked.exit_code == 0, marked.output
    stored = _stored(s)
    assert sorted(stored["host"]) == ["web-1", "web-2"] and set(stored["kind"]) == {FALSE_POSITIVE}
    assert set(stored["source"]) == {"operator"} and set(stored["incident_id"]) == {incident_id}
    web1 = stored[stored["host"] == "web-1"].iloc[0]
    assert web1["start"] == T and web1["end"] == T + pd.Timedelta(
        minutes=2, seconds=10
    )  # to the last alarm's end
    assert web1["description"] == "backup job"
    listed = _cli(s, monkeypatch, incidents, "list")
    assert "[false positive]" in listed.output

    added = _cli(
        s, monkeypatch, label, "add", "--host", "db-1", "--from", "2026-02-02T11:00:00Z",
        "--to", "2026-02-02T11:10:00Z", "--kind", "disk_full", "--note", "ran out of inodes",
    )  # fmt: skip
    assert added.exit_code == 0 and "anomaly (disk_full)" in added.output
    shown = _cli(
        s, monkeypatch, label, "list", "--from", "2026-02-02T00:00:00Z", "--to", "2026-02-03T00:00:00Z"
    )
    assert shown.exit_code == 0 and shown.output.count("\n") == 3 and "disk_full" in shown.output
    assert "normal" in shown.output and incident_id in shown.output

    for args, message in (
        (("add", "--host", "db-1", "--from", "2026-02-02T12:00", "--to", "2026-02-02T11:00", "--kind", "x"), "error: end:"),
        (("add", "--host", "db-1", "--from", "soon", "--to", "2026-02-02T11:00", "--kind", "x"), "error: start:"),
        (("add", "--host", "db-1", "--from", "2026-02-02T11:05", "--to", "2026-02-02T11:20", "--kind", "x"), "overlaps label"),
        (("false-positive", "no-such-incident"), "error: incident:"),
        (("add", "--host", "web-1", "--from", "2026-02-02T10:01", "--to", "2026-02-02T10:05", "--kind", "x"), "overlaps label"),
    ):  # fmt: skip
        bad = _cli(s, monkeypatch, label, *args)
        assert bad.exit_code == 2 and message in bad.output, (args, bad.output)
    assert len(_stored(s)) == 3  # nothing written by the refused ones
    again = _cli(s, monkeypatch, label, "false-positive", incident_id)  # the same verdict twice: same labels
    assert again.exit_code == 0 and len(_stored(s)) == 3


# --- POST /labels ------------------------------------------------------------------------------------------


@pytest.fixture()
def api(lab_settings: Settings):
    app = FastAPI()
    app.include_router(labels_router(lab_settings.api, lab_settings.influx))
    server = DetectorHttpServer("127.0.0.1", 0, app).start()
    try:
        yield f"http://127.0.0.1:{server.port}/labels"
    finally:
        server.stop()


GOOD = {
    "host": "web-9",
    "start": "2026-02-02T10:00:00Z",
    "end": "2026-02-02T10:03:00Z",
    "kind": FALSE_POSITIVE,
}


def test_post_labels_needs_the_bearer_token(api: str, lab_settings: Settings) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}):
        resp = requests.post(api, json=GOOD, headers=headers, timeout=10)
        assert resp.status_code == 401 and resp.headers["www-authenticate"] == "Bearer", resp.text
    resp = requests.post(api, data="not json", headers={"Authorization": "Bearer x"}, timeout=10)
    assert resp.status_code == 401  # the token is checked before the body is read
    # no token configured at all: every request refused, saying why
    app = FastAPI()
    no_token = lab_settings.model_copy(update={"detector_api_token": None})
    app.include_router(labels_router(no_token.api, no_token.influx))
    server = DetectorHttpServer("127.0.0.1", 0, app).start()
    try:
        url = f"http://127.0.0.1:{server.port}/labels"
        resp = requests.post(url, json=GOOD, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
    finally:
        server.stop()
    assert resp.status_code == 401 and "VIGIL_API__TOKEN" in resp.json()["detail"]
    assert _stored(lab_settings).empty


def test_post_labels_stores_an_operator_label_and_names_bad_fields(api: str, lab_settings: Settings) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    resp = requests.post(api, json={**GOOD, "note": "cron", "incident_id": "inc-1"}, headers=auth, timeout=10)
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert (
        body["source"] == "operator"
        and body["verdict"] == "normal"
        and body["label_id"].startswith("op-web-9-")
    )
    stored = _stored(lab_settings)
    assert stored["label_id"].tolist() == [body["label_id"]] and stored["incident_id"].tolist() == ["inc-1"]

    cases = [
        ({k: v for k, v in GOOD.items() if k != "host"}, ["body", "host"]),
        ({**GOOD, "start": "not a time"}, ["body", "start"]),
        ({**GOOD, "end": "2026-02-02T09:00:00Z"}, ["body", "end"]),
        ({**GOOD, "kind": "two words"}, ["body", "kind"]),
        ({**GOOD, "extra": 1}, ["body", "extra"]),
        ({**GOOD, "start": "2026-02-02T10:01:00Z"}, ["body", "start"]),  # overlaps the stored one
    ]
    for payload, loc in cases:
        resp = requests.post(api, json=payload, headers=auth, timeout=10)
        assert resp.status_code == 422, (payload, resp.text)
        assert resp.json()["detail"][0]["loc"] == loc, resp.text
    resp = requests.post(
        api, data=b"{not json", headers={**auth, "content-type": "application/json"}, timeout=10
    )
    assert resp.status_code == 422 and resp.json()["detail"][0]["loc"] == ["body", "body"]
    assert len(_stored(lab_settings)) == 1
    points = InfluxClient(lab_settings.influx).query_df(
        lab_settings.influx.vigil_db, f'SELECT * FROM "{LABELS.name}"'
    )
    assert points["source"].tolist() == ["operator"]


def test_post_labels_answers_503_when_influxdb_is_down(lab_settings: Settings) -> None:
    s = lab_settings.model_copy(update={"influx_port": 9, "influx_retries": 0})
    app = FastAPI()
    app.include_router(labels_router(s.api, s.influx))
    server = DetectorHttpServer("127.0.0.1", 0, app).start()
    try:
        resp = requests.post(
            f"http://127.0.0.1:{server.port}/labels",
            json=GOOD,
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=30,
        )
    finally:
        server.stop()
    assert resp.status_code == 503 and "nothing written" in resp.json()["detail"]
