"""``vigil detector run --workers 2``: real processes against the session's real InfluxDB.

Two shard workers under the supervisor split the hosts with no overlap and no gap; a worker
killed with SIGKILL is restarted by the supervisor and resumes from its own checkpoint, so the
intervals that became due while it was dead are scored after all; SIGTERM to the supervisor
drains both workers and exits 0.
"""

from __future__ import annotations

import os
import signal
import sys
import time

import pandas as pd
import psutil
import requests
from support.detector_support import detector_settings, fresh_databases, predictions

from detector.sharding import shard_of
from detector.state import load_checkpoint
from stress.detector_process import detector_env
from toolkit.seed import seed_history
from vigil.influx import InfluxClient
from vigil.processes import free_port, start_process, stop_process

HOSTS = [f"wk-{i:02d}" for i in range(8)]


def workers_of(pid: int) -> dict[int, psutil.Process]:
    """shard index -> live worker process of the supervisor ``pid``."""
    out = {}
    for child in psutil.Process(pid).children():
        try:
            if child.status() != psutil.STATUS_ZOMBIE:
                out[int(child.environ()["VIGIL_DETECTOR__SHARD_INDEX"])] = child
        except (psutil.Error, KeyError):
            continue
    return out


def watermarks(port: int) -> list[pd.Timestamp | None]:
    out = []
    for i in (0, 1):
        try:
            wm = requests.get(f"http://127.0.0.1:{port + i}/health", timeout=3).json().get("watermark")
        except (requests.RequestException, ValueError):
            wm = None
        out.append(pd.Timestamp(wm) if wm else None)
    return out


def tail(log_path: str, lines: int = 40) -> str:
    """The supervisor log's last lines without the workers' MLflow warnings (none listens there)."""
    kept = [line for line in open(log_path).read().splitlines() if "registry unreachable" not in line]
    return "\n".join(kept[-lines:])


def wait_until(check, timeout_s: float, what: str, log_path: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.5)
    raise AssertionError(
        f"timed out after {timeout_s:.0f}s waiting for {what}; supervisor log:\n{tail(log_path)}"
    )


def test_two_workers_split_hosts_and_a_killed_worker_resumes(settings, tmp_path):
    client = InfluxClient(settings.influx)
    with fresh_databases(client, "wk_raw", "wk_vigil"):
        now = pd.Timestamp.now(tz="UTC").floor("10s")
        start = now - pd.Timedelta(minutes=4)
        end = now + pd.Timedelta(seconds=40)  # these intervals become due while a worker is dead
        port = free_port(2)  # worker i serves on detector_port + i
        s = detector_settings(
            settings,
            tmp_path / "run",
            "wk_raw",
            "wk_vigil",
            detector_port=port,
            mlflow_port=free_port(),  # nothing there: online-only
            detector_history_hours=0.0,
        )
        seed_history(
            client,
            s.influx,
            s.collection,
            start=start,
            hours=(end - start).total_seconds() / 3600,
            hosts=HOSTS,
            anomalies=False,
            progress=False,
        )
        env = {**detector_env(s), "VIGIL_DETECTOR__WORKERS": "2"}
        sup = start_process(
            "supervisor",
            [sys.executable, "-m", "toolkit.cli", "detector", "run", "--start", start.isoformat()],
            run_dir=tmp_path,
            port=port,
            url="",
            env=env,
            cwd=tmp_path,
        )
        try:
            wait_until(
                lambda: all(w is not None and w >= now for w in watermarks(port)),
                180,
                "both workers to catch up",
                sup.log,
            )
            workers = workers_of(sup.pid)
            assert sorted(workers) == [0, 1]
            killed = workers[1]
            killed_watermark = load_checkpoint(
                tmp_path / "run" / "detector" / "shard-1-of-2" / "checkpoint.pkl"
            )
            assert killed_watermark is not None  # it resumes from this
            killed.send_signal(signal.SIGKILL)

            wait_until(
                lambda: 1 in workers_of(sup.pid) and workers_of(sup.pid)[1].pid != killed.pid,
                60,
                "the supervisor to restart worker 1",
                sup.log,
            )
            wait_until(
                lambda: all(w is not None and w >= end for w in watermarks(port)),
                180,
                "both workers to score the intervals that became due meanwhile",
                sup.log,
            )
            survivors = list(workers_of(sup.pid).values())
            os.kill(sup.pid, signal.SIGTERM)
            code = psutil.Process(sup.pid).wait(timeout=90)
            assert code == 0, f"supervisor exited {code}; log:\n{tail(sup.log)}"
            left = [p for p in survivors if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
            assert not left, f"workers left running: {left}"
        finally:
            stop_process(sup, timeout_s=10)

        log = open(sup.log).read()
        assert "worker 1 (shard 1/2" in log and "exited with signal SIGKILL" in log, tail(sup.log)
        assert "[shard 1/2] detector.service: resumed from checkpoint" in log, tail(sup.log)

        # no overlap: each host belongs to exactly one worker's state, the one its hash names
        owned = []
        for index in (0, 1):
            ckpt = load_checkpoint(tmp_path / "run" / "detector" / f"shard-{index}-of-2" / "checkpoint.pkl")
            assert ckpt is not None and ckpt.watermark_ns >= end.value, (index, ckpt and ckpt.watermark_ns)
            hosts = set(ckpt.extra["host_last_seen"])
            assert all(shard_of(h, 2) == index for h in hosts), (index, hosts)
            owned.append(hosts)
        assert owned[0] and owned[1] and not owned[0] & owned[1]
        assert owned[0] | owned[1] == set(HOSTS)

        # no gap: every host-interval scored, including those due while worker 1 was dead
        combined = predictions(client, "wk_vigil", "combined")
        combined = combined[pd.to_datetime(combined["time"], utc=True) < end]
        assert not combined.duplicated(["host", "time"]).any()
        expected = set(pd.date_range(start, end, freq="10s", inclusive="left"))
        for host in HOSTS:
            got = set(pd.to_datetime(combined.loc[combined["host"] == host, "time"], utc=True))
            assert got == expected, (
                f"{host} (shard {shard_of(host, 2)}): missing {sorted(expected - got)}, "
                f"extra {sorted(got - expected)}; log:\n{tail(sup.log)}"
            )
