"""A real Spark standalone master + worker as local processes (loopback only).

The pip ``pyspark`` package has no ``sbin/start-*.sh``, but ships ``bin/spark-class``, which
runs the Master and Worker daemons directly (see shared STACK_NOTES). Used by the test that
trains on a ``spark://`` master, and by anyone who wants to try the cluster path without Docker.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import requests

from vigil.processes import ProcessRecord, free_port, start_process, stop_process, wait_healthy


@dataclass
class StandaloneCluster:
    master: ProcessRecord
    worker: ProcessRecord
    master_url: str  # spark://127.0.0.1:PORT
    ui_url: str

    def stop(self) -> None:
        stop_process(self.worker)
        stop_process(self.master)


def spark_home() -> Path:
    import pyspark

    return Path(pyspark.__file__).resolve().parent


def _alive_workers(ui_url: str) -> int:
    try:
        return int(requests.get(f"{ui_url}/json/", timeout=2).json().get("aliveworkers", 0))
    except (requests.RequestException, ValueError):
        return 0


def start_standalone(
    run_dir: Path, cores: int = 1, memory: str = "1g", host: str = "127.0.0.1", timeout_s: float = 180
) -> StandaloneCluster:
    """Start a master and one worker; return once the worker has registered with the master."""
    home = spark_home()
    spark_class = str(home / "bin" / "spark-class")
    env = {
        "SPARK_HOME": str(home),
        "PYSPARK_PYTHON": sys.executable,
        "SPARK_LOCAL_IP": host,
        "SPARK_WORKER_DIR": str(run_dir / "spark-work"),
        "PATH": os.environ.get("PATH", ""),
    }
    port, ui_port, worker_ui = free_port(), free_port(), free_port()
    ui_url = f"http://{host}:{ui_port}"
    master = start_process(
        "spark-master",
        [
            spark_class,
            "org.apache.spark.deploy.master.Master",
            "--host",
            host,
            "--port",
            str(port),
            "--webui-port",
            str(ui_port),
        ],
        run_dir=run_dir,
        port=port,
        url=ui_url,
        env=env,
    )
    master_url = f"spark://{host}:{port}"
    try:
        wait_healthy(master, lambda: requests.get(f"{ui_url}/json/", timeout=2).ok, timeout_s)
        worker = start_process(
            "spark-worker",
            [
                spark_class,
                "org.apache.spark.deploy.worker.Worker",
                master_url,
                "--host",
                host,
                "--cores",
                str(cores),
                "--memory",
                memory,
                "--webui-port",
                str(worker_ui),
            ],
            run_dir=run_dir,
            port=worker_ui,
            url=f"http://{host}:{worker_ui}",
            env=env,
        )
    except Exception:
        stop_process(master)
        raise
    try:
        wait_healthy(worker, lambda: _alive_workers(ui_url) >= 1, timeout_s)
    except Exception:
        stop_process(worker)
        stop_process(master)
        raise
    return StandaloneCluster(master, worker, master_url, ui_url)
