"""``vigil stress load``: the synthetic fleet writes what it says, stops by itself, and a real
detector subprocess scores every synthetic host while it runs (real InfluxDB, no mocks)."""

from __future__ import annotations

import time

import pandas as pd
import pytest
from click.testing import CliRunner

from stress.detector_process import start_detector
from stress.fleet_load import MODES, FleetMode, hosts_for_rate, points_per_minute, resolve_mode, run_load
from toolkit.cli import main
from vigil import schema
from vigil.influx import InfluxClient, quote_ident, quote_literal
from vigil.processes import free_port
from vigil.settings import get_settings
from vigil.synthetic.lines import MEASUREMENTS


def count_by_measurement(client: InfluxClient, db: str) -> dict[str, int]:
    out = {}
    for m in client.measurements(db):
        series = client.query(db, f"SELECT count(*) FROM {quote_ident(m)}")
        out[m] = max(int(v) for v in series[0]["values"][0][1:])
    return out


def test_modes_map_to_the_documented_rates():
    rates = {name: points_per_minute(m.hosts, m.interval_s) for name, m in MODES.items()}
    assert [round(r, -2) for r in rates.values()] == [100, 10_100, 50_400, 100_800]
    assert resolve_mode("normal", rate=200_000).points_per_min >= 200_000
    assert resolve_mode("normal", rate=200_000, hosts=7).hosts == 7, "--hosts wins over --rate"
    assert hosts_for_rate(1, 10) == 1
    with pytest.raises(ValueError, match="unknown mode"):
        resolve_mode("apocalypse")
    with pytest.raises(ValueError, match="--rate must be positive"):
        resolve_mode("mini", rate=0)


def test_mini_load_writes_the_expected_points_and_stops_by_itself(settings, influx, fresh_db):
    lines: list[str] = []
    began = time.monotonic()
    result = run_load(settings.influx, FleetMode(3, 1), duration_s=3, db=fresh_db, echo=lines.append)
    took = time.monotonic() - began
    assert result.ticks == 3 and not result.interrupted
    assert result.points == 3 * 3 * len(MEASUREMENTS)
    assert took < 3 + 1 + 10, "bounded: ticks + the wait for the first boundary + fleet generation"
    counts = count_by_measurement(influx, fresh_db)
    assert counts == {m: 9 for m in MEASUREMENTS}
    assert influx.tag_values(fresh_db, schema.RAW_CPU, "host") == result.hosts
    progress = [x for x in lines if x.startswith("[")]
    assert len(progress) == 3 and "achieved" in progress[-1], "one progress line per interval with the rate"


def test_stop_request_ends_the_load_between_writes(settings, influx, fresh_db):
    """What Ctrl-C does (the same code path): stop between writes, keep what was written."""
    ticks: list[str] = []

    def echo(line: str) -> None:
        if line.startswith("["):
            ticks.append(line)

    result = run_load(
        settings.influx, FleetMode(2, 1), duration_s=30, db=fresh_db, echo=echo, stop=lambda: len(ticks) >= 2
    )
    assert result.interrupted and result.ticks == 2
    assert sum(count_by_measurement(influx, fresh_db).values()) == result.points == 2 * 2 * len(MEASUREMENTS)


def test_cli_mini_mode_and_bad_arguments(settings, influx, fresh_db, monkeypatch):
    monkeypatch.setenv("VIGIL_INFLUX__PORT", str(settings.influx.port))
    get_settings.cache_clear()
    try:
        runner = CliRunner()
        res = runner.invoke(
            main, ["stress", "load", "--mode", "mini", "--interval", "1", "--duration", "2", "--db", fresh_db]
        )
        assert res.exit_code == 0, res.output
        assert "done: 36 points from 3 hosts in 2 ticks" in res.output
        bad = runner.invoke(main, ["stress", "load", "--hosts", "0", "--db", fresh_db + "_never"])
        assert bad.exit_code == 2 and "--hosts must be at least 1" in bad.output
        bad = runner.invoke(main, ["stress", "load", "--duration", "-1", "--db", fresh_db + "_never"])
        assert bad.exit_code == 2 and "--duration must be in" in bad.output
        databases = {row[0] for series in influx.query(None, "SHOW DATABASES") for row in series["values"]}
        assert fresh_db + "_never" not in databases, "bad arguments: nothing created, nothing written"
    finally:
        get_settings.cache_clear()


def test_detector_subprocess_scores_every_synthetic_host(settings, influx, tmp_path):
    """Online-only detector (no MLflow listening) on a fresh pair of databases, < 60 s."""
    raw_db, vigil_db = "load_e2e_raw", "load_e2e_vigil"
    for db in (raw_db, vigil_db):
        influx.drop_database(db)
        influx.create_database(db)
    s = settings.model_copy(
        update={
            "run_dir": tmp_path / "run",
            "influx_raw_db": raw_db,
            "influx_vigil_db": vigil_db,
            "detector_port": free_port(),
            "mlflow_port": free_port(),  # nothing listens: the detector runs online-only
            "poll_interval_s": 1.0,
            "allowed_lateness_s": 1.0,
            "checkpoint_every": 5,
        }
    )
    det = start_detector(s)
    try:
        result = run_load(
            s.influx, FleetMode(4, 2), duration_s=12, db=raw_db, echo=lambda _: None, prefix="e2e"
        )
        last_interval_end = (result.last_tick_s // 10) * 10  # the last complete feature interval ends here
        deadline = time.monotonic() + 20
        pred = None
        while time.monotonic() < deadline:
            q = (
                f"SELECT count({quote_ident('score')}) FROM {quote_ident(schema.PREDICTIONS.name)} "
                f"WHERE {quote_ident('source')} = {quote_literal('combined')} GROUP BY {quote_ident('host')}"
            )
            pred = {s_["tags"]["host"]: int(s_["values"][0][1]) for s_ in influx.query(vigil_db, q)}
            wm = det.health().get("watermark")
            if (
                set(pred) == set(result.hosts)
                and wm
                and pd.Timestamp(wm).value >= last_interval_end * 1_000_000_000
            ):
                break
            time.sleep(1)
        assert pred is not None and set(pred) == set(result.hosts), det.log_tail()
        counts = set(pred.values())
        assert len(counts) == 1 and counts.pop() >= 1, f"every host scored in the same intervals: {pred}"
        metrics = det.metrics()
        assert metrics["vigil_detector_host_intervals_total"] >= len(result.hosts)
    finally:
        det.stop()
        for db in (raw_db, vigil_db):
            influx.drop_database(db)
