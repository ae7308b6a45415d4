"""A real detector subprocess (``python -m detector.cli run``) for load runs and their tests.

Why a subprocess and not the class in-process: a load test must measure what an operator
would run — its own interpreter, its own GIL, its RSS — and must not share a core's time
with the load generator's Python code. Its configuration is passed the only way the service
reads it: ``VIGIL_*`` environment variables, rendered from a :class:`Settings` object.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from vigil.processes import ProcessRecord, log_tail, start_process, stop_process, wait_healthy
from vigil.settings import Settings, flat_get, new_env_name

#: Settings passed to the detector subprocess (everything else keeps its default).
EXPORTED = (
    "run_dir",
    "bind_host",
    "influx_port",
    "influx_url",
    "influx_username",
    "influx_raw_db",
    "influx_vigil_db",
    "influx_batch_size",
    "influx_write_workers",
    "mlflow_port",
    "model_name",
    "feature_interval_s",
    "detector_port",
    "poll_interval_s",
    "detector_wake_on_due",
    "allowed_lateness_s",
    "reload_interval_s",
    "checkpoint_every",
    "warmup_s",
    "detector_history_hours",
    "detector_online_learn_max",
    "detector_max_catchup_intervals",
    "detector_read_budget",
    "buffer_max_points",
    "random_seed",
)


def detector_env(settings: Settings) -> dict[str, str]:
    env = {new_env_name(name): str(flat_get(settings, name)) for name in EXPORTED}
    env = {k: v for k, v in env.items() if v != "None"}
    secret = settings.influx.password.get_secret_value()
    if secret:
        env["VIGIL_INFLUX__PASSWORD"] = secret
    return env


@dataclass
class DetectorProcess:
    """A running detector: its record (for stop) and its HTTP base URL."""

    record: ProcessRecord
    url: str

    @property
    def pid(self) -> int:
        return self.record.pid

    def rss_mb(self) -> float:
        proc = self.record.process()
        return proc.memory_info().rss / 2**20 if proc is not None else float("nan")

    def cpu_seconds(self) -> float:
        proc = self.record.process()
        if proc is None:
            return float("nan")
        t = proc.cpu_times()
        return t.user + t.system

    def health(self) -> dict[str, Any]:
        resp = requests.get(self.url + "/health", timeout=5)
        return json.loads(resp.text)

    def metrics(self) -> dict[str, float]:
        """Unlabelled samples of ``/metrics`` (``vigil_detector_*``), name -> value."""
        text = requests.get(self.url + "/metrics", timeout=5).text
        out: dict[str, float] = {}
        for line in text.splitlines():
            m = re.match(r"^(vigil_detector_[a-z_]+)(\{[^}]*\})?\s+(\S+)$", line)
            if m:
                key = m.group(1) + (m.group(2) or "")
                out[key] = float(m.group(3))
        return out

    def log_tail(self, lines: int = 30) -> str:
        return log_tail(self.record.log, lines)

    def stop(self) -> None:
        stop_process(self.record)


def start_detector(settings: Settings, name: str = "detector", timeout_s: float = 90.0) -> DetectorProcess:
    """Start the detector with ``settings`` (``detector_port`` must be a real free port); wait for /metrics."""
    run_dir = Path(settings.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    url = f"http://{settings.bind_host}:{settings.detector.port}"
    record = start_process(
        name,
        [sys.executable, "-m", "detector.cli", "run"],
        run_dir=run_dir,
        port=settings.detector.port,
        url=url,
        env=detector_env(settings),
        cwd=run_dir,  # no stray .env from the caller's folder
    )
    proc = DetectorProcess(record, url)

    def up() -> bool:
        return requests.get(url + "/metrics", timeout=2).status_code == 200

    try:
        wait_healthy(record, up, timeout_s)
    except BaseException:
        stop_process(record)
        raise
    return proc
