"""The scikit-learn grid: model families, their documented grids, and how one grid cell is scored.

One function, :func:`evaluate_cell`, fits and scores a cell; the local search loops over it
and the Spark search ships it to executors (``applyInPandas``), so both engines compute the
same numbers on the same data and seed — and agree on the best configuration.

Protocol (semi-supervised, time-ordered):
* fit on the *normal* rows (label 0) of the training period, at most ``max_train_rows`` of them
  sampled with the seed (the detectors model normal behaviour; more rows cost time, not accuracy);
* score every row of the later validation period; objective = PR-AUC (average precision) of
  the scores against the labels, with the threshold at the conservative end of the validation F1
  plateau (``pipelines.metrics.best_f1_threshold``) kept as the model's threshold.

Grid (why these values): IsolationForest ``n_estimators`` {100, 200} x ``max_samples`` {256, 1024}
(tree count vs. sub-sample size, the two knobs the paper finds matter); LOF ``n_neighbors``
{10, 35} (local vs. smoother density); GaussianMixture ``n_components`` {1, 4} (one Gaussian =
a Mahalanobis distance, a strong baseline on features that are already z-scores, vs. a few
operating modes), score = negative log-likelihood. (EllipticEnvelope was tried: its MCD fit took
~1 min per cell on 5k x 27 rows for no gain over one full-covariance Gaussian.) Every family sits
behind a ``StandardScaler`` inside one ``Pipeline``.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.ensemble import IsolationForest
from sklearn.mixture import GaussianMixture
from sklearn.neighbors import LocalOutlierFactor
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from pipelines.common import PipelineError, TimeSplit, feature_matrix
from pipelines.metrics import best_f1_threshold, point_metrics
from vigil.model import AnomalyModel, SklearnScorer


@dataclass(frozen=True)
class Family:
    name: str
    build: Callable[[dict[str, Any], int], Any]
    grid: dict[str, list[Any]]


FAMILIES: dict[str, Family] = {
    "isolation_forest": Family(
        "isolation_forest",
        lambda p, seed: IsolationForest(random_state=seed, n_jobs=1, **p),
        {"n_estimators": [100, 200], "max_samples": [256, 1024]},
    ),
    "lof": Family(
        "lof",
        lambda p, seed: LocalOutlierFactor(novelty=True, n_jobs=1, **p),
        {"n_neighbors": [10, 35]},
    ),
    "gaussian_mixture": Family(
        "gaussian_mixture",
        lambda p, seed: GaussianMixture(random_state=seed, covariance_type="full", **p),
        {"n_components": [1, 4]},
    ),
}
SKLEARN_FAMILIES: tuple[str, ...] = tuple(FAMILIES)
OBJECTIVES = ("pr_auc", "f1")


def small_grid(families: list[str] | tuple[str, ...]) -> dict[str, dict[str, list[Any]]]:
    """The first value of every grid axis of ``families``: one cell per family, a quick retrain.

    What the retrain DAG's ``grid_size=small`` and the demo use; ``None`` as overrides means the full grid.
    """
    return {f: {k: list(v[:1]) for k, v in FAMILIES[f].grid.items()} for f in families if f in FAMILIES}


@dataclass(frozen=True)
class Cell:
    """One grid cell: a family and its parameters (JSON-able, so it travels to Spark executors)."""

    family: str
    params: tuple[tuple[str, Any], ...]

    @property
    def param_dict(self) -> dict[str, Any]:
        return dict(self.params)

    @property
    def name(self) -> str:
        return f"{self.family}[" + ",".join(f"{k}={v}" for k, v in self.params) + "]"

    def to_json(self) -> str:
        return json.dumps({"family": self.family, "params": [list(p) for p in self.params]})

    @classmethod
    def from_json(cls, text: str) -> Cell:
        raw = json.loads(text)
        return cls(raw["family"], tuple((k, v) for k, v in raw["params"]))


def build_grid(
    families: Iterable[str] = SKLEARN_FAMILIES, overrides: dict[str, dict[str, list[Any]]] | None = None
) -> list[Cell]:
    """All cells of the requested families (grid values may be overridden per family)."""
    cells = []
    for fam in families:
        if fam not in FAMILIES:
            raise PipelineError(f"unknown model family {fam!r}; known: {sorted(FAMILIES)}")
        grid = {**FAMILIES[fam].grid, **((overrides or {}).get(fam, {}))}
        keys = sorted(grid)
        for values in itertools.product(*(grid[k] for k in keys)):
            cells.append(Cell(fam, tuple(zip(keys, values, strict=True))))
    return cells


@dataclass
class SearchData:
    """What every cell sees: normal training rows, validation rows and labels (numpy, broadcastable)."""

    x_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray

    @classmethod
    def from_split(cls, split: TimeSplit, max_train_rows: int, seed: int) -> SearchData:
        normal = split.train[split.train["label"] == 0]
        if len(normal) < 50:
            raise PipelineError(f"only {len(normal)} normal training rows; need at least 50")
        if len(split.validation) == 0:
            raise PipelineError("the validation period is empty")
        y_val = split.validation["label"].to_numpy(dtype=np.int64)
        if y_val.sum() == 0:
            raise PipelineError(
                "the validation period has no labelled anomalies: the objective is undefined "
                "(extract a longer window or one with labelled incidents)"
            )
        x = feature_matrix(normal)
        if len(x) > max_train_rows:
            rng = np.random.default_rng(seed)
            x = x[np.sort(rng.choice(len(x), size=max_train_rows, replace=False))]
        return cls(x, feature_matrix(split.validation), y_val)


@dataclass
class CellResult:
    cell: Cell
    metrics: dict[str, float]
    model: AnomalyModel | None = field(default=None, repr=False)

    def objective(self, name: str) -> float:
        value = self.metrics.get(f"val_{name}", float("nan"))
        return value if np.isfinite(value) else -np.inf


def fit_cell(cell: Cell, x_train: np.ndarray, seed: int) -> Pipeline:
    family = FAMILIES[cell.family]
    pipe = Pipeline([("scale", StandardScaler()), ("model", family.build(cell.param_dict, seed))])
    return pipe.fit(x_train)


def evaluate_cell(cell: Cell, data: SearchData, seed: int, keep_model: bool = True) -> CellResult:
    """Fit one cell on the training rows, score the validation rows, compute val_* metrics."""
    began = time.perf_counter()
    pipe = fit_cell(cell, data.x_train, seed)
    fitted = time.perf_counter()
    scorer = SklearnScorer.fit_reference(pipe, data.x_train)
    scores = scorer.score_scaled(scorer.scaled(data.x_val))
    scored = time.perf_counter()
    threshold = best_f1_threshold(data.y_val, scores)
    metrics = {f"val_{k}": v for k, v in point_metrics(data.y_val, scores, threshold).items()}
    metrics.update(
        val_threshold=threshold,
        fit_seconds=fitted - began,
        score_seconds=scored - fitted,
        cell_seconds=time.perf_counter() - began,
        train_rows=float(len(data.x_train)),
        val_rows=float(len(data.x_val)),
    )
    model = None
    if keep_model:
        model = AnomalyModel(scorer, threshold, family=cell.family, engine="sklearn", params=cell.param_dict)
    return CellResult(cell, metrics, model)


def pick_best(results: list[CellResult], objective: str) -> CellResult:
    """Highest objective; ties go to the earlier cell (grid order), so engines agree deterministically."""
    if not results:
        raise PipelineError("the grid is empty")
    best = results[0]
    for res in results[1:]:
        if res.objective(objective) > best.objective(objective):
            best = res
    return best


def local_search(
    cells: list[Cell], data: SearchData, seed: int, progress: Callable[[CellResult], None] | None = None
) -> list[CellResult]:
    """Evaluate every cell in this process (models kept so the best can be logged without refitting)."""
    results = []
    for cell in cells:
        res = evaluate_cell(cell, data, seed)
        results.append(res)
        if progress:
            progress(res)
    return results
