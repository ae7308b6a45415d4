"""What Vigil's three DAGs share: default args, the drift Asset, the service check, small helpers.

Why here and not in ``pipelines/``: these are Airflow concerns (retry policy, the Asset,
turning a validation failure into "fail now, do not retry"), and ``pipelines/`` must not
import Airflow. Everything that does real work lives in ``pipelines/``; a task calls one
of its functions and passes artifacts (paths, run ids, versions) on as XCom.

Settings come from the environment through :class:`vigil.settings.Settings` (the
``VIGIL_*`` variables ``vigil up`` passes to Airflow); no DAG file holds an address,
user or password.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import marshmallow
import pendulum
import pydantic
from airflow.sdk import Asset
from airflow.sdk.exceptions import AirflowFailException

from vigil.errors import BadDataError
from vigil.settings import AirflowSettings, InfluxSettings, MlflowSettings, Settings

log = logging.getLogger(__name__)

OWNER = "vigil"
START_DATE = pendulum.datetime(2026, 1, 1, tz="UTC")

#: Emitted by vigil_drift_monitor when the latest window drifted; vigil_retrain is scheduled on it.
DRIFT_ASSET = Asset(name="vigil_drift_detected", uri="vigil://drift/detected", group="vigil")

#: Exceptions that mean "the data is bad": retrying cannot help. Vigil's own derive from
#: :class:`vigil.errors.BadDataError` (``pipelines.validate.DataValidationError``: the dataset failed
#: its expectations; ``pipelines.inject.InjectionError``: a window too short to inject anomalies
#: into); a pydantic or marshmallow (Great Expectations) ``ValidationError`` means the same.
NO_RETRY_ERRORS: tuple[type[BaseException], ...] = (
    BadDataError,
    pydantic.ValidationError,
    marshmallow.ValidationError,
)

F = TypeVar("F", bound=Callable[..., Any])


def settings() -> Settings:
    """Fresh settings from the task's environment (never cached across runs in one worker)."""
    return Settings()


def default_args(airflow: AirflowSettings) -> dict[str, Any]:
    """Owner and retry policy shared by every Vigil task: exponential backoff on infrastructure errors."""
    return {
        "owner": OWNER,
        "retries": airflow.task_retries,
        "retry_delay": timedelta(seconds=airflow.retry_delay_s),
        "retry_exponential_backoff": 2.0,
        "max_retry_delay": timedelta(minutes=10),
    }


def no_retry_on_bad_data(func: F) -> F:
    """Re-raise a data-validation failure as ``AirflowFailException``: the task fails at once.

    Infrastructure errors (connection refused, timeouts, 5xx) propagate unchanged and are retried
    with backoff; bad data would fail the same way on every retry, so it is not.
    """

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except Exception as exc:
            if isinstance(exc, NO_RETRY_ERRORS):
                raise AirflowFailException(f"{type(exc).__name__}: {exc}") from exc
            raise

    return wrapper  # type: ignore[return-value]


class ServiceUnreachable(ConnectionError):
    """InfluxDB or MLflow did not answer; the message names which one and where."""


def check_services(
    influx_config: InfluxSettings, registry: MlflowSettings, need_mlflow: bool = True
) -> dict[str, str]:
    """Ping InfluxDB (and MLflow): the first task of every DAG, so an outage fails early and by name."""
    import requests

    from vigil.influx import InfluxClient, InfluxError

    problems: list[str] = []
    found: dict[str, str] = {}
    try:
        found["influxdb"] = InfluxClient(influx_config, retries=0, timeout_s=5).ping()
    except InfluxError as exc:
        problems.append(f"InfluxDB at {influx_config.base_url} is unreachable ({exc})")
    if need_mlflow:
        try:
            resp = requests.get(f"{registry.uri}/health", timeout=5)
            resp.raise_for_status()
            found["mlflow"] = registry.uri
        except requests.RequestException as exc:
            problems.append(f"MLflow at {registry.uri} is unreachable ({exc})")
    if problems:
        raise ServiceUnreachable("; ".join(problems))
    log.info("services reachable: %s", found)
    return found


