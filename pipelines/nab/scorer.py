"""NAB's scoring, re-implemented from the corpus' ``SCORING.md`` (NAB's scoring rules).

Per row a position weight (scaled sigmoid of the relative position to the current or
previous window); per threshold: each window scores its earliest detection (or
``-fn_weight``), every detection outside windows adds its negative weight; one
threshold per profile is chosen over all files together by sweeping every distinct
anomaly score; the raw score is normalised between the null (never alarms) and the
perfect detector.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Profile:
    name: str
    tp_weight: float
    fp_weight: float
    fn_weight: float


PROFILES: dict[str, Profile] = {
    "standard": Profile("standard", 1.0, 0.11, 1.0),
    "reward_low_FP_rate": Profile("reward_low_FP_rate", 1.0, 0.22, 1.0),
    "reward_low_FN_rate": Profile("reward_low_FN_rate", 1.0, 0.11, 2.0),
}


def scaled_sigmoid(y: float) -> float:
    """``2 / (1 + exp(5y)) - 1``, and -1 beyond y = 3.

    >>> round(scaled_sigmoid(-1.0), 4), scaled_sigmoid(0.0), scaled_sigmoid(4.0)
    (0.9866, 0.0, -1.0)
    """
    if y > 3.0:
        return -1.0
    return 2.0 / (1.0 + math.exp(5.0 * y)) - 1.0


@dataclass
class FileLayout:
    """Position facts of one file, independent of any detector.

    ``window_of[i]`` is the window index of row i or -1; ``weight[i]`` the row's weighted
    score at tp/fp weight 1 (positive in windows, negative outside); ``scored[i]`` False in
    the probationary period.
    """

    n_rows: int
    windows: list[tuple[int, int]]
    window_of: np.ndarray
    unit_tp: np.ndarray  # sigma(y)/sigma(-1) inside windows, 0 outside
    unit_fp: np.ndarray  # sigma(y) (<0) or -1 outside windows, 0 inside
    scored: np.ndarray


def file_layout(n_rows: int, windows: Sequence[tuple[int, int]], probation: int) -> FileLayout:
    """Compute per-row weights (see SCORING.md, "Per-row weighted score")."""
    windows = sorted(windows)
    for (_, r1), (l2, _) in zip(windows, windows[1:], strict=False):
        if l2 <= r1:
            raise ValueError(f"overlapping windows {windows}")
    window_of = np.full(n_rows, -1, dtype=np.int64)
    unit_tp = np.zeros(n_rows)
    unit_fp = np.zeros(n_rows)
    s_minus1 = scaled_sigmoid(-1.0)
    prev: tuple[int, int] | None = None
    wi = 0
    for i in range(n_rows):
        while wi < len(windows) and windows[wi][1] < i:
            prev = windows[wi]
            wi += 1
        if wi < len(windows) and windows[wi][0] <= i <= windows[wi][1]:
            left, right = windows[wi]
            width = right - left + 1
            window_of[i] = wi
            unit_tp[i] = scaled_sigmoid(-(right - i + 1) / width) / s_minus1
        elif prev is None:
            unit_fp[i] = -1.0
        else:
            width = prev[1] - prev[0] + 1
            unit_fp[i] = scaled_sigmoid(abs(prev[1] - i) / max(width - 1, 1))
    scored = np.arange(n_rows) >= probation
    return FileLayout(n_rows, list(windows), window_of, unit_tp, unit_fp, scored)


@dataclass
class ProfileResult:
    profile: str
    threshold: float
    raw: float
    raw_null: float
    raw_perfect: float
    normalised: float
    tp: int
    fp: int
    fn: int


def normalise(raw: float, n_windows: int, p: Profile) -> float:
    perfect, null = p.tp_weight * n_windows, -p.fn_weight * n_windows
    return 100.0 * (raw - null) / (perfect - null)


def raw_score_at(
    layouts: Mapping[str, FileLayout], scores: Mapping[str, Sequence[float]], threshold: float, p: Profile
) -> tuple[float, int, int, int]:
    """Raw score, tp, fp, fn of all files at one threshold (detection: score >= threshold)."""
    raw, tp, fp, fn = 0.0, 0, 0, 0
    for key, lay in layouts.items():
        s = np.asarray(scores[key], dtype=float)
        det = (s >= threshold) & lay.scored
        for w in range(len(lay.windows)):
            hits = np.flatnonzero(det & (lay.window_of == w))
            if len(hits):
                raw += p.tp_weight * lay.unit_tp[hits[0]]
                tp += 1
            else:
                raw -= p.fn_weight
                fn += 1
        fps = det & (lay.window_of < 0)
        raw += p.fp_weight * float(lay.unit_fp[fps].sum())
        fp += int(fps.sum())
    return raw, tp, fp, fn


def optimise(
    layouts: Mapping[str, FileLayout], scores: Mapping[str, Sequence[float]], p: Profile
) -> ProfileResult:
    """Sweep every distinct score as threshold (from above the maximum down); keep the best.

    Incremental: lowering the threshold only adds detections; a window's value is the
    largest unit weight among its detected rows (= its earliest detection, as weights fall
    through a window), so each row updates the total in O(1).
    """
    n_windows = sum(len(lay.windows) for lay in layouts.values())
    entries = []  # (score, file idx, row)
    keys = list(layouts)
    for fi, key in enumerate(keys):
        lay = layouts[key]
        s = np.asarray(scores[key], dtype=float)
        if len(s) != lay.n_rows:
            raise ValueError(f"{key}: {len(s)} scores for {lay.n_rows} rows")
        rows = np.flatnonzero(lay.scored)
        for r in rows:
            entries.append((float(s[r]), fi, int(r)))
    entries.sort(key=lambda e: -e[0])
    best_window = {(fi, w): None for fi, key in enumerate(keys) for w in range(len(layouts[key].windows))}
    raw = -p.fn_weight * n_windows
    tp = fp = 0
    best = ProfileResult(p.name, float("inf"), raw, raw, p.tp_weight * n_windows, 0.0, 0, 0, n_windows)
    best_raw = raw
    i = 0
    while i < len(entries):
        threshold = entries[i][0]
        while i < len(entries) and entries[i][0] == threshold:
            _, fi, r = entries[i]
            lay = layouts[keys[fi]]
            w = int(lay.window_of[r])
            if w < 0:
                raw += p.fp_weight * lay.unit_fp[r]
                fp += 1
            else:
                cur = best_window[(fi, w)]
                val = p.tp_weight * lay.unit_tp[r]
                if cur is None:
                    raw += val + p.fn_weight
                    best_window[(fi, w)] = val
                    tp += 1
                elif val > cur:
                    raw += val - cur
                    best_window[(fi, w)] = val
            i += 1
        if raw > best_raw + 1e-12:
            best_raw = raw
            best = ProfileResult(
                p.name,
                threshold,
                raw,
                -p.fn_weight * n_windows,
                p.tp_weight * n_windows,
                0.0,
                tp,
                fp,
                n_windows - tp,
            )
    best.normalised = normalise(best.raw, n_windows, p)
    return best


def score_detector(
    layouts: Mapping[str, FileLayout], scores: Mapping[str, Sequence[float]]
) -> dict[str, ProfileResult]:
    """Optimised, normalised score of one detector for every profile."""
    return {name: optimise(layouts, scores, p) for name, p in PROFILES.items()}
