"""The detector as a real process (``python -m toolkit.cli detector run``, configured by VIGIL_*
variables): killed with SIGKILL mid catch-up and restarted it resumes from its checkpoint with
no gap and no duplicate — its scores equal an uninterrupted run's; SIGTERM drains and exits 0;
/health and /metrics answer. No MLflow server is given, so it also runs online-only.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import requests
from support.detector_support import detector_settings, predictions, stats

from detector.factory import build_detector
from toolkit.seed import seed_history
from vigil.influx import InfluxClient
from vigil.processes import free_port
from vigil.settings import PROJECT_ROOT

MINUTES = 20
SKIP_MINUTES = 5  # scored window starts here; the first minutes are the warm-start history


def _env(s, port: int) -> dict[str, str]:
    return {
        **os.environ,
        "VIGIL_RUN_DIR": str(s.run_dir),
        "VIGIL_INFLUX__PORT": str(s.influx.port),
        "VIGIL_INFLUX__RAW_DB": s.influx.raw_db,
        "VIGIL_INFLUX__VIGIL_DB": s.influx.vigil_db,
        "VIGIL_MLFLOW__PORT": str(free_port()),  # nobody listens: online-only mode
        "VIGIL_DETECTOR__POLL_INTERVAL_S": "0.5",
        "VIGIL_DETECTOR__ALLOWED_LATENESS_S": "0",
        "VIGIL_DETECTOR__CHECKPOINT_EVERY": "3",
        "VIGIL_DETECTOR__MAX_CATCHUP_INTERVALS": "2",
        "VIGIL_DETECTOR__HISTORY_HOURS": str(SKIP_MINUTES / 60),
        "VIGIL_DETECTOR__PORT": str(port),
        "VIGIL_INFLUX__BACKOFF_S": "0.2",
    }


def _start(s, port: int, start: pd.Timestamp, log: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "toolkit.cli", "detector", "run", "--start", start.isoformat()]
    return subprocess.Popen(
        cmd, env=_env(s, port), cwd=PROJECT_ROOT, stdout=open(log, "ab"), stderr=subprocess.STDOUT
    )


def _health(port: int) -> dict | None:
    try:
        return requests.get(f"http://127.0.0.1:{port}/health", timeout=2).json()
    except (requests.RequestException, ValueError):
        return None


def _wait(cond, timeout: float, what: str, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        if proc.poll() is not None:
            raise AssertionError(
                f"detector exited ({proc.returncode}) waiting for {what}:\n{log.read_text()[-3000:]}"
            )
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}:\n{log.read_text()[-3000:]}")


@pytest.fixture()
def seeded(settings, tmp_path):
    client = InfluxClient(settings.influx)
    raw_db, vigil_db, ref_db = "det_restart_raw", "det_restart_vigil", "det_restart_ref"
    for db in (raw_db, vigil_db, ref_db):
        client.drop_database(db)
        client.create_database(db)
    s = detector_settings(settings, tmp_path / "run", raw_db, vigil_db)
    now = pd.Timestamp.now(tz="UTC").floor("10s")
    result = seed_history(
        client,
        s.influx,
        s.collection,
        start=now - pd.Timedelta(minutes=MINUTES),
        hours=MINUTES / 60,
        hosts=3,
        seed=5,
        anomalies=False,
        progress=False,
    )
    yield client, s, result, ref_db
    for db in (raw_db, vigil_db, ref_db):
        client.drop_database(db)


def test_kill_9_restart_resumes_without_gap_or_duplicate_and_sigterm_drains(seeded, tmp_path):
    client, s, result, ref_db = seeded
    begin = result.start + pd.Timedelta(minutes=SKIP_MINUTES)
    expected = pd.date_range(begin, result.end, freq="10s", inclusive="left")
    port, log = free_port(), tmp_path / "detector.log"

    proc = _start(s, port, begin, log)
    try:

        def progressed() -> bool:
            return len(predictions(client, s.influx.vigil_db, "combined")) >= len(expected)  # ~1/3 of 3 hosts

        _wait(progressed, 120, "first predictions", proc, log)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        before = len(predictions(client, s.influx.vigil_db, "combined"))
        assert before < 3 * len(expected), "killed while still catching up"

        proc = _start(s, port, begin, log)  # same run_dir: resumes from the checkpoint

        def done() -> bool:
            h = _health(port)
            return bool(h and h["watermark"] and pd.Timestamp(h["watermark"]) >= result.end)

        _wait(done, 120, "catch-up after restart", proc, log)
        health = _health(port)
        assert health["live"] and health["ready"], health
        assert health["mode"] == "online-only" and health["hosts"] == 3
        metrics = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        for name in (
            "vigil_detector_points_read_total",
            "vigil_detector_predictions_written_total",
            "vigil_detector_lag_seconds",
            "vigil_detector_loop_seconds_bucket",
            "vigil_detector_model_info",
        ):
            assert name in metrics, name
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, log.read_text()[-2000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "detector stopped" in log.read_text()

    pred = predictions(client, s.influx.vigil_db)
    combined = pred[pred["source"] == "combined"]
    assert set(combined["version"]) == {"online-only"}
    for host, part in combined.groupby("host"):
        assert list(part["time"].sort_values()) == list(expected), f"gap or extra interval for {host}"
    assert not pred.duplicated(["host", "time", "source"]).any()
    assert len(stats(client, s.influx.vigil_db)) > 0, "detector stats written for Grafana"

    # an uninterrupted in-process run over the same data gives the same scores: the restart
    # neither skipped nor absorbed any interval twice
    ref_settings = s.model_copy(update={"run_dir": tmp_path / "ref", "influx_vigil_db": ref_db})
    ref = build_detector(ref_settings, start=begin)
    while ref.watermark_ns < result.end.value:
        ref.run_once(now=result.end.value / 1e9)
    ref.checkpoint()
    ref_pred = predictions(client, ref_db, "online").sort_values(["host", "time"]).reset_index(drop=True)
    got = pred[pred["source"] == "online"].sort_values(["host", "time"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(ref_pred[["host", "time"]], got[["host", "time"]])
    np.testing.assert_allclose(got["score"].to_numpy(), ref_pred["score"].to_numpy(), rtol=0, atol=1e-12)
