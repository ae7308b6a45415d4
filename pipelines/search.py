"""The scikit-learn grid: model families, their documented grids, and how one grid cell is scored.

One function, :func:`evaluate_cell`, fits and scores a cell; the local search loops over it
and the Spark search ships it to executors (``applyInPandas``), so both engines compute the
same numbers on the same data and seed — and agree on the best configuration.

Protocol (time-ordered, labels optional — ``docs/pipelines.md#labels-optional``):

* fit on the training period's rows that are neither labelled anomalies nor trimmed as probable
  unlabelled ones (:mod:`pipelines.robust`), at most ``max_train_rows`` of them sampled with the
  seed (the detectors model normal behaviour; more rows cost time, not accuracy);
* score the later validation period twice: its real rows, and a copy of them with anomalies
  injected (:mod:`pipelines.inject`);
* objective ``injected`` (the default): each host's threshold is the score that raises at most
  ``VIGIL_TRAINING__ALARM_BUDGET_PER_HOST_DAY`` alarms per day on that host's untouched validation rows
  (not trimmed, not labelled anomalies) and stays above its operator false positives
  (:mod:`pipelines.budget`); the cell's objective is the share of injected events caught at
  those thresholds (``val_injected_recall``; ties: the share of injected rows caught). The model
  keeps the fleet-wide budget threshold (the same rule over all hosts' untouched rows:
  ``val_threshold``), the one the detector serves. Real labels of the sources a retrain learns
  from (``VIGIL_TRAINING__LABEL_SOURCES``), where there are any, are scored at the same thresholds and
  reported apart (``val_real_event_recall``);
* objectives ``pr_auc`` / ``f1`` (labelled, for comparison): PR-AUC or F1 of the real validation
  rows against their labels, with the threshold at the conservative end of the validation F1
  plateau (``pipelines.metrics.best_f1_threshold``). They need labelled anomalies in validation.

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
import pandas as pd
from sklearn.ensemble import IsolationForest
from sklearn.mixture import GaussianMixture
from sklearn.neighbors import LocalOutlierFactor
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from pipelines.budget import DAY_S, budget_threshold, event_recall, host_thresholds
from pipelines.common import PipelineError, TimeSplit, confirmed_normal, feature_matrix
from pipelines.metrics import best_f1_threshold, point_metrics
from vigil.features import FEATURE_COLUMNS
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
#: ``injected``: label-free (injected events caught at the alarm budget); the others need labels.
OBJECTIVES = ("injected", "pr_auc", "f1")
LABELLED_OBJECTIVES = ("pr_auc", "f1")


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
    """What every cell sees (numpy only, so it broadcasts to Spark executors).

    ``x_val``/``y_val``: the real validation rows and their labels (training sources only);
    ``val_host``: each row's host (integer code); ``val_untouched``: rows a threshold is set on;
    ``val_normal``: operator false positives (must stay below); ``val_event``: real labelled event
    index per row (-1: none). ``x_inj``/``inj_host``/``inj_event``: the injected copy's rows inside
    an event (or its catch grace), with the event index. Empty ``x_inj``: no injection.
    """

    x_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    objective: str = "injected"
    interval_s: float = 10.0
    budget: float = 1.0
    val_host: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    val_untouched: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    val_normal: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    val_event: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    x_inj: np.ndarray = field(default_factory=lambda: np.zeros((0, len(FEATURE_COLUMNS))))
    inj_host: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    inj_event: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    #: operator false positives of the training period: they too must stay below every threshold
    x_fp: np.ndarray = field(default_factory=lambda: np.zeros((0, len(FEATURE_COLUMNS))))

    @classmethod
    def from_split(
        cls,
        split: TimeSplit,
        max_train_rows: int,
        seed: int,
        *,
        objective: str = "pr_auc",
        trimmed_train: np.ndarray | None = None,
        trimmed_val: np.ndarray | None = None,
        interval_s: float = 10.0,
        budget: float = 1.0,
        injected: tuple[pd.DataFrame, np.ndarray] | None = None,
    ) -> SearchData:
        """Arrays of a time split. ``trimmed_*``: rows :mod:`pipelines.robust` left out (aligned with
        the split's frames); ``injected``: (feature rows of the injected copy, their event index)."""
        train = split.train
        keep = (train["label"] == 0).to_numpy()
        normal = confirmed_normal(train)
        if trimmed_train is not None:
            keep &= ~trimmed_train | normal  # an operator's false positive is normal, however odd
        fit_rows = train[keep]
        if len(fit_rows) < 50:
            raise PipelineError(f"only {len(fit_rows)} normal training rows; need at least 50")
        val = split.validation
        if len(val) == 0:
            raise PipelineError("the validation period is empty")
        y_val = val["label"].to_numpy(dtype=np.int64)
        if objective in LABELLED_OBJECTIVES and y_val.sum() == 0:
            raise PipelineError(
                f"objective {objective!r} needs labelled anomalies and the validation period has none "
                "(use the label-free objective 'injected', or extract a window with labelled incidents)"
            )
        if objective == "injected" and injected is None:
            raise PipelineError("objective 'injected' needs the injected copy of the validation rows")
        x = feature_matrix(fit_rows)
        if len(x) > max_train_rows:
            rng = np.random.default_rng(seed)
            x = x[np.sort(rng.choice(len(x), size=max_train_rows, replace=False))]
        codes = {h: i for i, h in enumerate(sorted(val["host"].astype(str).unique()))}
        val_host = val["host"].astype(str).map(codes).to_numpy(dtype=np.int64)
        val_normal = confirmed_normal(val)
        untouched = (y_val == 0) & (~trimmed_val if trimmed_val is not None else True)
        untouched = untouched | val_normal
        events = val["label_id"].where(y_val == 1, "").astype(str).to_numpy()
        ids = {e: i for i, e in enumerate(sorted(set(events) - {""}))}
        val_event = np.array([ids.get(e, -1) for e in events], dtype=np.int64)
        data = cls(
            x,
            feature_matrix(val),
            y_val,
            objective=objective,
            interval_s=float(interval_s),
            budget=float(budget),
            val_host=val_host,
            val_untouched=np.asarray(untouched, dtype=bool),
            val_normal=val_normal,
            val_event=val_event,
            x_fp=feature_matrix(train[normal]),
        )
        if injected is not None:
            rows, event = injected
            inside = event >= 0
            rows = rows[inside]
            data.x_inj = feature_matrix(rows)
            data.inj_host = rows["host"].astype(str).map(codes).fillna(-1).to_numpy(dtype=np.int64)
            data.inj_event = event[inside].astype(np.int64)
        return data

    @property
    def injected_events(self) -> int:
        return len(np.unique(self.inj_event)) if len(self.inj_event) else 0


@dataclass
class CellResult:
    cell: Cell
    metrics: dict[str, float]
    model: AnomalyModel | None = field(default=None, repr=False)

    def objective(self, name: str) -> tuple[float, ...]:
        """The value a search maximises (``injected``: event recall, then row recall)."""
        keys = (
            ("val_injected_recall", "val_injected_point_recall") if name == "injected" else (f"val_{name}",)
        )
        out = []
        for key in keys:
            value = self.metrics.get(key, float("nan"))
            out.append(value if np.isfinite(value) else -np.inf)
        return tuple(out)


def fit_cell(cell: Cell, x_train: np.ndarray, seed: int) -> Pipeline:
    family = FAMILIES[cell.family]
    pipe = Pipeline([("scale", StandardScaler()), ("model", family.build(cell.param_dict, seed))])
    return pipe.fit(x_train)


def cell_metrics(
    data: SearchData, s_val: np.ndarray, s_inj: np.ndarray, s_fp: np.ndarray | None = None
) -> tuple[dict[str, float], float]:
    """The ``val_*`` metrics of one cell's validation scores, and the threshold its model keeps.

    Label-free figures (when there is an injected copy): per-host budget thresholds on the
    untouched rows -> injected event and row recall, real event recall; the fleet budget threshold
    -> ``val_threshold`` and the injected recall at it (``val_fleet_injected_recall``). Labelled
    figures (point metrics, PR-AUC) whenever validation holds labels. ``s_fp``: scores of the
    training period's operator false positives (the fleet threshold stays above them too).
    """
    metrics: dict[str, float] = {}
    fleet = float("nan")
    s_fp = np.asarray(s_fp if s_fp is not None else np.zeros(0), dtype=float)
    if len(data.val_untouched):
        days = data.val_untouched.sum() * data.interval_s / DAY_S
        fleet = budget_threshold(
            s_val[data.val_untouched],
            days=days,
            budget=data.budget,
            must_exceed=np.r_[s_val[data.val_normal], s_fp],
        )
        per_host = host_thresholds(
            data.val_host,
            s_val,
            data.val_untouched,
            data.val_normal,
            interval_s=data.interval_s,
            budget=data.budget,
        )
        if len(data.x_inj):
            recall, rows, n = event_recall(data.inj_event, data.inj_host, s_inj, per_host)
            metrics.update(
                val_injected_recall=recall,
                val_injected_point_recall=rows,
                val_injected_events=float(n),
                val_fleet_injected_recall=event_recall(data.inj_event, data.inj_host, s_inj, fleet)[0],
            )
        real, _, n_real = event_recall(data.val_event, data.val_host, s_val, per_host)
        metrics.update(val_real_event_recall=real, val_real_events=float(n_real))
        metrics["val_untouched_share"] = float(data.val_untouched.mean())
    labelled = data.y_val.sum() > 0
    if data.objective in LABELLED_OBJECTIVES:
        threshold = best_f1_threshold(data.y_val, s_val)
    else:
        threshold = fleet
    if labelled:
        metrics.update({f"val_{k}": v for k, v in point_metrics(data.y_val, s_val, threshold).items()})
    metrics["val_threshold"] = threshold
    return metrics, threshold


def evaluate_cell(cell: Cell, data: SearchData, seed: int, keep_model: bool = True) -> CellResult:
    """Fit one cell on the training rows, score the validation rows (and the injected copy),
    compute the val_* metrics and the model's threshold (:func:`cell_metrics`)."""
    began = time.perf_counter()
    pipe = fit_cell(cell, data.x_train, seed)
    fitted = time.perf_counter()
    scorer = SklearnScorer.fit_reference(pipe, data.x_train)
    s_val = scorer.score_scaled(scorer.scaled(data.x_val))
    s_inj = scorer.score_scaled(scorer.scaled(data.x_inj)) if len(data.x_inj) else np.zeros(0)
    s_fp = scorer.score_scaled(scorer.scaled(data.x_fp)) if len(data.x_fp) else np.zeros(0)
    scored = time.perf_counter()
    metrics, threshold = cell_metrics(data, s_val, s_inj, s_fp)
    metrics.update(
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
