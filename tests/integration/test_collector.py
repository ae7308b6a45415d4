"""``vigil collect`` against a real InfluxDB: writes, outages, bad data, SIGTERM."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from toolkit.cli import main
from toolkit.collector import Collector, load_config
from vigil.influx import InfluxClient, quote_ident
from vigil.processes import free_port
from vigil.settings import Settings, get_settings

EXPECTED = {"cpu", "mem", "net", "diskio", "system", "processes", "procstat_lookup"}


def _env(settings: Settings, tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}
    env |= {"VIGIL_INFLUX__PORT": str(settings.influx.port), "VIGIL_RUN_DIR": str(tmp_path / "run")}
    return env


def test_collect_once_cli_writes_the_telegraf_measurements(
    settings: Settings, influx: InfluxClient, fresh_db: str, tmp_path: Path
) -> None:
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(
            main,
            ["collect", "--once", "--db", fresh_db],
            env=_env(settings, tmp_path) | {"VIGIL_COLLECTION__HOSTNAME": "once-host"},
        )
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert "written" in result.output
    assert EXPECTED <= set(influx.measurements(fresh_db))
    df = influx.query_df(fresh_db, f"SELECT * FROM {quote_ident('cpu')}")
    assert len(df) == 1 and set(df["cpu"]) == {"cpu-total"} and set(df["host"]) == {"once-host"}
    busy = 100 - df["usage_idle"].iloc[0]
    assert 0 <= busy <= 100


def test_collector_survives_unreachable_influxdb_with_a_bounded_buffer(
    caplog: pytest.LogCaptureFixture,
) -> None:
    dead = Settings(_env_file=None, influx_port=free_port(), influx_timeout_s=1.0)
    config = replace(load_config(dead.influx, dead.detector), buffer_limit=40)
    collector = Collector(dead, config=config)
    caplog.set_level(logging.DEBUG, logger="toolkit.collector")
    gathered = 0
    for _ in range(4):
        gathered += collector.collect_and_flush()  # must not raise
    assert gathered > 40
    assert len(collector.buffer) == 40  # bounded: the oldest points were dropped, as Telegraf does
    assert collector.buffer.dropped == gathered - 40
    assert collector.buffer.written == 0 and collector.buffer.outage
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "unavailable" in r.getMessage()]
    assert len(warnings) == 1  # one clear line per outage, not one per interval
    assert "cannot reach InfluxDB" in warnings[0].getMessage()


def test_buffer_drains_when_influxdb_comes_back(
    settings: Settings, influx: InfluxClient, fresh_db: str
) -> None:
    """Points gathered during an outage are written once the server answers again."""
    collector = Collector(settings.model_copy(update={"influx_port": free_port()}), db=fresh_db)
    collector.collect_and_flush()
    kept = len(collector.buffer)
    assert kept > 0 and collector.buffer.written == 0
    collector.buffer.client = InfluxClient(settings.influx, retries=0)  # the server is back
    assert collector.buffer.flush()
    assert collector.buffer.written == kept and len(collector.buffer) == 0
    rows = influx.query(fresh_db, f"SELECT count(*) FROM {quote_ident('processes')}")
    assert rows[0]["values"][0][1] == 1


def test_refused_points_are_dropped_with_the_server_message(
    settings: Settings, fresh_db: str, caplog: pytest.LogCaptureFixture
) -> None:
    collector = Collector(settings, db=fresh_db)
    buffer = collector.buffer
    buffer.add(["conflict,host=a v=1i 1000000000"])
    assert buffer.flush()
    buffer.add(["conflict,host=a v=1.5 2000000000", "conflict,host=a v=2i 3000000000"])
    caplog.set_level(logging.ERROR, logger="toolkit.collector")
    assert buffer.flush()  # a 4xx is not an outage: the batch is dropped, the loop goes on
    assert buffer.rejected == 2 and len(buffer) == 0
    assert any("field type conflict" in r.getMessage() for r in caplog.records)


def test_sigterm_stops_the_loop_gracefully(
    settings: Settings, influx: InfluxClient, fresh_db: str, tmp_path: Path
) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "toolkit.cli", "collect", "--interval", "1", "--db", fresh_db],
        env=_env(settings, tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=tmp_path,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and "cpu" not in influx.measurements(fresh_db):
            time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, out
    assert "collector stopped" in out
    rows = influx.query(fresh_db, f"SELECT count({quote_ident('load1')}) FROM {quote_ident('system')}")
    assert rows[0]["values"][0][1] >= 2
