"""Plumbing every pipeline step shares: MLflow setup, dataset files and hashes, time splits, tags.

Steps exchange explicit artifacts (a parquet path, a run id, a model version), so a
person, a test and an Airflow task all call the same functions with the same inputs.
"""

from __future__ import annotations

import hashlib
import json
import logging
import subprocess
from dataclasses import asdict, dataclass, is_dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from vigil.errors import VigilError
from vigil.features import FEATURE_COLUMNS
from vigil.settings import PROJECT_ROOT, FeatureSettings, MlflowSettings, Settings

log = logging.getLogger(__name__)

#: Columns of an extracted dataset besides the features.
LABEL_COLUMN = "label"
LABEL_ID_COLUMN = "label_id"
LABEL_KIND_COLUMN = "label_kind"
#: Where a row's label came from (``vigil_labels``' source tag: seed, stress, operator, manual; "" = none).
LABEL_SOURCE_COLUMN = "label_source"
DATASET_COLUMNS: tuple[str, ...] = (
    "host",
    "time",
    *FEATURE_COLUMNS,
    "warmup",
    LABEL_COLUMN,
    LABEL_ID_COLUMN,
    LABEL_KIND_COLUMN,
    LABEL_SOURCE_COLUMN,
)

#: MLflow tag keys (runs and model versions share them so the registry can point back at data).
TAG_DATASET_HASH = "vigil.dataset_hash"
TAG_DATASET_PATH = "vigil.dataset_path"
TAG_ENGINE = "vigil.engine"
TAG_FAMILY = "vigil.family"
TAG_CODE_VERSION = "vigil.code_version"
TAG_STEP = "vigil.step"
TAG_HOLDOUT_FRACTION = "vigil.holdout_fraction"
TAG_VALIDATION = "vigil.validation"
TAG_PREVIOUS_CHAMPION = "vigil.previous_champion"

#: Share of the dataset's time span, at its end, kept for ``evaluate`` and never seen by the search.
DEFAULT_HOLDOUT_FRACTION = 0.25
#: Share of the search period, at its end, used as the validation split of the grid search.
DEFAULT_VALIDATION_FRACTION = 0.35


class PipelineError(VigilError, RuntimeError):
    """A pipeline step cannot run on the inputs it was given (the message says why)."""


def default_out_dir(settings: Settings) -> Path:
    return settings.run_dir / "pipelines"


def configure_mlflow(registry: MlflowSettings, experiment: str | None = None) -> None:
    """Point the MLflow client at ``registry`` (``settings.mlflow``; never the environment) and select the experiment
    (tagged as classic model development: :func:`pipelines.mlflow_logging.tag_experiment`)."""
    import mlflow
    from pipelines.mlflow_logging import quiet_mlflow_links, tag_experiment

    quiet_mlflow_links()
    mlflow.set_tracking_uri(registry.uri)
    mlflow.set_registry_uri(registry.uri)
    tag_experiment(mlflow.set_experiment(experiment or registry.experiment))


def mlflow_client(registry: MlflowSettings):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=registry.uri, registry_uri=registry.uri)


