"""The server fixtures: real InfluxDB, MLflow and Airflow on free loopback ports, cleaned up after.

Only ``tests/integration`` and ``tests/live`` import them (their conftests); ``tests/unit`` has none,
so a unit test that asks for a server fails at collection ("fixture not found") instead of quietly
starting one.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from toolkit.stack.influxdb import start_influxdb
from toolkit.stack.mlflow_server import start_mlflow
from vigil.influx import InfluxClient
from vigil.processes import ProcessRecord, free_port, stop_process
from vigil.settings import Settings


@pytest.fixture(scope="session")
def services_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("services")


@pytest.fixture(scope="session")
def influx_server(services_dir: Path) -> Iterator[ProcessRecord]:
    """A real influxd on a free port with a temporary data folder."""
    record = start_influxdb(services_dir, free_port(), free_port())
    yield record
    stop_process(record)


@pytest.fixture(scope="session")
def mlflow_server(services_dir: Path) -> Iterator[ProcessRecord]:
    """A real MLflow tracking server (SQLite, local artifacts) on a free port."""
    record = start_mlflow(services_dir, free_port(), timeout_s=240)  # slow to boot on a busy 2-core box
    yield record
    stop_process(record)


@pytest.fixture(scope="session")
def settings(influx_server: ProcessRecord, services_dir: Path) -> Settings:
    """Settings pointing at the session's InfluxDB (MLflow is added by ``mlflow_settings``)."""
    return Settings(
        _env_file=None,
        run_dir=services_dir / "run",
        influx_port=influx_server.port,
        influx_backoff_s=0.2,
        influx_retries=3,
    )


@pytest.fixture(scope="session")
def mlflow_settings(settings: Settings, mlflow_server: ProcessRecord) -> Settings:
    return settings.model_copy(update={"mlflow_port": mlflow_server.port})


@pytest.fixture()
def influx(settings: Settings) -> InfluxClient:
    return InfluxClient(settings.influx)


@pytest.fixture()
def fresh_db(influx: InfluxClient, request: pytest.FixtureRequest) -> Iterator[str]:
    """A database of its own for one test, dropped afterwards."""
    name = "t_" + "".join(ch if ch.isalnum() else "_" for ch in request.node.name)[:50]
    influx.create_database(name)
    yield name
    influx.drop_database(name)


@pytest.fixture(scope="session")
def grafana_history(settings: Settings):
    """Seeded raw + Vigil history in databases of their own (for the Grafana/dashboard checks)."""
    from support.grafana_history import drop, seed

    client = InfluxClient(settings.influx)
    history = seed(client, settings, "g_raw", "g_vigil")
    yield history
    drop(client, history.raw_db, history.vigil_db)


@pytest.fixture(scope="session")
def grafana_settings(settings: Settings, grafana_history) -> Settings:
    """Settings whose raw/vigil databases are the seeded Grafana history's."""
    return settings.model_copy(
        update={"influx_raw_db": grafana_history.raw_db, "influx_vigil_db": grafana_history.vigil_db}
    )


@pytest.fixture(scope="session")
def airflow_stack(mlflow_settings: Settings, tmp_path_factory: pytest.TempPathFactory):
    """A real ``airflow standalone`` (stack manager code) whose tasks use the session's InfluxDB/MLflow.

    Yields ``(settings, AirflowClient)``; shared by the REST, CLI and browser tests (start ~60-90 s).
    """
    from support.airflow_stack import run_airflow, stack_settings

    settings = stack_settings(mlflow_settings, tmp_path_factory.mktemp("stack"))
    for client in run_airflow(settings):
        yield settings, client
