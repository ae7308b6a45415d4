"""train: grid search on scikit-learn or Spark, every cell an MLflow child run, the best model logged.

Run layout in MLflow (experiment ``settings.mlflow.experiment``), so the UI compares like with like:

* parent run ``train-<engine>-<dataset hash>``: tags dataset hash/path, engine, code version;
  params objective, seeds, split fractions, grid size, best cell; metrics the best cell's
  ``val_*`` plus ``search_seconds`` / ``total_seconds``; artifacts ``grid.json``,
  ``search_results.json`` and the contract pyfunc model ``model`` (best cell only: logging a
  model costs ~15 s);
* one child run per cell ``<engine>:<family>[param=value,...]``: params ``family``, ``engine``,
  ``cell`` and every grid axis ``<family>.<param>`` (``n/a`` where not the cell's own); metrics
  ``val_pr_auc``, ``val_f1``, ``val_precision``, ``val_recall``, ``val_roc_auc``,
  ``val_threshold``, ``cell_seconds``, … — the same keys for every cell, family and engine
  (:mod:`pipelines.mlflow_logging`);
* the dataset, as a run input of the parent and of every child (``mlflow.log_input``).

engine ``sklearn`` searches locally; engine ``spark`` runs the same scikit-learn grid on the
executors *and* tunes the native MLlib KMeans model, and keeps the best of both.

Labels are optional (``docs/pipelines.md#labels-optional``): the default objective ``injected``
judges every cell by the anomalies injected into a copy of the validation period's raw metrics
(:mod:`pipelines.inject`) at the alarm budget (:mod:`pipelines.budget`), on rows trimmed of
probable unlabelled anomalies (:mod:`pipelines.robust`). Only labels of
``settings.training.label_sources`` are seen here (by default operator and stress verdicts; the
seeder's ground truth is hidden and only scores the result in ``evaluate``).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipelines.common import (
    DEFAULT_HOLDOUT_FRACTION,
    DEFAULT_VALIDATION_FRACTION,
    TAG_CODE_VERSION,
    TAG_DATASET_HASH,
    TAG_DATASET_PATH,
    TAG_ENGINE,
    TAG_FAMILY,
    TAG_HOLDOUT_FRACTION,
    TAG_STEP,
    PipelineError,
    TimeSplit,
    code_version,
    configure_mlflow,
    dataset_hash,
    feature_pipeline,
    label_sources_in,
    raw_path_of,
    read_dataset,
    read_raw,
    slice_raw,
    time_split,
    usable_rows,
    write_json,
)
from pipelines.inject import CATCH_GRACE_S, InjectionError, event_rows, inject
from pipelines.mlflow_logging import log_grid, log_training_dataset, training_dataset
from pipelines.robust import trim_mask
from pipelines.search import (
    OBJECTIVES,
    SKLEARN_FAMILIES,
    CellResult,
    SearchData,
    build_grid,
    local_search,
    pick_best,
)
from vigil.labels import training_sources
from vigil.mlflow_ui import run_url
from vigil.pyfunc import log_anomaly_model
from vigil.settings import FeatureSettings, Settings, TrainingSettings

log = logging.getLogger(__name__)
ENGINES = ("sklearn", "spark")


@dataclass
class TrainResult:
    run_id: str
    model_uri: str
    engine: str
    logged_model_uri: str
    best_cell: str
    best_family: str
    best_metrics: dict[str, float]
    dataset_hash: str
    dataset_path: str
    results: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0


def train(
    settings: Settings,
    dataset_path: str | Path,
    *,
    engine: str = "sklearn",
    families: tuple[str, ...] = SKLEARN_FAMILIES,
    grid_overrides: dict[str, dict[str, list[Any]]] | None = None,
    mllib_grid: dict[str, list[Any]] | None = None,
    objective: str = "injected",
    max_train_rows: int = 5000,
    holdout_fraction: float = DEFAULT_HOLDOUT_FRACTION,
    validation_fraction: float = DEFAULT_VALIDATION_FRACTION,
    seed: int | None = None,
    spark: Any = None,
    label_column_override: np.ndarray | None = None,
    run_name: str | None = None,
    label_sources: tuple[str, ...] | None = None,
) -> TrainResult:
    """Grid-search ``dataset_path`` on ``engine``; log runs to MLflow; return the parent run's result.

    ``label_column_override`` replaces the labels (used to train a deliberately bad challenger,
    e.g. with shuffled labels); it is recorded as a tag so such a run can never pass for a real one.
    ``label_sources``: the label sources to learn from (default ``settings.training.label_sources``;
    with ``label_column_override`` every overridden label counts).
    """
    if engine not in ENGINES:
        raise PipelineError(f"unknown engine {engine!r}; choose one of {ENGINES}")
    if objective not in OBJECTIVES:
        raise PipelineError(f"unknown objective {objective!r}; choose one of {OBJECTIVES}")
    import mlflow

    began = time.perf_counter()
    seed = settings.random_seed if seed is None else seed
    frame = read_dataset(dataset_path)
    digest = dataset_hash(frame)
    dataset = training_dataset(frame, dataset_path, digest)  # what MLflow shows as the run's input
    sources = training_sources(settings.training) if label_sources is None else tuple(label_sources)
    if label_column_override is not None:
        frame = frame.copy()
        frame["label"] = np.asarray(label_column_override, dtype=np.int64)
        frame["label_source"] = np.where(frame["label"] == 1, "override", "")
        sources = (*sources, "override")
    frame = label_sources_in(frame, sources)
    split = time_split(frame, holdout_fraction, validation_fraction)
    trim_args = {"sigmas": settings.training.trim_sigmas, "max_fraction": settings.training.trim_max_fraction}
    trim_train, trim_val = trim_mask(split.train, **trim_args), trim_mask(split.validation, **trim_args)
    injection = None
    if objective == "injected":
        injection = inject_validation(settings.features, dataset_path, split, seed, frame)
    elif raw_path_of(dataset_path).exists():  # labelled objective: injected figures reported when possible
        try:
            injection = inject_validation(settings.features, dataset_path, split, seed, frame)
        except InjectionError as exc:
            log.warning("train: no injected figures beside the labelled objective: %s", exc)
    data = SearchData.from_split(
        split,
        max_train_rows,
        seed,
        objective=objective,
        trimmed_train=trim_train.mask,
        trimmed_val=trim_val.mask,
        interval_s=settings.features.interval_s,
        budget=settings.training.alarm_budget_per_host_day,
        injected=(injection.rows, injection.event_of_row) if injection else None,
    )
    cells = build_grid(families, grid_overrides)
    log.info(
        "train[%s]: %d cells, objective %s; %d training rows (%.1f %% trimmed), %d validation rows "
        "(%d labelled, %.1f %% trimmed), %d injected events",
        engine,
        len(cells),
        objective,
        len(data.x_train),
        100 * trim_train.fraction,
        len(data.x_val),
        int(data.y_val.sum()),
        100 * trim_val.fraction,
        data.injected_events,
    )
    configure_mlflow(settings.mlflow)
    name = run_name or f"train-{engine}-{digest[:8]}"
    with mlflow.start_run(run_name=name) as parent:
        parent_id = parent.info.run_id
        mlflow.set_tags(
            {
                TAG_STEP: "train",
                TAG_ENGINE: engine,
                TAG_DATASET_HASH: digest,
                TAG_DATASET_PATH: str(Path(dataset_path).resolve()),
                TAG_CODE_VERSION: code_version(),
                TAG_HOLDOUT_FRACTION: str(holdout_fraction),
                "vigil.labels_overridden": str(label_column_override is not None).lower(),
                "vigil.objective": objective,
                "vigil.label_sources": ",".join(sources) or "none",
            }
        )
        mlflow.log_params(
            {
                "objective": objective,
                "seed": seed,
                "max_train_rows": max_train_rows,
                "holdout_fraction": holdout_fraction,
                "validation_fraction": validation_fraction,
                "families": ",".join(families),
                "n_cells": len(cells),
                "validation_start": split.validation_start.isoformat(),
                "holdout_start": split.holdout_start.isoformat(),
                "alarm_budget_per_host_day": settings.training.alarm_budget_per_host_day,
                "train_trim_sigmas": settings.training.trim_sigmas,
                "train_label_sources": ",".join(sources) or "none",
            }
        )
        mlflow.log_metrics(
            {
                "trimmed_train_fraction": trim_train.fraction,
                "trimmed_val_fraction": trim_val.fraction,
                "labelled_val_rows": float(data.y_val.sum()),
                "injected_val_events": float(data.injected_events),
            }
        )
        log_training_dataset(dataset)
        search_began = time.perf_counter()
        if engine == "sklearn":
            results = local_search(
                cells, data, seed, progress=lambda r: log.info("  %s: %s", r.cell.name, _fmt(r.metrics))
            )
        else:
            results = _spark_search(settings.training, spark, cells, data, seed, mllib_grid)
        search_seconds = time.perf_counter() - search_began
        log_grid(results, engine, {TAG_ENGINE: engine}, dataset)
        best = pick_best(results, objective)
        if best.model is None:  # distributed cells do not ship models back: refit the winner here
            from pipelines.search import evaluate_cell

            best = CellResult(best.cell, best.metrics, evaluate_cell(best.cell, data, seed).model)
        best.model.engine = engine if best.cell.family != "mllib_kmeans" else "spark"
        mlflow.log_params({"best_cell": best.cell.name, "best_family": best.cell.family})
        mlflow.set_tag(TAG_FAMILY, best.cell.family)
        mlflow.log_metrics({k: float(v) for k, v in best.metrics.items() if np.isfinite(v)})
        mlflow.log_metrics(
            {"search_seconds": search_seconds, "seconds_per_cell": search_seconds / len(results)}
        )
        summary = [{"cell": r.cell.name, "family": r.cell.family, **r.metrics} for r in results]
        out_dir = Path(settings.run_dir) / "pipelines" / "train" / parent_id
        grid_path = write_json(out_dir / "grid.json", {"cells": [c.name for c in cells], "mllib": mllib_grid})
        results_path = write_json(out_dir / "search_results.json", summary)
        mlflow.log_artifact(str(grid_path))
        mlflow.log_artifact(str(results_path))
        if injection is not None:
            events_path = out_dir / "injected_validation_events.csv"
            injection.table.to_csv(events_path, index=False)
            mlflow.log_artifact(str(events_path))
        log.info("train: best %s (%s); logging the model", best.cell.name, _fmt(best.metrics))
        info = log_anomaly_model(best.model)
        mlflow.set_tag("vigil.logged_model_uri", info.model_uri)
        total = time.perf_counter() - began
        mlflow.log_metric("total_seconds", total)
        log.info("train: MLflow run %s", run_url(settings.mlflow.uri, parent.info.experiment_id, parent_id))
    return TrainResult(
        run_id=parent_id,
        model_uri=f"runs:/{parent_id}/model",  # resolves to the logged model; names the run for evaluate
        logged_model_uri=info.model_uri,
        engine=engine,
        best_cell=best.cell.name,
        best_family=best.cell.family,
        best_metrics=best.metrics,
        dataset_hash=digest,
        dataset_path=str(Path(dataset_path).resolve()),
        results=summary,
        seconds=total,
    )


def _spark_search(training: TrainingSettings, spark, cells, data, seed, mllib_grid) -> list[CellResult]:
    from pipelines.spark_engine import distributed_search, mllib_search, spark_session

    owned = spark is None
    spark = spark or spark_session(training)
    try:
        results = distributed_search(spark, cells, data, seed)
        for r in results:
            log.info("  spark %s: %s", r.cell.name, _fmt(r.metrics))
        kmeans = mllib_search(spark, data, seed, mllib_grid)
        for r in kmeans:
            log.info("  mllib %s: %s", r.cell.name, _fmt(r.metrics))
        return results + kmeans
    finally:
        if owned:
            spark.stop()


@dataclass
class InjectedValidation:
    """The injected copy of the validation period: its feature rows, each row's event index (-1:
    none; an event's catch grace included) and the events planted."""

    rows: pd.DataFrame
    event_of_row: np.ndarray
    table: pd.DataFrame


