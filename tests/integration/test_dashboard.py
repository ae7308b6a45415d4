"""`vigil dashboard`: the provisioned panels rendered from their own queries, and the alerts firing now."""

from __future__ import annotations

import re

import click
import pandas as pd
import pytest
from click.testing import CliRunner

from toolkit.cli import main
from toolkit.dashboard.cli import parse_time
from toolkit.grafana.provisioning import load_alert_rules, load_dashboards, panel_targets
from vigil.settings import get_settings


def test_parse_time_reads_grafana_relative_and_iso_times() -> None:
    now = pd.Timestamp("2026-03-01T12:00:00Z")
    assert parse_time("now", now) == now
    assert parse_time("now-6h", now) == now - pd.Timedelta(hours=6)
    assert parse_time("now-30m", now) == now - pd.Timedelta(minutes=30)
    assert parse_time("2026-03-01T10:00:00", now) == pd.Timestamp("2026-03-01T10:00:00Z")
    with pytest.raises(click.BadParameter, match="now-6h"):
        parse_time("yesterday-ish", now)


def test_dashboard_command_renders_every_panel_and_lists_firing_alerts(
    grafana_history, grafana_settings, tmp_path, monkeypatch
) -> None:
    for key, value in {
        "VIGIL_INFLUX__PORT": str(grafana_settings.influx.port),
        "VIGIL_INFLUX__RAW_DB": grafana_history.raw_db,
        "VIGIL_INFLUX__VIGIL_DB": grafana_history.vigil_db,
        "VIGIL_RUN_DIR": str(tmp_path / "run"),
    }.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    host, gap_start, _gap_end = grafana_history.silent
    to = gap_start + pd.Timedelta(minutes=6)  # in the middle of the collector's silence
    try:
        result = CliRunner().invoke(
            main, ["dashboard", "--from", grafana_history.start.isoformat(), "--to", to.isoformat()]
        )
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    out_dir = tmp_path / "run" / "dashboard"
    index = (out_dir / "index.html").read_text()
    n_panels = sum(len({t.panel_id for t in panel_targets(d)}) for d in load_dashboards())
    assert f"{n_panels} panels" in result.output and "failed" not in result.output
    pngs = sorted(out_dir.glob("*.png"))
    tables = sum(p["type"] == "table" for d in load_dashboards() for p in d["panels"])
    assert len(pngs) == n_panels - tables
    for png in pngs:
        assert png.stat().st_size > 5_000, png  # a real plot, not an empty canvas
        assert f"src='{png.name}'" in index
    assert "no data" not in index
    assert "query failed" not in index
    # the collector of `host` is silent at `to`: exactly that rule fires, for that host
    assert f"FIRING Collector silent [host={host}]" in result.output
    assert "alert rules firing now: 1 of 5" in result.output
    for rule in load_alert_rules():
        assert rule.title in index
    assert re.search(r"<tr class='fire'><td>Collector silent</td><td>host=" + host, index)
    assert "time &gt;= " in index  # the expanded queries are shown under each panel


def test_dashboard_command_rejects_a_reversed_range() -> None:
    result = CliRunner().invoke(main, ["dashboard", "--from", "now", "--to", "now-1h"])
    assert result.exit_code == 2
    assert "must end after it starts" in result.output
