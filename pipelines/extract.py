"""extract: a time window of raw metrics in InfluxDB -> labelled feature dataset (parquet + content hash).

Features come only from :class:`vigil.features.FeaturePipeline` (the detector runs the same
code); label windows come from ``vigil_labels`` through :func:`vigil.labels.load_labels`, every
source (which of them a retrain may *learn* from is decided later, by ``train``). A row (host,
interval ``[time, time + interval)``) that overlaps one of its host's windows gets that window's
``label_id``, ``label_kind`` and ``label_source``, and ``label=1`` unless the window is an
operator's false positive (``kind=false_positive``: a confirmed *normal* window, ``label=0``).

Zero labels is the ordinary case (a real fleet): every row is ``label=0`` with empty ids.

When windows overlap, an operator's verdict wins over the others (the operator looked at that
interval), otherwise the earliest window does; a window whose end is not after its start cannot
cover anything and is skipped with a warning (``skipped_labels`` in the result).

The raw per-interval frames the features were built from are kept beside the dataset
(``features-<hash>.raw.parquet``): the search injects anomalies into copies of them and the
evaluation replays them through the served decision.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from pipelines.common import (
    DATASET_COLUMNS,
    LABEL_COLUMN,
    LABEL_ID_COLUMN,
    LABEL_KIND_COLUMN,
    LABEL_SOURCE_COLUMN,
    PipelineError,
    confirmed_normal,
    dataset_hash,
    default_out_dir,
    feature_pipeline,
    parse_time,
    raw_path_of,
    write_json,
    write_raw,
)
from vigil.features import fetch_raw
from vigil.influx import InfluxClient
from vigil.labels import FALSE_POSITIVE, OPERATOR, load_labels
from vigil.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExtractResult:
    path: Path
    dataset_hash: str
    rows: int
    hosts: int
    start: pd.Timestamp
    end: pd.Timestamp
    labelled_rows: int
    label_windows: int
    seconds: float
    raw_path: Path | None = None
    normal_rows: int = 0  # rows inside an operator's false-positive window
    skipped_labels: int = 0

    @property
    def meta_path(self) -> Path:
        return self.path.with_suffix(".json")


def resolve_window(
    start: object | None, end: object | None, lookback: timedelta | str | None
) -> tuple[pd.Timestamp, pd.Timestamp]:
    """``[start, end)`` from explicit bounds or ``lookback`` before ``end`` (default now)."""
    end_ts = parse_time(end) if end is not None else pd.Timestamp.now(tz="UTC").floor("s")
    if start is not None:
        start_ts = parse_time(start)
    elif lookback is not None:
        start_ts = end_ts - pd.Timedelta(lookback)
    else:
        raise PipelineError("give start (and optionally end) or a lookback")
    if start_ts >= end_ts:
        raise PipelineError(f"empty window: start {start_ts} is not before end {end_ts}")
    return start_ts, end_ts


def join_labels(features: pd.DataFrame, labels: pd.DataFrame, interval_s: int) -> pd.DataFrame:
    """Add label / label_id / label_kind / label_source (see the module doc for the rules)."""
    out = features.copy()
    out[LABEL_COLUMN] = np.zeros(len(out), dtype=np.int64)
    out[LABEL_ID_COLUMN] = ""
    out[LABEL_KIND_COLUMN] = ""
    out[LABEL_SOURCE_COLUMN] = ""
    if labels.empty or out.empty:
        return out
    labels = usable_labels(labels)
    width = pd.Timedelta(seconds=interval_s)
    by_host = {h: idx for h, idx in out.groupby("host").groups.items()}
    cols = [
        out.columns.get_loc(c)
        for c in (LABEL_COLUMN, LABEL_ID_COLUMN, LABEL_KIND_COLUMN, LABEL_SOURCE_COLUMN)
    ]
    source = labels["source"] if "source" in labels.columns else pd.Series("", index=labels.index)
    order = labels.assign(_first=(source != OPERATOR).astype(int), source=source.fillna(""))
    for row in order.sort_values(["_first", "start"], kind="stable").itertuples(index=False):
        idx = by_host.get(row.host)
        if idx is None:
            continue
        times = out.loc[idx, "time"]
        hit = (times < row.end) & (times + width > row.start)
        positions = out.index.get_indexer(times.index[hit.to_numpy()])
        fresh = positions[out.iloc[positions, cols[1]].to_numpy() == ""]  # the first verdict wins
        out.iloc[fresh, cols[0]] = 0 if row.kind == FALSE_POSITIVE else 1
        out.iloc[fresh, cols[1]] = str(row.label_id)
        out.iloc[fresh, cols[2]] = str(row.kind)
        out.iloc[fresh, cols[3]] = str(row.source)
    return out


def usable_labels(labels: pd.DataFrame) -> pd.DataFrame:
    """Windows that can cover something (end after start); the others are logged and dropped."""
    if labels.empty:
        return labels
    bad = ~(labels["end"] > labels["start"]).to_numpy()
    if bad.any():
        log.warning(
            "extract: skipping %d label(s) whose end is not after their start: %s",
            int(bad.sum()),
            ", ".join(map(str, labels.loc[bad, "label_id"].head(5))),
        )
    return labels[~bad]


def extract(
    settings: Settings,
    *,
    start: object | None = None,
    end: object | None = None,
    lookback: timedelta | str | None = None,
    out_dir: Path | None = None,
    client: InfluxClient | None = None,
    raw_db: str | None = None,
) -> ExtractResult:
    """Extract features for ``[start, end)`` (or ``lookback`` before ``end``) into a parquet file.

    The file is named by its content hash, so re-extracting the same data gives the same file,
    and a JSON sidecar records the window and counts. Raises :class:`PipelineError` if the
    window holds no metrics.
    """
    began = time.perf_counter()
    start_ts, end_ts = resolve_window(start, end, lookback)
    client = client or InfluxClient(settings.influx)
    db = raw_db or settings.influx.raw_db
    log.info("extract: reading %s .. %s from %r", start_ts, end_ts, db)
    raw = fetch_raw(client, db, start_ts, end_ts, settings.features.interval_s)
    _, features = feature_pipeline(settings.features).update(raw)
    if features.empty:
        raise PipelineError(f"no raw metrics in {db!r} between {start_ts} and {end_ts}")
    log.info(
        "extract: %d feature rows for %d hosts; joining labels", len(features), features["host"].nunique()
    )
    labels = load_labels(client, settings.influx, start_ts, end_ts)
    skipped = len(labels) - len(usable_labels(labels))
    data = join_labels(features, labels, settings.features.interval_s)
    data["time"] = pd.to_datetime(data["time"], utc=True).astype("datetime64[ns, UTC]")
    data["warmup"] = data["warmup"].astype(np.int64)
    data = data[list(DATASET_COLUMNS)].sort_values(["host", "time"], kind="stable").reset_index(drop=True)
    digest = dataset_hash(data)
    out_dir = Path(out_dir or default_out_dir(settings) / "datasets")
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"features-{digest[:16]}.parquet"
    data.to_parquet(path, index=False)
    raw_path = write_raw(raw, raw_path_of(path))
    result = ExtractResult(
        path=path,
        dataset_hash=digest,
        rows=len(data),
        hosts=int(data["host"].nunique()),
        start=start_ts,
        end=end_ts,
        labelled_rows=int(data[LABEL_COLUMN].sum()),
        label_windows=len(labels),
        seconds=time.perf_counter() - began,
        raw_path=raw_path,
        normal_rows=int(confirmed_normal(data).sum()),
        skipped_labels=skipped,
    )
    write_json(result.meta_path, result)
    log.info(
        "extract: wrote %s (%d rows, %d labelled, %.1fs)",
        path,
        result.rows,
        result.labelled_rows,
        result.seconds,
    )
    return result
