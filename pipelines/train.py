"""train: grid search on scikit-learn or Spark, every cell an MLflow child run, the best model logged.

Run layout in MLflow (experiment ``settings.mlflow_experiment``), so the UI compares like with like:

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
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

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
    code_version,
    configure_mlflow,
    dataset_hash,
    read_dataset,
    time_split,
    write_json,
)
from pipelines.mlflow_logging import log_grid, log_training_dataset, training_dataset
from pipelines.search import (
    OBJECTIVES,
    SKLEARN_FAMILIES,
    CellResult,
    SearchData,
    build_grid,
    local_search,
    pick_best,
)
from vigil.mlflow_ui import run_url
from vigil.pyfunc import log_anomaly_model
from vigil.settings import Settings

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
    objective: str = "pr_auc",
    max_train_rows: int = 5000,
    holdout_fraction: float = DEFAULT_HOLDOUT_FRACTION,
    validation_fraction: float = DEFAULT_VALIDATION_FRACTION,
    seed: int | None = None,
    spark: Any = None,
    label_column_override: np.ndarray | None = None,
    run_name: str | None = None,
) -> TrainResult:
    """Grid-search ``dataset_path`` on ``engine``; log runs to MLflow; return the parent run's result.

    ``label_column_override`` replaces the labels (used to train a deliberately bad challenger,
    e.g. with shuffled labels); it is recorded as a tag so such a run can never pass for a real one.
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
    if label_column_override is not None:
        frame = frame.copy()
        frame["label"] = np.asarray(label_column_override, dtype=np.int64)
    split = time_split(frame, holdout_fraction, validation_fraction)
    data = SearchData.from_split(split, max_train_rows, seed)
    cells = build_grid(families, grid_overrides)
    log.info(
        "train[%s]: %d cells; %d training rows, %d validation rows (%d labelled)",
        engine,
        len(cells),
        len(data.x_train),
        len(data.x_val),
        int(data.y_val.sum()),
    )
    configure_mlflow(settings)
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
            }
        )
        log_training_dataset(dataset)
        search_began = time.perf_counter()
        if engine == "sklearn":
            results = local_search(
                cells, data, seed, progress=lambda r: log.info("  %s: %s", r.cell.name, _fmt(r.metrics))
            )
        else:
            results = _spark_search(settings, spark, cells, data, split, seed, mllib_grid)
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
        log.info("train: best %s (%s); logging the model", best.cell.name, _fmt(best.metrics))
        info = log_anomaly_model(best.model)
        mlflow.set_tag("vigil.logged_model_uri", info.model_uri)
        total = time.perf_counter() - began
        mlflow.log_metric("total_seconds", total)
        log.info("train: MLflow run %s", run_url(settings.mlflow_uri, parent.info.experiment_id, parent_id))
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


def _spark_search(settings, spark, cells, data, split, seed, mllib_grid) -> list[CellResult]:
    from pipelines.spark_engine import distributed_search, mllib_search, spark_session

    owned = spark is None
    spark = spark or spark_session(settings)
    try:
        results = distributed_search(spark, cells, data, seed)
        for r in results:
            log.info("  spark %s: %s", r.cell.name, _fmt(r.metrics))
        kmeans = mllib_search(spark, split.train, split.validation, seed, mllib_grid)
        for r in kmeans:
            log.info("  mllib %s: %s", r.cell.name, _fmt(r.metrics))
        return results + kmeans
    finally:
        if owned:
            spark.stop()


def _fmt(metrics: dict[str, float]) -> str:
    keys = ("val_pr_auc", "val_f1", "cell_seconds")
    return " ".join(f"{k}={metrics[k]:.3f}" for k in keys if k in metrics)


def dump_result(result: TrainResult, path: Path) -> Path:
    return write_json(path, result)


def load_result(path: Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text())