def inject_validation(
    features: FeatureSettings, dataset_path: str | Path, split: TimeSplit, seed: int, frame: pd.DataFrame
) -> InjectedValidation:
    """Inject anomalies into a copy of the validation period's raw metrics and build its features
    with the feature pipeline warmed on everything before it (no look-ahead: host spreads and
    baselines come from the training period only). Labelled windows the retrain may see are kept
    clear of injected events."""
    raw = read_raw(dataset_path)
    start, end = split.validation_start, split.holdout_start
    pipe = feature_pipeline(features)
    before, _ = pipe.update(slice_raw(raw, None, start))
    labelled = frame[(frame["label_id"] != "") & (frame["time"] >= start) & (frame["time"] < end)]
    avoid = (
        labelled.groupby("label_id")
        .agg(host=("host", "first"), start=("time", "min"), end=("time", "max"))
        .reset_index(drop=True)
    )
    avoid["end"] = avoid["end"] + pd.Timedelta(seconds=features.interval_s)
    injection = inject(
        slice_raw(raw, start, end),
        (start, end),
        before,
        interval_s=features.interval_s,
        seed=seed,
        avoid=avoid,
        prefix="val",
    )
    _, features = pipe.update(injection.raw)
    rows = usable_rows(features).reset_index(drop=True)
    return InjectedValidation(
        rows, event_rows(rows, injection.events, grace_s=CATCH_GRACE_S), injection.table()
    )


def _fmt(metrics: dict[str, float]) -> str:
    keys = ("val_injected_recall", "val_pr_auc", "val_f1", "cell_seconds")
    return " ".join(f"{k}={metrics[k]:.3f}" for k in keys if k in metrics)


def dump_result(result: TrainResult, path: Path) -> Path:
    return write_json(path, result)


def load_result(path: Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text())
