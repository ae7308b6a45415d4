"""Run an MLflow tracking server: SQLite backend store and artifacts in the run folder."""

from __future__ import annotations

import sys
from pathlib import Path

import requests

from vigil.stack.process import ProcessRecord, start_process, wait_healthy


def mlflow_healthy(url: str) -> bool:
    try:
        return requests.get(f"{url}/health", timeout=2).status_code == 200
    except requests.RequestException:
        return False


def start_mlflow(run_dir: Path, port: int, name: str = "mlflow", timeout_s: float = 90) -> ProcessRecord:
    """Start ``mlflow server`` bound to 127.0.0.1 and wait for ``/health``."""
    state = (run_dir / name).resolve()
    (state / "artifacts").mkdir(parents=True, exist_ok=True)
    url = f"http://127.0.0.1:{port}"
    cmd = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--backend-store-uri",
        f"sqlite:///{state / 'mlflow.db'}",
        "--artifacts-destination",
        str(state / "artifacts"),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    record = start_process(name, cmd, run_dir=run_dir, port=port, url=url)
    wait_healthy(record, lambda: mlflow_healthy(url), timeout_s)
    return record
