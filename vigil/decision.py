"""The one rule that turns the models' scores into the decision that pages.

Three kinds of evidence meet here, each on one scale, its **severity** ``s = score /
threshold`` (``s > 1``: "this one flags it"; a threshold <= 0 cannot be divided by, so then
``s`` is ``2 * CONVICTION`` if the model flags the row and 0 otherwise):

* ``s_u`` — **per-series evidence** (:mod:`vigil.online.series`): the largest, over a host's
  metrics, of how far the value is beyond that series' own recent records or how rarely the
  series has been at this level. It exists only for series with enough history (a day and
  100 samples). It is the one online signal that may page on its own.
* ``s_b`` — the **champion** (batch model trained on the fleet, with its per-host calibration).
* ``s_f`` — the **fleet model** (River HalfSpaceTrees with the rank-calibrated extreme member,
  one model for the whole fleet, :mod:`vigil.online.detector`). Its severity is at most about
  1 (a rank against recent fleet history), so it only ever **confirms** the champion: a record
  among the last few thousand fleet rows happens every few intervals on a large fleet and must
  not page anyone by itself. It is what lets the champion be confirmed on a host too young for
  per-series evidence.

The combined score and its threshold of 1:

1. With a champion: ``c = max(min(s_b, max(s_f, s_u)), max(s_b, s_u) / CONVICTION)`` — both the
   champion and an online signal flag the row, or the champion or the series evidence is
   convinced (at least ``CONVICTION`` times its threshold).
2. Without a champion (before the first promotion): ``c = s_u`` — the series evidence decides
   alone. This is exactly what ``vigil evaluate nab`` scores.
3. A row in warm-up (a host whose baseline is still young) is scored but never flags.
4. **Recovery**: a row flags only while something is out of line *now* — some metric's current
   deviation from its host baseline is at least ``band_z`` (a ``*_z`` feature), or the series
   evidence itself flags. Smoothed and windowed features (a one-minute mean, the volatility)
   trail the load by their window; without this rule an alarm outlived its cause by that much.

5. **Seasonality**: a row does not flag when the host's own history says that what is out of
   line is usual *for this hour of the day*: every metric out of band now lies within what its
   series did at this hour on earlier days (``usual`` of the series evidence: not beyond that
   hour's envelope by ``season_excess`` of the series' range). A backup at 02:00 every night is
   then quiet from its second night on — even when a night's backup writes a little more than
   any before (a record, but not for 02:00) — while the same burst at 14:00 still flags.

The top features come from whichever evidence is most severe on that row (a series' metric name
when the series evidence wins).

>>> combine_scores(batch_score=[2.0], batch_threshold=[1.0], online_score=[0.9], online_threshold=[0.6])
array([1.73913043])
>>> combine_flags([1.2], [0]).tolist(), combine_flags([0.9], [0]).tolist()
([True], [False])
>>> combine_flags([5.0], [1]).tolist()   # warm-up never alarms
[False]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

#: How far beyond its own threshold one model must be to alarm without the other's agreement.
#: Chosen on seeded history (tests/integration/test_detector_e2e.py): IsolationForest scores are compressed
#: (a seeded anomaly sits 10-25 % above the threshold), so a larger margin loses real alarms
#: while 1.0 (plain OR) lets each model's false positives through.
CONVICTION = 1.15
#: The threshold of the combined score (by construction of the severity scale).
COMBINED_THRESHOLD = 1.0
#: The boundary of the per-series evidence score (vigil.online.series: 0.5 = a record / a level
#: exactly as rare as ``rarity_p``).
SERIES_THRESHOLD = 0.5

ArrayLike = Sequence[float] | np.ndarray | pd.Series


def severity(score: ArrayLike, threshold: ArrayLike, flagged: ArrayLike | None = None) -> np.ndarray:
    """``score / threshold``; where the threshold is not positive, 2 * CONVICTION if flagged else 0."""
    s = np.asarray(score, dtype=float)
    t = np.broadcast_to(np.asarray(threshold, dtype=float), s.shape)
    f = np.zeros(s.shape, dtype=bool) if flagged is None else np.asarray(flagged).astype(bool)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(t > 0, s / np.where(t > 0, t, 1.0), np.where(f, 2 * CONVICTION, 0.0))
    ratio[~np.isfinite(ratio)] = 0.0
    return ratio


def combine_scores(
    online_score: ArrayLike,
    online_threshold: ArrayLike,
    batch_score: ArrayLike | None = None,
    batch_threshold: ArrayLike | None = None,
    online_flag: ArrayLike | None = None,
    batch_flag: ArrayLike | None = None,
    series_score: ArrayLike | None = None,
) -> np.ndarray:
    """The combined score ``c`` of rules 1 and 2 (``online_*``: the fleet model)."""
    s_f = severity(online_score, online_threshold, online_flag)
    s_u = (
        np.zeros_like(s_f)
        if series_score is None
        else np.asarray(series_score, dtype=float) / SERIES_THRESHOLD
    )
    if batch_score is None:
        return s_u
    s_b = severity(batch_score, batch_threshold if batch_threshold is not None else 0.0, batch_flag)
    return np.maximum(np.minimum(s_b, np.maximum(s_f, s_u)), np.maximum(s_b, s_u) / CONVICTION)


def combine_flags(combined: ArrayLike, warmup: ArrayLike, now: ArrayLike | None = None) -> np.ndarray:
    """Rules 3 and 4: ``combined > 1``, not in warm-up, and (if given) out of line now."""
    c = np.asarray(combined, dtype=float)
    flags = (c > COMBINED_THRESHOLD) & ~np.asarray(warmup).astype(bool)
    if now is not None:
        flags &= np.asarray(now).astype(bool)
    return flags


def out_of_band(features: pd.DataFrame, band_z: float) -> np.ndarray:
    """Rule 4's test: some metric's current deviation (a ``*_z`` column) is at least ``band_z``.

    >>> out_of_band(pd.DataFrame({"cpu_z": [0.5, -4.0], "cpu_zmean": [9.0, 0.0]}), 3.0).tolist()
    [False, True]
    """
    cols = [c for c in features.columns if c.endswith("_z")]
    if not cols:
        return np.zeros(len(features), dtype=bool)
    z = np.abs(features[cols].to_numpy(dtype=float))
    return np.nan_to_num(z, nan=0.0).max(axis=1) >= band_z


def combine_frames(
    online: pd.DataFrame,
    batch: pd.DataFrame | None,
    warmup: ArrayLike,
    series: pd.DataFrame | None = None,
    now: ArrayLike | None = None,
    fleet_confirms: bool = True,
) -> pd.DataFrame:
    """Combine prediction frames (columns of ``vigil.schema.PREDICTIONS``, same index).

    ``online`` is the fleet model, ``batch`` the champion (None before the first promotion),
    ``series`` the per-series evidence (columns ``score``, ``metric`` and optionally ``usual``
    for rule 5; None = none), ``now`` rule 4's "out of band now" per row (None = not applied),
    ``fleet_confirms=False`` leaves the fleet model out (``detector_fleet_confirms``, the
    ablation). Returns score, threshold, is_anomaly (0/1), warmup (0/1) and the top features of
    the most severe evidence.
    """
    n = len(online)
    s_f = severity(online["score"], online["threshold"], online["is_anomaly"])
    if not fleet_confirms:
        s_f = np.zeros(n)
    s_u = (
        np.zeros(n)
        if series is None
        else np.nan_to_num(series["score"].to_numpy(dtype=float)) / SERIES_THRESHOLD
    )
    if batch is None:
        combined = s_u
        s_b = np.zeros(n)
    else:
        s_b = severity(batch["score"], batch["threshold"], batch["is_anomaly"])
        combined = np.maximum(np.minimum(s_b, np.maximum(s_f, s_u)), np.maximum(s_b, s_u) / CONVICTION)
    series_wins = (s_u > 0) & (s_u >= s_b) & (s_u >= s_f)
    batch_wins = ~series_wins & (s_b >= s_f) & (batch is not None)
    warm = np.asarray(warmup).astype(bool)
    if now is not None:
        now = np.asarray(now).astype(bool) | (s_u > 1.0)
    if series is not None and "usual" in series:
        usual = series["usual"].to_numpy().astype(bool)
        now = ~usual if now is None else now & ~usual
    out = pd.DataFrame(index=online.index)
    out["score"] = combined
    out["threshold"] = COMBINED_THRESHOLD
    out["is_anomaly"] = combine_flags(combined, warm, now).astype(np.int64)
    out["warmup"] = warm.astype(np.int64)
    for k in (1, 2, 3):
        for part in ("feature", "contribution"):
            col = f"top{k}_{part}"
            value = online[col].to_numpy() if col in online else np.full(n, None)
            if batch is not None and col in batch:
                value = np.where(batch_wins, batch[col].to_numpy(), value)
            if series is not None:
                if k == 1:
                    mine = series["metric"].to_numpy() if part == "feature" else series["score"].to_numpy()
                    value = np.where(series_wins, mine, value)
            out[col] = value
    return out
