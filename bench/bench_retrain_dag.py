"""How long a full ``vigil_retrain`` run takes, per task, on seeded history (default 24 h x 20 hosts).

Starts its own InfluxDB and MLflow on free loopback ports in a temporary folder, seeds labelled
history, runs ``vigil_retrain`` in-process with ``dag.test()`` (tasks run one after another, as
with a single worker) in a throw-away AIRFLOW_HOME, and prints seconds per task.

    .venv/bin/python bench/bench_retrain_dag.py [--hours 24] [--hosts 20] [--engine sklearn] [--grid small]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from vigil.settings import PROJECT_ROOT, Settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, default=24)
    parser.add_argument("--hosts", type=int, default=20)
    parser.add_argument("--engine", default="sklearn", choices=["sklearn", "spark", "both"])
    parser.add_argument("--grid", default="small", choices=["small", "full"])
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="vigil-bench-dag-"))
    home = work / "airflow"
    os.environ.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_ROOT / "dags"),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "GX_ANALYTICS_ENABLED": "false",
        }
    )
    from toolkit.seed import seed_history
    from toolkit.stack.influxdb import start_influxdb
    from toolkit.stack.mlflow_server import start_mlflow
    from toolkit.stack.services import settings_env
    from vigil.influx import InfluxClient
    from vigil.processes import free_port, stop_process

    influx_rec = start_influxdb(work, free_port(), free_port())
    mlflow_rec = start_mlflow(work, free_port())
    try:
        settings = Settings(
            _env_file=None,
            run_dir=work / "run",
            influx_port=influx_rec.port,
            mlflow_port=mlflow_rec.port,
            airflow_task_retries=0,
        )
        client = InfluxClient(settings.influx)
        for db in (settings.influx.raw_db, settings.influx.vigil_db):
            client.create_database(db)
        began = time.perf_counter()
        seed_history(
            client, settings.influx, settings.collection, hours=args.hours, hosts=args.hosts, progress=True
        )
        print(f"seeded {args.hours:g} h x {args.hosts} hosts in {time.perf_counter() - began:.1f}s")
        os.environ.update(settings_env(settings))
        began = time.perf_counter()
        subprocess.run(
            [str(Path(sys.executable).parent / "airflow"), "db", "migrate"], check=True, capture_output=True
        )
        print(f"airflow db migrate in {time.perf_counter() - began:.1f}s")

        from airflow.dag_processing.dagbag import BundleDagBag

        bag = BundleDagBag(dag_folder=str(PROJECT_ROOT / "dags"), bundle_path=PROJECT_ROOT / "dags")
        dag = bag.dags["vigil_retrain"]
        conf = {"lookback_hours": int(args.hours), "engine": args.engine, "grid_size": args.grid}
        began = time.perf_counter()
        run = dag.test(run_conf=conf)
        total = time.perf_counter() - began
        print(f"\nvigil_retrain {conf}: {run.state} in {total:.1f}s (dag.test, one task at a time)")
        print(f"{'task':<16} {'state':<10} {'seconds':>8}")
        tis = sorted(run.get_task_instances(), key=lambda t: (t.start_date is None, t.start_date))
        for ti in tis:
            secs = (
                (ti.end_date - ti.start_date).total_seconds()
                if ti.start_date and ti.end_date
                else float("nan")
            )
            print(f"{ti.task_id:<16} {ti.state!s:<10} {secs:>8.1f}")
    finally:
        stop_process(mlflow_rec)
        stop_process(influx_rec)


if __name__ == "__main__":
    main()
