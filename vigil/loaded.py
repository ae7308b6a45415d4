"""A registry model version loaded for serving, the registry aliases, and the errors of loading one.

What :mod:`vigil.model` (the model contract) and :mod:`vigil.pyfunc` (its MLflow side) share, apart
from both so that neither imports the other (``vigil.model`` re-exports these names).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd

from vigil.errors import VigilError

if TYPE_CHECKING:
    from vigil.model import AnomalyModel

#: Registry aliases.
CHAMPION, CHALLENGER = "champion", "challenger"


class ModelUnavailableError(VigilError, RuntimeError):
    """No model can be served: no champion alias, or its artifact failed to load."""


class NoChampionError(ModelUnavailableError):
    """The registered model has no version with the requested alias (or does not exist)."""


class ModelLoadError(ModelUnavailableError):
    """The alias exists but loading its artifact failed."""


@dataclass
class LoadedModel:
    """A registry model version loaded for serving."""

    name: str
    version: int
    run_id: str | None
    model: Any  # an AnomalyModel, or an mlflow.pyfunc.PyFuncModel wrapping one

    def predict(self, frame: pd.DataFrame) -> pd.DataFrame:
        return self.model.predict(frame)

    @property
    def anomaly_model(self) -> AnomalyModel:
        """The unwrapped :class:`~vigil.model.AnomalyModel` (family, engine, params, threshold)."""
        unwrap = getattr(self.model, "unwrap_python_model", None)  # an MLflow PyFuncModel
        return self.model if unwrap is None else unwrap().model
