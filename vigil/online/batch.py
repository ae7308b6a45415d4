"""The online model on a whole batch of rows: score all against one model state, then learn.

Why a batch path: the detector scores every host of an interval at once (10,000 rows a
poll at the benchmark's fleet size), and the per-row path costs ~100 µs of Python per row
(dicts for the scaler, one tree walk per row, a sort for the contributions). Here the
scaler, the tree walk (:mod:`vigil.online.hst_arrays`), the calibration and the
contributions are numpy over the batch.

Semantics: every row of a batch is scored against the model state *before* the batch
(the threshold too), then the rows chosen to learn are learnt in order through the
per-row :meth:`OnlineDetector.learn` (which still refuses flagged rows). For rows of one
interval across hosts that is the natural order — no host's point helps score another
host's point of the same instant — and it makes the scores independent of how hosts
are ordered. Each row's score equals :meth:`OnlineDetector.score` on that state, bit
for bit (``tests/unit/test_online_batch.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vigil.online.hst_arrays import HstArrays
from vigil.online.state import OnlineModel, OnlineScore

#: Contributions reported per row (the top features of a prediction).
TOP_K = 3


@dataclass
class BatchScores:
    """Scores of a batch (arrays of one entry per row; ``threshold`` and ``warmup`` are the
    model's at the start of the batch)."""

    score: np.ndarray
    threshold: float
    is_anomaly: np.ndarray
    warmup: bool
    raw_score: np.ndarray
    extreme_score: np.ndarray
    top_features: np.ndarray  # (rows, TOP_K) feature names, "" where fewer features
    top_contributions: np.ndarray  # (rows, TOP_K) share of |z|

    def row(self, i: int) -> OnlineScore:
        """Row ``i`` as the per-row API returns it (only the top features as contributions)."""
        k = int(np.count_nonzero(self.top_features[i] != ""))
        return OnlineScore(
            score=float(self.score[i]),
            threshold=self.threshold,
            is_anomaly=bool(self.is_anomaly[i]),
            contributions=[
                (str(f), float(c))
                for f, c in zip(self.top_features[i][:k], self.top_contributions[i][:k], strict=True)
            ],
            raw_score=float(self.raw_score[i]),
            warmup=self.warmup,
            extreme_score=float(self.extreme_score[i]),
        )


def contributions_matrix(z: np.ndarray, names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Top ``TOP_K`` features by share of |z| per row, as :func:`~vigil.online.detector._contributions`
    ranks them (ties keep column order; a row whose |z| are all 0 reports its present features
    with 0.0; NaN = the feature is absent)."""
    n, f = z.shape
    present = ~np.isnan(z)
    absz = np.where(present, np.abs(z), 0.0)
    total = np.zeros(n)
    for j in range(f):  # left to right, as Python's sum() adds them: the same bits
        total = total + absz[:, j]
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(total[:, None] > 0, absz / np.where(total > 0, total, 1.0)[:, None], 0.0)
    key = np.where(present, -share, np.inf)  # absent features sort last
    order = np.argsort(key, axis=1, kind="stable")[:, :TOP_K]
    k = min(TOP_K, f)
    picked_present = np.take_along_axis(present, order, axis=1)
    top_names = np.full((n, TOP_K), "", dtype=object)
    top_share = np.zeros((n, TOP_K))
    top_names[:, :k] = np.where(picked_present, np.asarray(names, dtype=object)[order], "")
    top_share[:, :k] = np.where(picked_present, np.take_along_axis(share, order, axis=1), 0.0)
    return top_names, top_share


def _abs_finite(x: np.ndarray) -> np.ndarray:
    return np.where(np.isfinite(x), np.abs(x), 0.0)


def score_batch(det: OnlineModel, x: np.ndarray) -> BatchScores:
    """Score every row of ``x`` (rows × ``det.feature_names``, NaN = missing) without learning."""
    x = np.asarray(x, dtype=float)
    if x.ndim != 2 or x.shape[1] != len(det.feature_names):
        raise ValueError(
            f"expected rows x {len(det.feature_names)} features {det.feature_names}, got shape {x.shape}"
        )
    c = det.config
    n = len(x)
    if n <= SMALL_BATCH:
        return _score_rows(det, x)
    p = det.parts
    z = p.scaler.zscores_matrix(x)
    squashed = np.clip((z + c.scale_clip) / (2 * c.scale_clip), 0.0, 1.0)  # NaN stays NaN (missing)
    raw = HstArrays.from_river(p.trees, det.feature_names).score(squashed)
    # the "extreme" member: the largest |x| of the named features, else the largest |z|
    if p.extreme_features:
        cols = [det.feature_names.index(f) for f in p.extreme_features]
        extreme = np.max(_abs_finite(x[:, cols]), axis=1, initial=0.0)
    else:
        extreme = np.max(_abs_finite(z), axis=1, initial=0.0)
    if c.calibration == "rank":
        if len(p.ranks) >= c.calibration_min_history:
            ext: list[np.ndarray] = []
            if c.extreme_member == "extreme":
                if p.member_ranks:
                    for f, ranks in p.member_ranks.items():
                        ext.append(ranks.rank_many(_abs_finite(x[:, det.feature_names.index(f)])))
                else:
                    ext.append(p.extreme_ranks.rank_many(extreme))
            members = []
            if c.hst_member:
                hst = p.ranks.rank_many(raw / (1.0 + c.hst_record_margin))
                if c.hst_gate > 0 and ext:
                    hst = np.where(np.max(np.vstack(ext), axis=0) >= c.hst_gate, hst, 0.0)
                members.append(hst)
            members += ext
            if not members:
                score = np.zeros(n)
            elif c.member_mix == "max":
                score = np.max(np.vstack(members), axis=0)
            else:
                total = np.zeros(n)
                for m in members:  # in order, as sum() does
                    total = total + m
                score = total / len(members)
        else:
            score = np.zeros(n)
    elif c.calibration == "likelihood":
        score = np.array([p.likelihood.calibrate(float(r)) for r in raw])
    else:
        score = raw
    warm = det.n_seen < c.warmup
    threshold = det.threshold
    top_names, top_share = contributions_matrix(z, det.feature_names)
    return BatchScores(
        score=score,
        threshold=threshold,
        is_anomaly=(score > threshold) & (not warm),
        warmup=warm,
        raw_score=raw,
        extreme_score=extreme,
        top_features=top_names,
        top_contributions=top_share,
    )


#: Batches this small are scored row by row: turning the trees into arrays (HstArrays.from_river)
#: costs ~30 ms whatever the batch size, ~300x a row's walk of River's own trees (one series
#: streamed row by row, as ``vigil evaluate nab`` does, would spend nearly all its time there).
SMALL_BATCH = 8


def _score_rows(det: OnlineModel, x: np.ndarray) -> BatchScores:
    """:func:`score_batch` through :meth:`OnlineDetector.score`, one row at a time (same results)."""
    names = det.feature_names
    rows = [det.score({f: float(v) for f, v in zip(names, r, strict=True) if not np.isnan(v)}) for r in x]
    n = len(rows)
    top_names = np.full((n, TOP_K), "", dtype=object)
    top_share = np.zeros((n, TOP_K))
    for i, r in enumerate(rows):
        for k, (f, share) in enumerate(r.contributions[:TOP_K]):
            top_names[i, k], top_share[i, k] = f, share
    score = np.array([r.score for r in rows], dtype=float)
    threshold = det.threshold
    warm = det.n_seen < det.config.warmup
    return BatchScores(
        score=score,
        threshold=threshold,
        is_anomaly=(score > threshold) & (not warm),
        warmup=warm,
        raw_score=np.array([r.raw_score for r in rows], dtype=float),
        extreme_score=np.array([r.extreme_score for r in rows], dtype=float),
        top_features=top_names,
        top_contributions=top_share,
    )


def learn_batch(det: OnlineModel, x: np.ndarray, scores: BatchScores, mask: np.ndarray) -> int:
    """Learn the rows of ``x`` where ``mask`` holds, in order, each with its batch score; returns
    how many were passed to :meth:`OnlineDetector.learn` (which skips rows it flagged)."""
    names = det.feature_names
    rows = np.flatnonzero(np.asarray(mask, dtype=bool))
    for i in rows:
        row = {f: float(v) for f, v in zip(names, x[i], strict=True) if not np.isnan(v)}
        det.learn(row, scores.row(int(i)))
    return len(rows)