def code_version() -> str:
    """The git commit of the working tree (``+dirty`` when it has local changes), or ``unknown``."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (commit or "unknown") + ("+dirty" if dirty and commit else "")


# --- datasets -------------------------------------------------------------------------------------


def dataset_hash(frame: pd.DataFrame) -> str:
    """SHA-256 of the dataset's *content* (columns, dtypes, values), independent of parquet encoding."""
    digest = hashlib.sha256()
    digest.update(json.dumps([[c, str(t)] for c, t in frame.dtypes.items()]).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()


def read_dataset(path: str | Path) -> pd.DataFrame:
    path = Path(path)
    if not path.exists():
        raise PipelineError(f"dataset {path} does not exist (run `vigil pipeline extract` first)")
    return pd.read_parquet(path)


def feature_pipeline(features: FeatureSettings | None = None):
    """The feature pipeline every batch step builds features with (extract, the injected copy of
    validation), one place so they agree with each other and with the detector's."""
    from vigil.features import FeaturePipeline

    return FeaturePipeline(interval_s=(features or FeatureSettings()).interval_s)


def raw_path_of(dataset_path: str | Path) -> Path:
    """Where ``extract`` keeps the raw per-interval frames a dataset was built from.

    Why keep them: anomalies are injected into a copy of a host's *raw* metrics and the served
    decision (:class:`vigil.serving.ServingPath`) starts from raw frames, so the search and the
    evaluation need them, not only the features.
    """
    path = Path(dataset_path)
    return path.with_name(path.stem + ".raw.parquet")


def write_raw(raw: dict[str, pd.DataFrame], path: Path) -> Path:
    """One parquet file for every query group's frame (long format, a ``group`` column)."""
    parts = [frame.assign(group=name) for name, frame in raw.items() if frame is not None and not frame.empty]
    frame = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame({"group": [], "time": []})
    frame.to_parquet(path, index=False)
    return path


def read_raw(dataset_path: str | Path) -> dict[str, pd.DataFrame]:
    """The raw frames :func:`write_raw` stored beside ``dataset_path``; a clear error if absent."""
    from vigil.features.source import GROUP_KEYS, QUERY_GROUPS, group_series_tags

    path = raw_path_of(dataset_path)
    if not path.exists():
        raise PipelineError(
            f"{path} is missing: the dataset {Path(dataset_path).name} has no raw frames beside it "
            "(extract it again with `vigil pipeline extract`; datasets made before raw frames were kept "
            "can only be trained with a labelled objective, --objective pr_auc)"
        )
    frame = pd.read_parquet(path)
    out: dict[str, pd.DataFrame] = {}
    for name, key in GROUP_KEYS.items():
        cols = ["time", *group_series_tags(key), *[f.field for f in QUERY_GROUPS[key]]]
        part = frame[frame["group"] == name]
        out[name] = part.reindex(columns=cols).reset_index(drop=True)
    return out


def slice_raw(raw: dict[str, pd.DataFrame], start: Any = None, end: Any = None) -> dict[str, pd.DataFrame]:
    """The rows of every raw frame with ``start <= time < end`` (either bound may be None)."""
    out = {}
    for name, frame in raw.items():
        keep = np.ones(len(frame), dtype=bool)
        if start is not None:
            keep &= (frame["time"] >= start).to_numpy()
        if end is not None:
            keep &= (frame["time"] < end).to_numpy()
        out[name] = frame[keep]
    return out


def label_sources_in(frame: pd.DataFrame, sources: tuple[str, ...] | None) -> pd.DataFrame:
    """``frame`` with only the labels of ``sources`` kept (None: all); the others read as unlabelled.

    Why: a retrain learns from operator and stress verdicts, while the seeder's ground truth only
    scores the result (``settings.training.label_sources``): hidden labels must not leak into training.
    """
    if sources is None or LABEL_SOURCE_COLUMN not in frame.columns:
        return frame
    hide = ~frame[LABEL_SOURCE_COLUMN].isin(list(sources)).to_numpy()
    if not hide.any():
        return frame
    out = frame.copy()
    out.loc[hide, LABEL_COLUMN] = 0
    out.loc[hide, [LABEL_ID_COLUMN, LABEL_KIND_COLUMN, LABEL_SOURCE_COLUMN]] = ""
    return out


def confirmed_normal(frame: pd.DataFrame) -> np.ndarray:
    """Rows inside an operator's false-positive window (label 0, kind ``false_positive``)."""
    if LABEL_KIND_COLUMN not in frame.columns:
        return np.zeros(len(frame), dtype=bool)
    return ((frame[LABEL_KIND_COLUMN] == "false_positive") & (frame[LABEL_COLUMN] == 0)).to_numpy()


def usable_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows a model may learn from or be judged on: past the per-host baseline warm-up."""
    if "warmup" not in frame.columns:
        return frame
    return frame[frame["warmup"].astype(int) == 0]


def feature_matrix(frame: pd.DataFrame) -> np.ndarray:
    """Features as the model contract reads them (missing/NaN -> 0 = at baseline)."""
    x = frame.reindex(columns=list(FEATURE_COLUMNS)).to_numpy(dtype=float, na_value=np.nan)
    x[~np.isfinite(x)] = 0.0
    return x


@dataclass(frozen=True)
class TimeSplit:
    """Time-ordered split of a dataset: train < validation < holdout (nothing from the future leaks)."""

    train: pd.DataFrame
    validation: pd.DataFrame
    holdout: pd.DataFrame
    validation_start: pd.Timestamp
    holdout_start: pd.Timestamp


def time_split(
    frame: pd.DataFrame,
    holdout_fraction: float = DEFAULT_HOLDOUT_FRACTION,
    validation_fraction: float = DEFAULT_VALIDATION_FRACTION,
) -> TimeSplit:
    """Cut the usable rows at two instants of the dataset's time span (all hosts cut at the same time).

    The holdout is the last ``holdout_fraction`` of the span; the validation split is the last
    ``validation_fraction`` of what remains. Defined by the dataset alone, so ``train`` and
    ``evaluate`` (and the champion comparison in ``promote``) agree on the holdout.
    """
    if not 0 < holdout_fraction < 1 or not 0 < validation_fraction < 1:
        raise PipelineError("holdout_fraction and validation_fraction must be in (0, 1)")
    data = usable_rows(frame).sort_values(["time", "host"], kind="stable")
    if data.empty:
        raise PipelineError("the dataset has no usable rows (all in baseline warm-up?)")
    t0, t1 = data["time"].min(), data["time"].max()
    span = t1 - t0
    holdout_start = t0 + span * (1 - holdout_fraction)
    validation_start = t0 + span * (1 - holdout_fraction) * (1 - validation_fraction)
    train = data[data["time"] < validation_start]
    val = data[(data["time"] >= validation_start) & (data["time"] < holdout_start)]
    hold = data[data["time"] >= holdout_start]
    return TimeSplit(train, val, hold, pd.Timestamp(validation_start), pd.Timestamp(holdout_start))


# --- results --------------------------------------------------------------------------------------


def to_jsonable(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return {k: to_jsonable(v) for k, v in asdict(value).items()}
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (pd.Timestamp,)):
        return value.isoformat()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def write_json(path: Path, payload: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(to_jsonable(payload), indent=2, default=str))
    return path


def parse_time(value: Any) -> pd.Timestamp:
    ts = pd.Timestamp(value)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
