"""extract: a time window of raw metrics in InfluxDB -> labelled feature dataset (parquet + content hash).

Features come only from :class:`vigil.features.FeaturePipeline` (the detector runs the same
code); ground-truth windows come from ``vigil_labels`` through :func:`vigil.seed.load_labels`.
A row (host, interval ``[time, time + interval)``) is labelled 1 when it overlaps one of its
host's label windows; ``label_id``/``label_kind`` name the window, for event-level metrics.
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
    PipelineError,
    dataset_hash,
    default_out_dir,
    parse_time,
    write_json,
)
from vigil.features import FeaturePipeline
from vigil.influx import InfluxClient
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
    """Add label / label_id / label_kind: a row is anomalous when its interval overlaps a window."""
    out = features.copy()
    out[LABEL_COLUMN] = np.zeros(len(out), dtype=np.int64)
    out[LABEL_ID_COLUMN] = ""
    out[LABEL_KIND_COLUMN] = ""
    if labels.empty or out.empty:
        return out
    width = pd.Timedelta(seconds=interval_s)
    by_host = {h: idx for h, idx in out.groupby("host").groups.items()}
    label_col = out.columns.get_loc(LABEL_COLUMN)
    id_col, kind_col = out.columns.get_loc(LABEL_ID_COLUMN), out.columns.get_loc(LABEL_KIND_COLUMN)
    for row in labels.sort_values("start").itertuples(index=False):
        idx = by_host.get(row.host)
        if idx is None:
            continue
        times = out.loc[idx, "time"]
        hit = (times < row.end) & (times + width > row.start)
        positions = out.index.get_indexer(times.index[hit.to_numpy()])
        fresh = positions[out.iloc[positions, label_col].to_numpy() == 0]  # first window wins
        out.iloc[fresh, label_col] = 1
        out.iloc[fresh, id_col] = str(row.label_id)
        out.iloc[fresh, kind_col] = str(row.kind)
    return out


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
    from vigil.seed import load_labels  # the seeder owns the label schema reader

    began = time.perf_counter()
    start_ts, end_ts = resolve_window(start, end, lookback)
    client = client or InfluxClient(settings=settings)
    db = raw_db or settings.influx_raw_db
    log.info("extract: reading %s .. %s from %r", start_ts, end_ts, db)
    _, features = FeaturePipeline(interval_s=settings.feature_interval_s).update_from_influx(
        client, db, start_ts, end_ts, settings.feature_interval_s
    )
    if features.empty:
        raise PipelineError(f"no raw metrics in {db!r} between {start_ts} and {end_ts}")
    log.info(
        "extract: %d feature rows for %d hosts; joining labels", len(features), features["host"].nunique()
    )
    labels = load_labels(client, settings, start_ts, end_ts)
    data = join_labels(features, labels, settings.feature_interval_s)
    data["time"] = pd.to_datetime(data["time"], utc=True).astype("datetime64[ns, UTC]")
    data["warmup"] = data["warmup"].astype(np.int64)
    data = data[list(DATASET_COLUMNS)].sort_values(["host", "time"], kind="stable").reset_index(drop=True)
    digest = dataset_hash(data)
    out_dir = Path(out_dir or default_out_dir(settings) / "datasets")
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"features-{digest[:16]}.parquet"
    data.to_parquet(path, index=False)
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
