"""Restarts keep their settings: ``vigil up`` records what each service was started with and reuses it.

Real processes through the real CLI (as a user would run them), temporary run folders and free
ports, like tests/integration/test_stack.py. The scenario of issue 21: the demo starts the collector and the
detector at 5 s; the detector is killed with SIGKILL; ``vigil up`` from a plain shell (none of the
demo's settings in its environment) must bring it back at 5 s, with no gap in its predictions and
no duplicate warning.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import psutil
import pytest
import requests
from support.stack_cli import stack_env, vigil

from vigil import schema
from vigil.influx import InfluxClient, quote_ident, quote_literal
from vigil.processes import read_record
from vigil.settings import Settings

HOST = "restart-host"
DEMO_STYLE_UP = (
    "from toolkit.demo import demo_settings; from vigil.settings import get_settings; "
    "from toolkit.stack import manager; "
    "s = demo_settings(get_settings()); print('interval', s.features.interval_s, s.collection.interval_s); "
    "manager.up(s, only=('influxdb', 'collector', 'detector'))"
)


def child_env(record_pid: int) -> dict[str, str]:
    return {k: v for k, v in psutil.Process(record_pid).environ().items() if k.startswith("VIGIL_")}


def status_settings(env: dict[str, str]) -> dict[str, dict[str, str]]:
    """``vigil status``'s key-settings block: service -> {setting: value}."""
    out = vigil(env, "status")
    assert out.returncode == 0, out.stderr
    block = out.stdout.split("key settings", 1)[1].splitlines()[1:]
    return {
        line.split()[0]: dict(kv.split("=", 1) for kv in line.split()[1:]) for line in block if line.strip()
    }


def test_a_restart_reuses_recorded_settings_and_names_what_changed(run_dir: Path) -> None:
    env = {**stack_env(run_dir), "VIGIL_STRESS__TARGET_USUAL_RPS": "1.5"}
    first = vigil(env, "up", "--only", "target")
    assert first.returncode == 0, first.stdout + first.stderr
    record = json.loads((run_dir / "settings" / "target.json").read_text())
    assert record["env"]["VIGIL_STRESS__TARGET_USUAL_RPS"] == "1.5"
    assert not any("PASSWORD" in k for k in record["env"]), "a secret was written to the run folder"

    # kill -9, then `vigil up` from a shell that no longer sets the rate (nor the target's port)
    plain = {
        k: v
        for k, v in env.items()
        if k not in ("VIGIL_STRESS__TARGET_USUAL_RPS", "VIGIL_STRESS__TARGET_PORT")
    }
    os.kill(read_record(run_dir, "target").pid, signal.SIGKILL)
    again = vigil(plain, "up", "--only", "target")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "[target] reusing the settings of its last start" in again.stdout
    assert (
        "target_usual_rps=1.5" in again.stdout
        and f"target_port={env['VIGIL_STRESS__TARGET_PORT']}" in again.stdout
    )
    pid = read_record(run_dir, "target").pid
    assert child_env(pid)["VIGIL_STRESS__TARGET_USUAL_RPS"] == "1.5"
    # status probes the port the service really listens on, not this shell's default
    table = vigil(plain, "status").stdout
    row = next(line.split() for line in table.splitlines() if line.startswith("target "))
    assert row[1:4] == [str(pid), env["VIGIL_STRESS__TARGET_PORT"], "yes"], table
    assert status_settings(plain)["target"] == {
        "target_port": env["VIGIL_STRESS__TARGET_PORT"],
        "target_usual_rps": "1.5",
    }

    # a running service is left alone, and told apart from what the user now asks for
    asked = {**plain, "VIGIL_STRESS__TARGET_USUAL_RPS": "2.5"}
    running = vigil(asked, "up", "--only", "target")
    assert f"[target] already running (pid {pid})" in running.stdout
    assert "it runs with the settings of its start, not yours (target_usual_rps 1.5 -> 2.5)" in running.stdout

    # the user's explicit change wins at the next start, and is named
    os.kill(pid, signal.SIGKILL)
    changed = vigil(asked, "up", "--only", "target")
    assert changed.returncode == 0, changed.stdout + changed.stderr
    assert "[target] settings changed since its last start: target_usual_rps 1.5 -> 2.5" in changed.stdout
    assert child_env(read_record(run_dir, "target").pid)["VIGIL_STRESS__TARGET_USUAL_RPS"] == "2.5"
    assert status_settings(plain)["target"]["target_usual_rps"] == "2.5"


