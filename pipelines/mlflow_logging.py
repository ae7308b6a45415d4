"""How a training run looks in MLflow, for the people who open it.

* The experiment is tagged ``mlflow.experimentKind=custom_model_development`` (what MLflow 3
  calls classic model training), and every address Vigil prints carries
  ``?workflowType=machine_learning`` (:mod:`vigil.mlflow_ui`): the UI opens on runs, not on its
  GenAI overview.
* Each training run logs the dataset it read as a run input (``mlflow.log_input``): name
  ``vigil-features``, digest = the first 16 hex digits of the content hash (the file's name),
  source = the parquet file, and a profile with the full hash, the window, hosts and rows. The
  runs list's Dataset column and the run's lineage then name the exact data.
* The grid's child runs carry **the same keys**: params ``family``, ``engine``, ``cell`` and
  every grid axis of the search (``<family>.<param>``, ``n/a`` where a cell's family has no such
  axis); metrics the union of every cell's (NaN where a value is undefined for that cell, e.g.
  Spark's own ``val_spark_pr_auc`` on a scikit-learn cell). MLflow's compare view then lines
  the cells up row by row instead of showing gaps.

Kept apart from :mod:`pipelines.train` so model selection can change there without touching how
runs are presented.
"""

from __future__ import annotations

import logging
import math
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from vigil import mlflow_ui
from vigil.settings import MlflowSettings

if TYPE_CHECKING:
    from mlflow.data.pandas_dataset import PandasDataset

    from pipelines.search import CellResult

log = logging.getLogger(__name__)

EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"
DATASET_NAME = "vigil-features"
#: A grid axis that a cell's family does not have.
NOT_APPLICABLE = "n/a"
#: Rows the dataset's schema is inferred from.
SCHEMA_SAMPLE_ROWS = 1000


def quiet_mlflow_links() -> None:
    """Stop MLflow printing its own "View run" / "View experiment" links at the end of a run:
    they lack ``?workflowType=machine_learning`` and open the GenAI overview. Vigil prints its
    own (:mod:`vigil.mlflow_ui`). A user's explicit setting of the variable wins."""
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")


def tag_experiment(experiment: Any) -> None:
    """Mark the experiment as classic model development (once; a no-op when already tagged)."""
    tags = getattr(experiment, "tags", None) or {}
    if tags.get(EXPERIMENT_KIND_TAG) == EXPERIMENT_KIND:
        return
    from mlflow import MlflowClient

    MlflowClient().set_experiment_tag(experiment.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)


