"""The registry of local services: one :class:`Service` entry each, in start order.

Why a registry: ``up``, ``down`` and ``status`` treat every service the same way
(launch, health-check with a timeout, record PID, stop), so a later service
plugs in by adding one entry here, not by touching the manager.
"""

from __future__ import annotations

import importlib.util
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import requests

from toolkit.stack import airflow
from toolkit.stack.influxdb import influxdb_command
from toolkit.stack.mlflow_server import mlflow_command, mlflow_env, mlflow_healthy
from toolkit.stack.recorded import env_name, env_value
from vigil.influx import InfluxClient, InfluxError, quote_literal
from vigil.mlflow_ui import home_url
from vigil.processes import ProcessRecord
from vigil.settings import PROJECT_ROOT, Settings, flat_get, flat_names, is_explicit


@dataclass(frozen=True)
class Launch:
    """How to start a service: command, extra environment, working folder."""

    cmd: list[str]
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path = PROJECT_ROOT


@dataclass(frozen=True)
class Service:
    """One local service.

    ``module``: a module that must be importable for the service to exist yet (services
    implemented later are registered now and skipped with a note until their code lands).
    ``healthy`` gets the settings and the running record. ``after_start`` runs once the
    service is healthy (e.g. create databases) and returns progress lines to print.
    """

    name: str
    launch: Callable[[Settings], Launch]
    healthy: Callable[[Settings, ProcessRecord], bool]
    port: Callable[[Settings], int | None]
    url: Callable[[Settings], str]
    timeout_s: float
    module: str | None = None
    requires: tuple[str, ...] = ()
    extra_ports: Callable[[Settings], list[int]] = lambda s: []
    after_start: Callable[[Settings], list[str]] | None = None
    detail: Callable[[Settings], str] | None = None
    #: settings ``vigil status`` shows for this service (intervals, databases, ports)
    key_settings: tuple[str, ...] = ()

    def available(self) -> bool:
        """True when the service's code exists (its ``module`` is importable)."""
        if self.module is None:
            return True
        try:
            return importlib.util.find_spec(self.module) is not None
        except ModuleNotFoundError:
            return False


def settings_env(settings: Settings) -> dict[str, str]:
    """Every setting as a ``VIGIL_*`` variable, so child processes see exactly our settings.

    Why: a Settings object may have been built in code (tests, ``--only`` runs with overrides);
    the children read theirs from the environment, which must agree.
    """
    env: dict[str, str] = {}
    for name in flat_names():
        value = env_value(flat_get(settings, name))
        if value is not None:
            env[env_name(name)] = value
    return env


def _local(settings: Settings, port: int) -> str:
    return f"http://{settings.bind_host}:{port}"