def combined_times(client: InfluxClient, db: str) -> list[pd.Timestamp]:
    q = (
        f"SELECT score FROM {quote_ident(schema.PREDICTIONS.name)} WHERE {quote_ident('host')} = "
        f"{quote_literal(HOST)} AND {quote_ident('source')} = 'combined'"
    )
    frame = client.query_df(db, q)
    return [] if frame.empty else list(pd.to_datetime(frame["time"], utc=True))


def raw_intervals(client: InfluxClient, db: str, interval_s: int) -> set[pd.Timestamp]:
    """Intervals in which the collector wrote this host's memory (what the detector must score)."""
    q = f"SELECT used_percent FROM mem WHERE {quote_ident('host')} = {quote_literal(HOST)}"
    frame = client.query_df(db, q)
    return {t.floor(f"{interval_s}s") for t in pd.to_datetime(frame["time"], utc=True)}


def wait_for(check, timeout_s: float, what: str, step_s: float = 1.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(step_s)
    raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}")


@pytest.mark.timeout(600)
def test_kill_9_detector_after_a_demo_start_comes_back_with_the_demo_intervals(run_dir: Path) -> None:
    env = stack_env(run_dir)
    del env["VIGIL_COLLECTION__INTERVAL_S"]  # the demo chooses its own interval: 5 s
    env.update(VIGIL_COLLECTION__HOSTNAME=HOST, VIGIL_DETECTOR__CHECKPOINT_EVERY="1")
    started = subprocess.run(
        [sys.executable, "-c", DEMO_STYLE_UP], env=env, capture_output=True, text=True, timeout=300
    )
    assert started.returncode == 0, started.stdout + started.stderr
    assert "interval 5 5.0" in started.stdout
    settings = Settings(_env_file=None, run_dir=run_dir, influx_port=int(env["VIGIL_INFLUX__PORT"]))
    client = InfluxClient(settings.influx, retries=0)
    detector = read_record(run_dir, "detector")
    assert child_env(detector.pid)["VIGIL_FEATURES__INTERVAL_S"] == "5"

    # a few intervals scored, and a checkpoint, then kill -9
    checkpoint = run_dir / "detector" / "shard-0-of-1" / "checkpoint.pkl"
    wait_for(
        lambda: len(combined_times(client, "vigil")) >= 3 and checkpoint.exists(), 120, "first predictions"
    )
    os.kill(detector.pid, signal.SIGKILL)
    killed_at = pd.Timestamp.now(tz="UTC")

    # `vigil up` from a plain shell: no interval in its environment
    up = vigil(env, "up", "--only", "influxdb,collector,detector")
    assert up.returncode == 0, up.stdout + up.stderr
    assert "[collector] already running" in up.stdout and "[influxdb] already running" in up.stdout
    assert "[detector] reusing the settings of its last start" in up.stdout
    assert "feature_interval_s=5" in up.stdout and "collect_interval_s=5.0" in up.stdout
    restarted = read_record(run_dir, "detector")
    assert restarted.pid != detector.pid
    assert child_env(restarted.pid)["VIGIL_FEATURES__INTERVAL_S"] == "5"
    keys = status_settings(env)
    assert keys["detector"]["feature_interval_s"] == "5" and keys["collector"]["collect_interval_s"] == "5.0"
    assert keys["detector"]["influx_raw_db"] == "telegraf" and keys["detector"]["influx_vigil_db"] == "vigil"

    # predictions go on: four intervals that began after the kill are scored
    wait_for(
        lambda: sum(t > killed_at for t in combined_times(client, "vigil")) >= 4,
        180,
        "predictions after the restart",
    )
    times = combined_times(client, "vigil")
    assert len(times) == len(set(times)), "an interval predicted twice"
    assert all(t.value % (5 * 10**9) == 0 for t in times), "predictions not on the 5 s grid"
    wanted = {t for t in raw_intervals(client, "telegraf", 5) if times[0] <= t <= times[-1]}
    missing = sorted(wanted - set(times))
    assert not missing, f"intervals with data but no prediction (a gap): {missing}"
    health = requests.get(f"http://127.0.0.1:{env['VIGIL_DETECTOR__PORT']}/health", timeout=10).json()
    assert "duplicate_point" not in health["errors"], health["errors"]
    log = Path(restarted.log).read_text()
    assert "duplicated point" not in log, "the detector warned about duplicates"
