"""Every panel, annotation and variable query, macro-expanded as Grafana does, runs on seeded data."""

from __future__ import annotations

import math

import pytest

from toolkit.grafana.macros import TimeRange
from toolkit.grafana.panels import resolve_variables, run_target
from toolkit.grafana.provisioning import (
    annotation_targets,
    datasource_databases,
    load_dashboards,
    panel_targets,
)
from vigil.influx import InfluxClient, InfluxError

DASHBOARDS = load_dashboards()
TARGETS = [t for d in DASHBOARDS for t in panel_targets(d) + annotation_targets(d)]


@pytest.mark.parametrize("target", TARGETS, ids=[f"{t.dashboard_uid}:{t.panel_title}" for t in TARGETS])
def test_query_returns_series_over_seeded_history(grafana_history, grafana_settings, target) -> None:
    client = InfluxClient(grafana_settings.influx)
    dbs = datasource_databases(grafana_settings.influx)
    tr = TimeRange.of(grafana_history.start, grafana_history.end)
    dashboard = next(d for d in DASHBOARDS if d["uid"] == target.dashboard_uid)
    variables = resolve_variables(client, dbs, dashboard, tr)
    if "host" in variables:
        assert set(variables["host"].values) == {"web-1", "db-1"}
    result = run_target(client, dbs, target, tr, variables)
    assert "$" not in result.query.replace("$/", "").replace("^(", ""), result.query
    assert result.series, f"no series for {result.query}"
    finite = [v for s in result.series for v in s.numeric() if not math.isnan(v)]
    texts = [v for s in result.series for v in s.values if isinstance(v, str)]
    assert finite or texts, f"only nulls from {result.query}"
    if "$tag_host" in target.alias:
        assert {s.name.split()[0] for s in result.series} <= {"web-1", "db-1"}


def test_host_variable_narrows_the_panels(grafana_history, grafana_settings) -> None:
    """Choosing one host in $host returns that host's series only (the regex is anchored and escaped)."""
    from toolkit.grafana.macros import Variable

    client = InfluxClient(grafana_settings.influx)
    dbs = datasource_databases(grafana_settings.influx)
    tr = TimeRange.of(grafana_history.start, grafana_history.end)
    infra = next(d for d in DASHBOARDS if d["uid"] == "vigil-infrastructure")
    cpu = next(t for t in panel_targets(infra) if t.panel_title == "CPU busy %")
    one = run_target(
        client, dbs, cpu, tr, {"host": Variable("host", ("web-1",), multi=True, include_all=True)}
    )
    assert [s.name for s in one.series] == ["web-1"]
    hostile = Variable("host", ("web-1/ OR 1=1 --",), multi=True, include_all=True)
    assert run_target(client, dbs, cpu, tr, {"host": hostile}).series == []


def test_a_query_influx_rejects_raises_with_the_expanded_text(grafana_history, grafana_settings) -> None:
    from dataclasses import replace

    client = InfluxClient(grafana_settings.influx)
    dbs = datasource_databases(grafana_settings.influx)
    tr = TimeRange.of(grafana_history.start, grafana_history.end)
    broken = replace(TARGETS[0], query="SELECT mean( FROM cpu WHERE $timeFilter")
    with pytest.raises(InfluxError, match="time >= "):
        run_target(client, dbs, broken, tr, {})