def _dataset_class():
    from mlflow.data.pandas_dataset import PandasDataset

    class VigilDataset(PandasDataset):
        """A PandasDataset built on a sample of the rows (its schema: MLflow infers it value by
        value, 7.7 s for 200,000 rows here) whose profile describes all of them: hash, window,
        hosts, rows. Nothing of the data itself is uploaded; the source names the file."""

        def __init__(self, *args: Any, summary: dict[str, Any], **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._summary = summary

        @property
        def profile(self) -> dict[str, Any]:
            return dict(self._summary)

    return VigilDataset


def dataset_summary(frame: pd.DataFrame, content_hash: str) -> dict[str, Any]:
    """Content hash, window, hosts, rows (and labelled rows) of an extracted dataset."""
    times = (
        pd.to_datetime(frame["time"], utc=True) if "time" in frame else pd.Series(dtype="datetime64[ns, UTC]")
    )
    return {
        "num_rows": len(frame),
        "num_elements": int(frame.size),
        "content_hash": content_hash,
        "window_start": times.min().isoformat() if len(times) else None,
        "window_end": times.max().isoformat() if len(times) else None,
        "hosts": int(frame["host"].nunique()) if "host" in frame else 0,
        "rows": len(frame),
        "labelled_rows": int(frame["label"].sum()) if "label" in frame else 0,
    }


def training_dataset(frame: pd.DataFrame, path: str | Path, content_hash: str) -> PandasDataset:
    """The MLflow dataset of an extracted parquet file (see the module docstring)."""
    from mlflow.data.dataset_source_registry import resolve_dataset_source

    summary = dataset_summary(frame, content_hash)
    with warnings.catch_warnings():
        # MLflow registers its local-file source class twice and says so on every resolve; and
        # its schema inference hints that integer columns cannot hold missing values (label and
        # warmup never do: the validation suite checks it)
        warnings.filterwarnings("ignore", message="The specified dataset source can be interpreted")
        warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer column")
        return _dataset_class()(
            frame.head(SCHEMA_SAMPLE_ROWS),
            source=resolve_dataset_source(str(Path(path).resolve())),
            targets="label" if "label" in frame else None,
            name=DATASET_NAME,
            digest=content_hash[:16],
            summary=summary,
        )


def log_training_dataset(dataset: PandasDataset, context: str = "training") -> None:
    """``mlflow.log_input`` on the active run; its window, hosts and rows also as input tags."""
    import mlflow

    profile = dataset.profile or {}
    tags = {
        k: str(profile[k])
        for k in ("window_start", "window_end", "hosts", "rows")
        if profile.get(k) is not None
    }
    mlflow.log_input(dataset, context=context, tags=tags)


def grid_params(results: Sequence[CellResult], engine: str) -> list[dict[str, str]]:
    """Per cell: ``family``, ``engine``, ``cell`` and every axis of the grid (``n/a`` if not its own)."""
    axes = sorted({f"{r.cell.family}.{k}" for r in results for k, _ in r.cell.params})
    out = []
    for r in results:
        own = {f"{r.cell.family}.{k}": str(v) for k, v in r.cell.params}
        out.append(
            {"family": r.cell.family, "engine": engine, "cell": r.cell.name}
            | {axis: own.get(axis, NOT_APPLICABLE) for axis in axes}
        )
    return out


def grid_metrics(results: Sequence[CellResult]) -> list[dict[str, float]]:
    """Per cell: every metric any cell has (NaN where undefined for this one)."""
    keys = sorted({k for r in results for k in r.metrics})
    out = []
    for r in results:
        row = {}
        for k in keys:
            v = r.metrics.get(k, math.nan)
            row[k] = float(v) if v is not None and math.isfinite(float(v)) else math.nan
        out.append(row)
    return out


def log_grid(
    results: Sequence[CellResult], engine: str, tags: dict[str, str], dataset: PandasDataset | None = None
) -> list[str]:
    """One nested child run per cell, with comparable params and metrics; returns their run ids."""
    import mlflow

    ids = []
    for res, params, metrics in zip(
        results, grid_params(results, engine), grid_metrics(results), strict=True
    ):
        with mlflow.start_run(run_name=f"{engine}:{res.cell.name}", nested=True) as child:
            mlflow.set_tags(tags | {"vigil.family": res.cell.family})
            mlflow.log_params(params)
            mlflow.log_metrics(metrics)
            if dataset is not None:
                log_training_dataset(dataset)
            ids.append(child.info.run_id)
    return ids


def run_links(registry: MlflowSettings, run_id: str) -> dict[str, str]:
    """UI addresses of a training run and of the compare view of its grid's child runs."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=registry.uri)
    experiment_id = client.get_run(run_id).info.experiment_id
    children = client.search_runs(
        [experiment_id], filter_string=f"tags.mlflow.parentRunId = '{run_id}'", max_results=1000
    )
    base = registry.uri
    links = {
        "mlflow_experiment_url": mlflow_ui.experiment_url(base, experiment_id),
        "mlflow_run_url": mlflow_ui.run_url(base, experiment_id, run_id),
    }
    if children:
        links["mlflow_grid_compare_url"] = mlflow_ui.compare_runs_url(
            base, experiment_id, [r.info.run_id for r in children]
        )
    return links
