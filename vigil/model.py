"""The model contract: what training logs to MLflow and what the detector loads.

Every trained model, whatever its family (IsolationForest, LOF, GaussianMixture,
Spark MLlib KMeans ...) and engine (scikit-learn, Spark), is logged as ONE MLflow
pyfunc model wrapping an :class:`AnomalyModel`. Its ``predict`` takes the raw
(unscaled) feature frame — columns :data:`vigil.features.FEATURE_COLUMNS`, extra
columns ignored, missing or NaN features read as 0 ("at the host's baseline") —
and returns one row per input row with :data:`PREDICTION_COLUMNS`.

Why one wrapper instead of ``mlflow.sklearn`` / ``mlflow.spark`` flavours: the
detector must serve any family the same way, with scaling and the decision
threshold inside the artifact (so a model can never be served with another
model's threshold), and without a JVM — Spark models are exported to numpy
(:class:`CentroidScorer`) before they are logged.

Explanations (``topN_feature`` / ``topN_contribution``) are computed the same way
for every family by :func:`contributions`: the share of each feature in the squared
scaled distance between the row and the model's reference point for that row
(the training median for density/tree models, the nearest centre for KMeans).
It is cheap (no re-scoring per feature), and because features are already
host-relative z-scores it names what actually moved.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import pandas as pd

from vigil.features import FEATURE_COLUMNS
from vigil.loaded import (  # re-exported: the contract's names, as before the split
    CHALLENGER,
    CHAMPION,
    LoadedModel,
    ModelLoadError,
    ModelUnavailableError,
    NoChampionError,
)

log = logging.getLogger(__name__)

__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "PREDICTION_COLUMNS",
    "TOP_K",
    "AnomalyModel",
    "CentroidScorer",
    "LoadedModel",
    "ModelLoadError",
    "ModelUnavailableError",
    "NoChampionError",
    "Scorer",
    "SklearnScorer",
    "contributions",
    "empty_predictions",
]

#: How many features each prediction names.
TOP_K = 3
#: Output columns of every model's ``predict``, named as in ``vigil.schema.PREDICTIONS``.
PREDICTION_COLUMNS: tuple[str, ...] = (
    "score",
    "threshold",
    "is_anomaly",
    *(f"top{i}_{part}" for i in range(1, TOP_K + 1) for part in ("feature", "contribution")),
)


# ------------------------------------------------------------------------------------------------
# Scorers: the family-specific part, all pure numpy/scikit-learn (picklable, no Spark).


class Scorer(Protocol):
    """Turns a raw feature matrix into scaled features, anomaly scores and reference points."""

    def scaled(self, x: np.ndarray) -> np.ndarray: ...

    def score_scaled(self, xs: np.ndarray) -> np.ndarray:
        """Higher = more anomalous."""
        ...

    def references(self, xs: np.ndarray) -> np.ndarray:
        """For each scaled row, the 'normal' point its contributions are measured from."""
        ...


@dataclass
class SklearnScorer:
    """A fitted scikit-learn ``Pipeline([scaler, detector])`` whose detector has ``score_samples``.

    ``score_samples`` is "higher = more normal" for IsolationForest, LOF(novelty=True),
    GaussianMixture (log-likelihood), EllipticEnvelope and OneClassSVM alike, so the anomaly
    score is its negation.
    """

    pipeline: Any
    reference_point: np.ndarray  # median of the scaled training rows

    @classmethod
    def fit_reference(cls, pipeline: Any, x_train: np.ndarray) -> SklearnScorer:
        xs = pipeline[:-1].transform(x_train)
        return cls(pipeline, np.median(xs, axis=0))

    def scaled(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.pipeline[:-1].transform(x), dtype=float)

    def score_scaled(self, xs: np.ndarray) -> np.ndarray:
        return -np.asarray(self.pipeline[-1].score_samples(xs), dtype=float)

    def references(self, xs: np.ndarray) -> np.ndarray:
        return np.broadcast_to(self.reference_point, xs.shape)


@dataclass
class CentroidScorer:
    """Distance to the nearest centre after standardisation (KMeans; e.g. exported from Spark MLlib)."""

    mean: np.ndarray
    scale: np.ndarray
    centers: np.ndarray  # [k, F] in scaled space

    def scaled(self, x: np.ndarray) -> np.ndarray:
        return (x - self.mean) / np.where(self.scale > 0, self.scale, 1.0)

    def _nearest(self, xs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        d2 = ((xs[:, None, :] - self.centers[None, :, :]) ** 2).sum(axis=2)
        idx = d2.argmin(axis=1)
        return idx, np.sqrt(d2[np.arange(len(xs)), idx])

    def score_scaled(self, xs: np.ndarray) -> np.ndarray:
        return self._nearest(xs)[1]

    def references(self, xs: np.ndarray) -> np.ndarray:
        return self.centers[self._nearest(xs)[0]]


# ------------------------------------------------------------------------------------------------
# Shared explanation logic.


def contributions(xs: np.ndarray, refs: np.ndarray, names: Sequence[str], k: int = TOP_K) -> pd.DataFrame:
    """Top-``k`` features per row by share of the squared scaled distance to the reference point.

    Shares are in [0, 1] and sum to 1 over all features of a row (all zero when the row *is*
    the reference). Ties and all-zero rows keep column order, so the output is deterministic.
    """
    sq = (np.asarray(xs, dtype=float) - np.asarray(refs, dtype=float)) ** 2
    total = sq.sum(axis=1, keepdims=True)
    share = np.divide(sq, total, out=np.zeros_like(sq), where=total > 0)
    k = min(k, share.shape[1])
    order = np.argsort(-share, axis=1, kind="stable")[:, :k]
    rows = np.arange(len(share))[:, None]
    top_share = share[rows, order]
    names_arr = np.asarray(names, dtype=object)
    out: dict[str, Any] = {}
    for i in range(k):
        out[f"top{i + 1}_feature"] = names_arr[order[:, i]] if len(share) else []
        out[f"top{i + 1}_contribution"] = top_share[:, i] if len(share) else []
    return pd.DataFrame(out)


# ------------------------------------------------------------------------------------------------
# The model: feature handling + scorer + threshold.


@dataclass
class AnomalyModel:
    """A scorer, its threshold and where it came from; ``predict`` implements the contract."""

    scorer: Any  # a Scorer
    threshold: float
    family: str
    engine: str = "sklearn"
    params: dict[str, Any] = field(default_factory=dict)
    feature_columns: tuple[str, ...] = FEATURE_COLUMNS

    def matrix(self, frame: pd.DataFrame) -> np.ndarray:
        """The feature matrix in model column order: missing columns and NaN/inf read as 0."""
        data = pd.DataFrame(index=frame.index)
        for col in self.feature_columns:
            data[col] = pd.to_numeric(frame[col], errors="coerce") if col in frame.columns else np.nan
        x = data.to_numpy(dtype=float, na_value=np.nan)
        x[~np.isfinite(x)] = 0.0
        return x

    def score(self, frame: pd.DataFrame) -> np.ndarray:
        """Anomaly scores only (higher = more anomalous)."""
        if len(frame) == 0:
            return np.zeros(0)
        return self.scorer.score_scaled(self.scorer.scaled(self.matrix(frame)))

    def predict(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The contract: one output row per input row, in input order, with PREDICTION_COLUMNS."""
        if len(frame) == 0:
            return empty_predictions()
        xs = self.scorer.scaled(self.matrix(frame))
        scores = self.scorer.score_scaled(xs)
        out = pd.DataFrame(
            {
                "score": scores.astype(float),
                "threshold": float(self.threshold),
                "is_anomaly": (scores > self.threshold).astype(np.int64),
            }
        )
        top = contributions(xs, self.scorer.references(xs), self.feature_columns)
        for i in range(1, TOP_K + 1):  # a model with fewer than TOP_K features still fills every column
            if f"top{i}_feature" not in top.columns:
                top[f"top{i}_feature"], top[f"top{i}_contribution"] = "", 0.0
        out = pd.concat([out, top], axis=1)
        out.index = frame.index
        return out[list(PREDICTION_COLUMNS)]


