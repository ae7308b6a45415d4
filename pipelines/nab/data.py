"""Reading a NAB corpus folder (``data/<category>/<file>.csv`` + ``labels/combined_windows.json``)
and published results (``results/<detector>/<category>/<detector>_<file>.csv``).

Rows stay in file order (NAB's timestamps repeat at a DST change and can go backwards);
a window edge naming a repeated timestamp resolves to its first occurrence.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

PROBATION_FRACTION = 0.15
PROBATION_CAP_ROWS = 5000


@dataclass
class NabSeries:
    """One NAB data file: ``key`` is ``<category>/<file>.csv`` as in the labels file."""

    key: str
    frame: pd.DataFrame  # columns timestamp (str as in the file), value (float)
    windows: list[tuple[str, str]]

    @property
    def category(self) -> str:
        return self.key.split("/")[0]

    @property
    def filename(self) -> str:
        return self.key.split("/")[-1]

    @property
    def n_rows(self) -> int:
        return len(self.frame)

    @property
    def probation_rows(self) -> int:
        return probation_rows(self.n_rows)

    def window_indices(self) -> list[tuple[int, int]]:
        return window_indices(self.frame["timestamp"].tolist(), self.windows, self.key)


def probation_rows(n_rows: int) -> int:
    """NAB: ``min(floor(0.15 * n), 0.15 * 5000)`` rows at the start are not scored.

    >>> probation_rows(4032), probation_rows(10000)
    (604, 750)
    """
    return int(min(int(PROBATION_FRACTION * n_rows), PROBATION_FRACTION * PROBATION_CAP_ROWS))


def _norm_ts(ts: str) -> pd.Timestamp:
    return pd.Timestamp(ts)


def window_indices(
    timestamps: list[str], windows: list[tuple[str, str]], key: str = ""
) -> list[tuple[int, int]]:
    """(first row, last row) of each window, by first occurrence of its edge timestamps."""
    first: dict[pd.Timestamp, int] = {}
    for i, ts in enumerate(timestamps):
        first.setdefault(_norm_ts(ts), i)
    out = []
    for start, end in windows:
        s, e = _norm_ts(start), _norm_ts(end)
        if s not in first or e not in first:
            raise ValueError(f"{key}: window edge {start!r} or {end!r} is not a timestamp of the file")
        if first[e] < first[s]:
            raise ValueError(f"{key}: window ({start}, {end}) ends before it starts")
        out.append((first[s], first[e]))
    return out


def load_windows(root: Path) -> dict[str, list[tuple[str, str]]]:
    path = Path(root) / "labels" / "combined_windows.json"
    if not path.is_file():
        raise FileNotFoundError(f"no labels file at {path} (NAB layout: labels/combined_windows.json)")
    raw = json.loads(path.read_text())
    return {k: [(w[0], w[1]) for w in v] for k, v in raw.items()}


def read_series_csv(path: Path) -> pd.DataFrame:
    frame = pd.read_csv(path, dtype={"timestamp": str})
    missing = {"timestamp", "value"} - set(frame.columns)
    if missing:
        raise ValueError(f"{path}: missing column(s) {sorted(missing)}; has {list(frame.columns)}")
    frame["value"] = pd.to_numeric(frame["value"], errors="coerce").astype(float)
    return frame[["timestamp", "value"]]


def load_corpus(root: Path, only: list[str] | None = None) -> list[NabSeries]:
    """Every data file under ``root/data`` that the labels file names (sorted by key).

    ``only``: keep keys containing any of these substrings (e.g. a file name).
    """
    root = Path(root)
    windows = load_windows(root)
    series = []
    for key in sorted(windows):
        if only and not any(o in key for o in only):
            continue
        path = root / "data" / key
        if not path.is_file():
            continue  # the labels file covers the full corpus; a subset holds fewer files
        series.append(NabSeries(key, read_series_csv(path), windows[key]))
    if not series:
        raise FileNotFoundError(f"no labelled data files under {root / 'data'}")
    return series


def load_published_scores(root: Path, detector: str, corpus: list[NabSeries]) -> dict[str, list[float]]:
    """anomaly_score per row for each series of ``corpus``, from ``root/results/<detector>``."""
    out = {}
    for s in corpus:
        path = Path(root) / "results" / detector / s.category / f"{detector}_{s.filename}"
        frame = pd.read_csv(path)
        if len(frame) != s.n_rows:
            raise ValueError(f"{path}: {len(frame)} rows, data file has {s.n_rows}")
        out[s.key] = frame["anomaly_score"].astype(float).tolist()
    return out


def published_detectors(root: Path) -> list[str]:
    base = Path(root) / "results"
    return sorted(p.name for p in base.iterdir() if p.is_dir()) if base.is_dir() else []
