"""The MLflow side of the model contract: the pyfunc wrapper, logging and loading.

Apart from :mod:`vigil.model` because importing MLflow costs a process ~55 MB of memory: the
pipelines log and load through this module, while the detector serves the unwrapped
:class:`~vigil.model.AnomalyModel` without importing MLflow at all (``detector.registry``).
What both share (aliases, :class:`~vigil.loaded.LoadedModel`, the loading errors) is in
:mod:`vigil.loaded`; ``vigil.model`` refers to this module only through its pickle shim.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pandas as pd
from mlflow.pyfunc import PythonModel

import mlflow
from vigil.loaded import CHAMPION, LoadedModel, ModelLoadError, NoChampionError
from vigil.settings import MlflowSettings

if TYPE_CHECKING:
    from vigil.model import AnomalyModel


class VigilPyfuncModel(PythonModel):
    """The object logged with ``mlflow.pyfunc.log_model``: delegates to :class:`AnomalyModel`."""

    # no type-hint based input validation: the contract coerces input itself (see log_anomaly_model)
    _skip_type_hint_validation = True

    def __init__(self, model: AnomalyModel) -> None:
        self.model = model

    def predict(self, context, model_input, params=None):  # noqa: ANN001 - MLflow's signature
        frame = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
        return self.model.predict(frame)


def log_anomaly_model(model: AnomalyModel, name: str = "model", **kwargs: Any) -> Any:
    """Log ``model`` as the contract pyfunc into the active run; returns MLflow's ModelInfo.

    Slow (~15 s: environment capture), so training logs only the best cell's model.

    No MLflow signature on purpose: pyfunc schema enforcement rejects frames the contract must
    accept (integer columns for double features, missing columns); :meth:`AnomalyModel.matrix`
    does the coercion instead (expected columns: ``AnomalyModel.feature_columns``).
    """
    return mlflow.pyfunc.log_model(name=name, python_model=VigilPyfuncModel(model), **kwargs)


def register_anomaly_model(
    registry: MlflowSettings,
    model: AnomalyModel,
    alias: str = CHAMPION,
    experiment: str | None = None,
    **kwargs: Any,
) -> int:
    """Log ``model`` in a run of its own, register it as ``registry.model_name`` and point ``alias``
    at it (none if empty); its version. For tests and benchmarks: training registers through the
    promotion rules of ``pipelines.registry`` instead."""
    from mlflow.tracking import MlflowClient

    mlflow.set_tracking_uri(registry.uri)
    mlflow.set_registry_uri(registry.uri)
    mlflow.set_experiment(experiment or registry.experiment)
    with mlflow.start_run():
        info = log_anomaly_model(model, registered_model_name=registry.model_name, **kwargs)
    version = int(info.registered_model_version)
    if alias:
        MlflowClient(registry.uri).set_registered_model_alias(registry.model_name, alias, str(version))
    return version


def load_champion(registry: MlflowSettings, alias: str = CHAMPION) -> LoadedModel:
    """Load ``models:/<registry.model_name>@<alias>``; raise :class:`ModelUnavailableError` subclasses.

    The tracking (and registry) URI comes from ``registry`` (``settings.mlflow``), never from the environment.
    """
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    mlflow.set_tracking_uri(registry.uri)
    mlflow.set_registry_uri(registry.uri)
    client = MlflowClient(tracking_uri=registry.uri, registry_uri=registry.uri)
    name = registry.model_name
    try:
        version = client.get_model_version_by_alias(name, alias)
    except MlflowException as exc:
        raise NoChampionError(
            f"registered model {name!r} has no version with alias {alias!r} at {registry.uri}: "
            f"{exc.message if hasattr(exc, 'message') else exc}"
        ) from exc
    except Exception as exc:  # connection refused, timeouts ...
        raise ModelLoadError(
            f"cannot reach the MLflow registry at {registry.uri} to resolve {name}@{alias}: {exc}"
        ) from exc
    uri = f"models:/{name}@{alias}"
    try:
        model = mlflow.pyfunc.load_model(uri)
    except Exception as exc:
        raise ModelLoadError(f"{uri} (version {version.version}) failed to load: {exc}") from exc
    return LoadedModel(name=name, version=int(version.version), run_id=version.run_id, model=model)
