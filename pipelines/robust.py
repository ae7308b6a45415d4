"""Training data made robust to the anomalies it contains, without labels: trimming by a pre-score.

A real fleet's recent history is mostly normal but not all of it: incidents nobody labelled sit
in it. Fitted as "normal", they widen what a model accepts; left among the rows a threshold is set
on, they push the threshold above themselves — an alarm budget of one per host-day over a window
holding four real incidents per host-day would be spent on those incidents, and the next ones
would pass unseen. So before fitting, and before setting a threshold, the rows that are probably
anomalies are **trimmed**:

1. **Pre-score** of a row: the largest absolute value among its features. The features are
   already host-relative deviations (``vigil.features``: robust per-host baselines, in units of
   the host's own spread, capped at ``BaselineConfig.z_cap``), so this needs no model and no fit,
   and it is the same yardstick for every host.
2. A row is a **suspect** when its pre-score exceeds ``sigmas`` (``VIGIL_TRAINING__TRIM_SIGMAS``,
   default 5): some metric is more than five of the host's own sigmas from its baseline. On the
   seeded history, 0.01 % of the normal rows and 83 % of the anomalous ones are beyond 5 (every
   seeded event has suspects).
3. Rows of the same host up to ``recovery_s`` (120 s) **after** a suspect are trimmed too: the
   short-window features (``*_zmean``, ``*_vol``) carry an anomaly's trace for one short window
   after it ends, and those rows score like anomalies without being beyond 5 sigmas themselves.
4. **Cap**: at most ``max_fraction`` (``VIGIL_TRAINING__TRIM_MAX_FRACTION``, default 0.2) of the rows
   are trimmed. A fleet where more rows than that look extreme is one whose normal is extreme;
   then only the rows with the highest pre-scores go, and the cap is reported.

What it costs: a host whose *normal* reaches beyond 5 sigmas now and then (bursty disks) has
those rows left out of fitting and out of the threshold's untouched rows, so the model calls them
anomalous; the alarm budget then holds only if they are rarer than the budget. The trimmed share
is logged to MLflow (``trimmed_train_fraction``, ``trimmed_val_fraction``) so a fleet where it is
large shows.

``tests/unit/test_robust_training.py`` checks the effect on the threshold: 5 % of the training and
validation rows contaminated by unlabelled anomalies (three features 10 sigmas off, in windows)
move the alarm-budget threshold by less than 5 % (relative) for every family — measured 0.3 %
(Gaussian mixture), 2.7 % (isolation forest), 0.4 % (LOF) — where without trimming they move it
by 866 %, 5.3 % and 179 % (a forest's scores are compressed: they move little either way).

>>> import pandas as pd
>>> t = pd.date_range("2026-01-01", periods=6, freq="10s", tz="UTC")
>>> f = pd.DataFrame({"host": "a", "time": t, "cpu_busy_z": [0.1, 9.0, 0.2, 0.3, 0.1, 0.2]})
>>> trim_mask(f, sigmas=5.0, max_fraction=0.5, recovery_s=20.0, columns=["cpu_busy_z"]).mask.tolist()
[False, True, True, True, False, False]
>>> capped = trim_mask(f, sigmas=5.0, max_fraction=0.2, recovery_s=20.0, columns=["cpu_busy_z"])
>>> capped.mask.tolist(), capped.capped   # at most 20 % of 6 rows: the most extreme one
([False, True, False, False, False, False], True)
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from vigil.features import FEATURE_COLUMNS

log = logging.getLogger(__name__)

#: Seconds after a suspect row during which its host's rows are trimmed too (see the module doc).
RECOVERY_S = 120.0


@dataclass(frozen=True)
class Trim:
    """Which rows trimming removes (``mask``, aligned with the frame) and the counts behind it."""

    mask: np.ndarray
    suspects: int
    capped: bool

    @property
    def fraction(self) -> float:
        return float(self.mask.mean()) if len(self.mask) else 0.0


def pre_score(frame: pd.DataFrame, columns: Sequence[str] = FEATURE_COLUMNS) -> np.ndarray:
    """The largest |feature| of each row (missing and NaN read as 0, the host's baseline)."""
    x = frame.reindex(columns=list(columns)).to_numpy(dtype=float, na_value=np.nan)
    x[~np.isfinite(x)] = 0.0
    return np.abs(x).max(axis=1) if x.shape[1] else np.zeros(len(frame))


def trim_mask(
    frame: pd.DataFrame,
    *,
    sigmas: float,
    max_fraction: float = 0.2,
    recovery_s: float = RECOVERY_S,
    columns: Sequence[str] = FEATURE_COLUMNS,
) -> Trim:
    """Rows of ``frame`` (columns host, time and features) to leave out; see the module doc."""
    n = len(frame)
    if n == 0:
        return Trim(np.zeros(0, dtype=bool), 0, False)
    score = pre_score(frame, columns)
    suspect = score > sigmas
    if not suspect.any():
        return Trim(suspect, 0, False)
    times = pd.to_datetime(frame["time"], utc=True).astype("int64").to_numpy()
    hosts = frame["host"].astype(str).to_numpy()
    order = np.lexsort((times, hosts))
    last = pd.Series(np.where(suspect[order], times[order], np.nan))
    last = last.groupby(hosts[order]).ffill().to_numpy()
    trimmed_sorted = np.isfinite(last) & (times[order] - np.nan_to_num(last) <= recovery_s * 1e9)
    mask = np.zeros(n, dtype=bool)
    mask[order] = trimmed_sorted
    capped = False
    limit = int(max_fraction * n)
    if mask.sum() > limit:
        capped = True
        candidates = np.flatnonzero(mask)
        keep = candidates[np.argsort(-score[candidates], kind="stable")[:limit]]
        mask = np.zeros(n, dtype=bool)
        mask[keep] = True
        log.warning(
            "trimming: %d of %d rows look extreme (beyond %g sigmas or just after); only the %d most "
            "extreme (the cap, %.0f %%) are trimmed",
            len(candidates),
            n,
            sigmas,
            limit,
            100 * max_fraction,
        )
    return Trim(mask, int(suspect.sum()), capped)
