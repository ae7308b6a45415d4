"""The one rule that combines the champion's (batch) and the online model's decisions.

Why a rule of its own: the two models see the same host-relative features but fail
differently — the champion is trained on a fleet and a fixed threshold, the online
model adapts to today's normal. Alarming when *either* flags floods operators with
each model's false positives; alarming only when *both* flag loses the anomalies
that only one of them is sure of. So:

1. Each model's score is put on one scale, its **severity** ``s = score / threshold``
   (``s > 1`` means "this model flags it"). A threshold <= 0 cannot be divided by, so
   then ``s`` is ``2 * CONVICTION`` (convinced) if the model flags the row and 0 otherwise.
2. The combined score is ``c = max(min(s_batch, s_online), max(s_batch, s_online) / CONVICTION)``
   and the combined threshold is 1. Hence ``c > 1`` exactly when **both models flag**
   the row, **or one of them is convinced** (its score is at least ``CONVICTION`` times
   its threshold).
3. A row in warm-up (a host whose baseline is still young) is scored but never alarms.
4. With no champion (before the first promotion) the online model decides alone:
   ``c = s_online`` — the detector reports this as "online-only" mode in its status.

What this means in practice for the default online model: its score is rank-calibrated
(at most 1.0, "beyond everything in its recent history") and its threshold is a high
quantile of recent scores (about 0.9-0.99), so its severity never reaches CONVICTION.
Beside a champion the online model therefore *confirms or vetoes*: a row alarms when the
champion flags it and the online model agrees, or when the champion alone is convinced.
That is deliberate: the online model is one model for the whole fleet, so "a record among
the last few thousand fleet rows" happens every few intervals on a large fleet and must not
page anyone on its own.

The top features come from whichever model is more severe on that row.

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
#: Chosen on seeded history (tests/test_detector_e2e.py): IsolationForest scores are compressed
#: (a seeded anomaly sits 10-25 % above the threshold), so a larger margin loses real alarms
#: while 1.0 (plain OR) lets each model's false positives through.
CONVICTION = 1.15
#: The threshold of the combined score (by construction of the severity scale).
COMBINED_THRESHOLD = 1.0

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
) -> np.ndarray:
    """The combined score ``c`` of rule 2 (rule 4 when there is no batch score)."""
    s_on = severity(online_score, online_threshold, online_flag)
    if batch_score is None:
        return s_on
    s_b = severity(batch_score, batch_threshold if batch_threshold is not None else 0.0, batch_flag)
    return np.maximum(np.minimum(s_b, s_on), np.maximum(s_b, s_on) / CONVICTION)


def combine_flags(combined: ArrayLike, warmup: ArrayLike) -> np.ndarray:
    """Rule 3: ``combined > 1`` and not in warm-up."""
    c = np.asarray(combined, dtype=float)
    return (c > COMBINED_THRESHOLD) & ~np.asarray(warmup).astype(bool)


def combine_frames(online: pd.DataFrame, batch: pd.DataFrame | None, warmup: ArrayLike) -> pd.DataFrame:
    """Combine two prediction frames (columns of ``vigil.schema.PREDICTIONS``, same index).

    Returns score, threshold, is_anomaly (0/1), warmup (0/1) and the top features of the
    more severe model; with ``batch`` None the online model decides alone.
    """
    s_on = severity(online["score"], online["threshold"], online["is_anomaly"])
    if batch is None:
        combined = s_on
        batch_wins = np.zeros(len(online), dtype=bool)
    else:
        s_b = severity(batch["score"], batch["threshold"], batch["is_anomaly"])
        combined = np.maximum(np.minimum(s_b, s_on), np.maximum(s_b, s_on) / CONVICTION)
        batch_wins = s_b >= s_on
    warm = np.asarray(warmup).astype(bool)
    out = pd.DataFrame(index=online.index)
    out["score"] = combined
    out["threshold"] = COMBINED_THRESHOLD
    out["is_anomaly"] = combine_flags(combined, warm).astype(np.int64)
    out["warmup"] = warm.astype(np.int64)
    for k in (1, 2, 3):
        for part in ("feature", "contribution"):
            col = f"top{k}_{part}"
            on = online[col].to_numpy() if col in online else np.full(len(online), None)
            if batch is not None and col in batch:
                out[col] = np.where(batch_wins, batch[col].to_numpy(), on)
            else:
                out[col] = on
    return out
