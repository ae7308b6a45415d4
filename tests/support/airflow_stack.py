"""One ``airflow standalone`` for the REST, CLI and browser tests, started with the stack manager's code.

Its tasks talk to the session's InfluxDB and MLflow (``vigil up`` passes every setting to
Airflow as ``VIGIL_*`` variables), on databases and a model name of their own, with
SEED_HOURS x SEED_HOSTS of labelled history seeded before Airflow starts.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

from toolkit.airflow_client import AirflowClient
from toolkit.stack import manager
from vigil.influx import InfluxClient
from vigil.processes import free_port
from vigil.settings import Settings

SEED_HOURS, SEED_HOSTS = 6, 5


def stack_settings(base: Settings, run_dir: Path) -> Settings:
    return base.model_copy(
        update={
            "run_dir": run_dir,
            "airflow_port": free_port(),
            "influx_raw_db": "stack_raw",
            "influx_vigil_db": "stack_vigil",
            "model_name": "vigil-stack",
            "mlflow_experiment": "vigil-stack",
            "airflow_task_retries": 1,
            "airflow_retry_delay_s": 5.0,
            "airflow_parallelism": 4,
        }
    )


def run_airflow(settings: Settings) -> Iterator[AirflowClient]:
    """Seed history, start Airflow (only), wait until vigil_retrain is parsed; stop and drop afterwards."""
    from toolkit.seed import seed_history

    influx = InfluxClient(settings.influx)
    for db in (settings.influx.raw_db, settings.influx.vigil_db):
        influx.create_database(db)
    seed_history(
        influx, settings.influx, settings.collection, hours=SEED_HOURS, hosts=SEED_HOSTS, progress=False
    )
    began = time.monotonic()
    manager.up(settings, only=["airflow"], echo=print)
    try:
        client = AirflowClient.from_settings(settings.airflow)
        client.wait_for_dag("vigil_retrain", timeout_s=180)
        print(f"airflow standalone up and DAGs parsed in {time.monotonic() - began:.0f}s")
        yield client
    finally:
        manager.down(settings, only=["airflow"], echo=print)
        for db in (settings.influx.raw_db, settings.influx.vigil_db):
            influx.drop_database(db)