def _get_ok(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False


def _vigil(*args: str) -> list[str]:
    """A ``vigil`` sub-command run by this interpreter (no reliance on the script being on PATH)."""
    return [sys.executable, "-m", "toolkit.cli", *args]


# --- detector -------------------------------------------------------------------------------------

#: Allowed lateness of the local stack's detector unless VIGIL_DETECTOR__ALLOWED_LATENESS_S is set. Why not
#: the setting's default (20 s, sized for Telegraf: flush_interval 10 s + flush_jitter 2 s + one
#: retry): the local collector writes each gather as soon as it is taken, so its points reach
#: InfluxDB about a second after their timestamp and an interval is complete when it ends. Waiting
#: 20 s more would only delay every alarm by 15 s.
LOCAL_COLLECTOR_LATENESS_S = 5.0


def _detector_launch(settings: Settings) -> Launch:
    explicit = is_explicit(settings, "allowed_lateness_s")
    env = {} if explicit else {"VIGIL_DETECTOR__ALLOWED_LATENESS_S": str(LOCAL_COLLECTOR_LATENESS_S)}
    return Launch(_vigil("detector", "run"), env=env)


# --- InfluxDB -------------------------------------------------------------------------------------


def _influx_local_client(settings: Settings) -> InfluxClient:
    return InfluxClient(settings.influx, url=_local(settings, settings.influx.port), retries=0, timeout_s=2)


def _influx_launch(settings: Settings) -> Launch:
    return Launch(influxdb_command(settings.run_dir, settings.influx.port, settings.influx.rpc_port))


def _influx_create_databases(settings: Settings) -> list[str]:
    client = _influx_local_client(settings)
    dbs = [settings.influx.raw_db, settings.influx.vigil_db]
    if not settings.influx.create_databases:
        return [f"database creation disabled; expecting {', '.join(dbs)} to exist"]
    done = [db for db in dbs if client.create_database(db)]
    return [f"databases ready: {', '.join(done)}"] if done else ["CREATE DATABASE not supported here"]


# --- collector --------------------------------------------------------------------------------------


def _collector_healthy(settings: Settings, record: ProcessRecord) -> bool:
    """Alive for a couple of seconds (past its imports and first gather): the cheap check."""
    proc = record.process()
    return proc is not None and time.time() - record.create_time > 2.0


def _collector_detail(settings: Settings) -> str:
    """Age of the newest ``mem`` point of this host: proof that points are arriving."""
    host = settings.collection.hostname or socket.gethostname()
    q = f'SELECT last("total") FROM "mem" WHERE "host" = {quote_literal(host)} AND time > now() - 10m'  # noqa: S608
    try:
        series = _influx_local_client(settings).query(settings.influx.raw_db, q)
    except InfluxError:
        return "no points yet (InfluxDB not answering)"
    if not series or not series[0].get("values"):
        return "no points in the last 10 min"
    age = time.time() - series[0]["values"][0][0] / 1e9
    return f"last point {age:.0f}s ago"


# --- the registry ------------------------------------------------------------------------------------

SERVICES: tuple[Service, ...] = (
    Service(
        name="influxdb",
        launch=_influx_launch,
        healthy=lambda s, r: _influx_local_client(s).healthy(),
        port=lambda s: s.influx.port,
        url=lambda s: _local(s, s.influx.port),
        timeout_s=30,
        extra_ports=lambda s: [s.influx.rpc_port],
        after_start=_influx_create_databases,
        key_settings=("influx_port", "influx_rpc_port", "influx_raw_db", "influx_vigil_db"),
    ),
    Service(
        name="mlflow",
        launch=lambda s: Launch(mlflow_command(s.run_dir, s.mlflow.port, host=s.bind_host), mlflow_env()),
        healthy=lambda s, r: mlflow_healthy(_local(s, s.mlflow.port)),
        port=lambda s: s.mlflow.port,
        url=lambda s: home_url(_local(s, s.mlflow.port)),  # the UI on training runs, not GenAI
        timeout_s=180,
        key_settings=("mlflow_port", "mlflow_experiment", "model_name"),
    ),
    Service(
        name="airflow",
        launch=lambda s: Launch(airflow.airflow_command(s.airflow), airflow.airflow_env(s.airflow)),
        healthy=lambda s, r: airflow.airflow_healthy(s.airflow),
        port=lambda s: s.airflow.port,
        url=lambda s: airflow.airflow_local_url(s.airflow),
        timeout_s=300,
        after_start=lambda s: [f"admin password file: {airflow.password_file(s.airflow)}"],
        detail=lambda s: f"password: {airflow.password_file(s.airflow)}",
        key_settings=("airflow_port", "airflow_parallelism", "feature_interval_s", "collect_interval_s"),
    ),
    Service(
        name="collector",
        launch=lambda s: Launch(_vigil("collect")),
        healthy=_collector_healthy,
        port=lambda s: None,
        url=lambda s: f"{_local(s, s.influx.port)} db={s.influx.raw_db}",
        timeout_s=30,
        module="toolkit.collector.cli",
        requires=("influxdb",),
        detail=_collector_detail,
        key_settings=("collect_interval_s", "influx_port", "influx_raw_db", "hostname"),
    ),
    Service(
        name="detector",
        launch=_detector_launch,
        healthy=lambda s, r: _get_ok(f"{_local(s, s.detector.port)}/health"),
        port=lambda s: s.detector.port,
        url=lambda s: _local(s, s.detector.port),
        timeout_s=120,
        module="detector.cli",
        requires=("influxdb", "mlflow"),
        # --workers N: worker i serves on detector_port + i (worker 0 answers the health probe)
        extra_ports=lambda s: [s.detector.port + i for i in range(1, s.detector.workers)],
        key_settings=(
            "feature_interval_s",
            "poll_interval_s",
            "allowed_lateness_s",
            "influx_raw_db",
            "influx_vigil_db",
            "detector_port",
            "detector_workers",
            "model_name",
        ),
    ),
    Service(
        name="target",
        # The stress target app: ``python -m stress.target_app`` serving on settings.stress.target_port.
        launch=lambda s: Launch([sys.executable, "-m", "stress.target_app"]),
        healthy=lambda s, r: _get_ok(f"{_local(s, s.stress.target_port)}/health"),
        port=lambda s: s.stress.target_port,
        url=lambda s: _local(s, s.stress.target_port),
        timeout_s=60,
        module="stress.target_app",
        key_settings=("target_port", "target_usual_rps"),
    ),
)

SERVICE_NAMES: tuple[str, ...] = tuple(s.name for s in SERVICES)


def get_service(name: str) -> Service:
    for service in SERVICES:
        if service.name == name:
            return service
    raise KeyError(f"unknown service {name!r}; known: {', '.join(SERVICE_NAMES)}")