def empty_predictions() -> pd.DataFrame:
    out = pd.DataFrame({c: pd.Series(dtype=float) for c in PREDICTION_COLUMNS})
    out["is_anomaly"] = out["is_anomaly"].astype(np.int64)
    for i in range(1, TOP_K + 1):
        out[f"top{i}_feature"] = out[f"top{i}_feature"].astype(object)
    return out


# --- pickle compatibility shim --------------------------------------------------------------------
# Not part of the contract. The MLflow side moved to :mod:`vigil.pyfunc`, but model versions
# registered before the move pickled their wrapper as ``vigil.model.VigilPyfuncModel``, and
# unpickling them looks that name up here. It resolves lazily (importing MLflow costs a process
# ~55 MB, and the detector serves without it). This is the only import of ``vigil.pyfunc`` from
# this module; ``vigil.pyfunc`` itself imports only ``vigil.loaded``, so there is no cycle.
# Remove it once no such version is served (``tests/integration/test_pipeline_model.py`` pins it).


def __getattr__(name: str) -> Any:
    """Resolve ``vigil.model.VigilPyfuncModel`` for pickles of versions registered before the
    MLflow side moved to :mod:`vigil.pyfunc` (see the comment above)."""
    if name == "VigilPyfuncModel":
        from vigil.pyfunc import VigilPyfuncModel

        return VigilPyfuncModel
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
