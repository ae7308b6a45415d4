"""How long ``vigil up`` takes per service, cold (fresh run folder) and warm (already running), and ``down``.

Runs on free ports with a temporary run folder, so it does not disturb a stack you have running.

    .venv/bin/python bench/stack_up.py [--only influxdb,mlflow,airflow]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from toolkit.stack import manager
from vigil.processes import free_port
from vigil.settings import Settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="influxdb,mlflow,airflow")
    args = parser.parse_args()
    only = [n for n in args.only.split(",") if n]
    with tempfile.TemporaryDirectory(prefix="vigil-bench-") as tmp:
        settings = Settings(
            _env_file=None,
            run_dir=Path(tmp) / "run",
            influx_port=free_port(),
            influx_rpc_port=free_port(),
            mlflow_port=free_port(),
            airflow_port=free_port(),
        )
        quiet = lambda line: None  # noqa: E731 - progress lines are not the point here
        try:
            began = time.monotonic()
            cold = manager.up(settings, only=only, echo=quiet)
            cold_total = time.monotonic() - began
            began = time.monotonic()
            manager.up(settings, only=only, echo=quiet)
            warm_total = time.monotonic() - began
        finally:
            began = time.monotonic()
            manager.down(settings, echo=quiet)
            down_total = time.monotonic() - began
    print("service     seconds to healthy (cold, launched together)")
    for name, seconds in cold.items():
        print(f"{name:<11} {seconds:6.1f}")
    print(f"up total    {cold_total:6.1f}\nup again    {warm_total:6.1f}\ndown        {down_total:6.1f}")


if __name__ == "__main__":
    main()
