"""Run an MLflow tracking server: SQLite backend store and artifacts in the run folder."""

from __future__ import annotations

import sys
from pathlib import Path

import requests

from vigil.processes import ProcessRecord, start_process, wait_healthy


def mlflow_healthy(url: str) -> bool:
    try:
        return requests.get(f"{url}/health", timeout=2).status_code == 200
    except requests.RequestException:
        return False


def mlflow_env() -> dict[str, str]:
    """Environment for ``mlflow server``.

    Why job execution is off: it serves GenAI features Vigil does not use, and costs eight
    extra processes (~1 GB RSS) and several seconds of start-up on a 2-core machine.
    """
    return {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


def mlflow_command(run_dir: Path, port: int, name: str = "mlflow", host: str = "127.0.0.1") -> list[str]:
    """``mlflow server`` with its SQLite store and artifacts in ``run_dir/name`` (created here)."""
    state = (run_dir / name).resolve()
    (state / "artifacts").mkdir(parents=True, exist_ok=True)
    return [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--backend-store-uri",
        f"sqlite:///{state / 'mlflow.db'}",
        "--artifacts-destination",
        str(state / "artifacts"),
        "--host",
        host,
        "--port",
        str(port),
        "--workers",
        "1",
    ]


def start_mlflow(run_dir: Path, port: int, name: str = "mlflow", timeout_s: float = 90) -> ProcessRecord:
    """Start ``mlflow server`` bound to 127.0.0.1 and wait for ``/health``."""
    url = f"http://127.0.0.1:{port}"
    cmd = mlflow_command(run_dir, port, name)
    record = start_process(name, cmd, run_dir=run_dir, port=port, url=url, env=mlflow_env())
    wait_healthy(record, lambda: mlflow_healthy(url), timeout_s)
    return record