def to_xcom(value: Any) -> Any:
    """A JSON-safe copy of a pipelines result (dataclasses, paths, timestamps, numpy; NaN -> None)."""
    from pipelines.common import to_jsonable

    return json.loads(json.dumps(to_jsonable(value), default=_json_default, allow_nan=False))


def _json_default(obj: Any) -> Any:
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "item"):  # numpy scalar
        return obj.item()
    if hasattr(obj, "isoformat"):
        return obj.isoformat()
    if dataclasses.is_dataclass(obj):
        return dataclasses.asdict(obj)
    return str(obj)


def artifact_dir(cfg: Settings, dag_id: str, run_id: str) -> Path:
    """Where one run's files live (datasets, reports): under the run folder, one folder per run."""
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in run_id)
    path = cfg.run_dir / "artifacts" / dag_id / safe
    path.mkdir(parents=True, exist_ok=True)
    return path


def retrain_decision(
    *, drifted: bool, drift_share: float | None, forced: bool, champion_version: Any, run_type: str
) -> tuple[bool, str]:
    """Whether vigil_retrain trains, and why (the reason is logged and ends up in the run summary)."""
    run_type = str(getattr(run_type, "value", run_type))
    share = f"{drift_share:.0%} of features" if drift_share is not None else "share unknown"
    if champion_version in (None, "", 0):
        return True, "no champion yet"
    if forced:
        return True, "force_promote is set"
    if drifted:
        return True, f"drift found ({share})"
    if run_type == "scheduled":
        return True, "scheduled daily retrain"
    if run_type == "asset_triggered":
        return True, "triggered by a drift event from vigil_drift_monitor"
    return False, (
        f"skipped: no drift ({share} drifted), champion v{champion_version} exists, "
        f"force_promote not set and the run is {run_type}, not scheduled"
    )


def mlflow_run_url(registry: MlflowSettings, experiment_id: str | None, run_id: str | None) -> str | None:
    """The MLflow UI address of a run (what the summary shows), opened on runs, not GenAI."""
    from vigil.mlflow_ui import run_url

    if not run_id:
        return None
    return run_url(registry.uri, experiment_id or "0", run_id)


def champion_info(registry: MlflowSettings) -> dict[str, Any] | None:
    """The serving champion (version, holdout metrics from its tags, training run URL), or None.

    Read-only registry lookup used by ``decide`` and ``summary``; promotion logic stays in
    ``pipelines.registry``.
    """
    from mlflow.exceptions import MlflowException

    from mlflow import MlflowClient
    from vigil.mlflow_ui import model_version_url

    client = MlflowClient(tracking_uri=registry.uri, registry_uri=registry.uri)
    try:
        mv = client.get_model_version_by_alias(registry.model_name, "champion")
    except MlflowException:
        return None
    experiment_id = None
    if mv.run_id:
        try:
            experiment_id = client.get_run(mv.run_id).info.experiment_id
        except MlflowException:
            experiment_id = None
    metrics = {k.removeprefix("metric."): float(v) for k, v in mv.tags.items() if k.startswith("metric.")}
    return {
        "name": registry.model_name,
        "version": int(mv.version),
        "run_id": mv.run_id,
        "metrics": metrics,
        "run_url": mlflow_run_url(registry, experiment_id, mv.run_id),
        "model_url": model_version_url(registry.uri, registry.model_name, mv.version),
    }


def grid_overrides(grid_size: str, families: list[str]) -> dict[str, dict[str, list[Any]]] | None:
    """``small``: the first value of every grid axis (one cell per family, a quick retrain); ``full``: all."""
    if grid_size == "full":
        return None
    from pipelines.search import small_grid

    return small_grid(families)


def experiment_id(registry: MlflowSettings, run_id: str | None) -> str | None:
    """The experiment of an MLflow run (for its UI address)."""
    if not run_id:
        return None
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=registry.uri).get_run(run_id).info.experiment_id
