"""Online standardisation squashed into [0, 1], the input range HalfSpaceTrees assumes.

Why not river's MinMaxScaler: one spike stretches its range for ever and squeezes all
normal points into a sliver of [0, 1]; an exponentially weighted mean/variance forgets
old regimes and a clip at ``scale_clip`` standard deviations keeps outliers at the edge.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np


class EwStandardScaler:
    """Per-feature running mean/variance: exact (Welford) for the first ``window`` samples,
    exponentially weighted with memory ``window`` after that.

    >>> s = EwStandardScaler(["a"], window=100, clip=4.0)
    >>> for v in [1.0, 2.0, 3.0]:
    ...     s.learn({"a": v})
    >>> round(s.zscores({"a": 2.0})["a"], 6)
    0.0
    >>> s.squash({"a": 100.0})["a"]
    1.0
    """

    def __init__(self, feature_names: Sequence[str], window: int, clip: float) -> None:
        self.feature_names = list(feature_names)
        self.window = window
        self.clip = clip
        self.n = {f: 0 for f in self.feature_names}
        self.mean = {f: 0.0 for f in self.feature_names}
        self.var = {f: 0.0 for f in self.feature_names}

    def learn(self, x: Mapping[str, float]) -> None:
        for f in self.feature_names:
            v = x.get(f)
            if v is None or not math.isfinite(v):
                continue  # missing values teach nothing
            n = self.n[f] = self.n[f] + 1
            alpha = 1.0 / min(n, self.window)
            delta = v - self.mean[f]
            self.mean[f] += alpha * delta
            # West's weighted update: exact Welford variance while n <= window.
            self.var[f] = (1.0 - alpha) * (self.var[f] + alpha * delta * delta)

    def zscores(self, x: Mapping[str, float]) -> dict[str, float]:
        """Standardised values; missing/non-finite inputs are left out (HST routes around them)."""
        out: dict[str, float] = {}
        for f in self.feature_names:
            v = x.get(f)
            if v is None or not math.isfinite(v) or self.n[f] == 0:
                continue
            sd = math.sqrt(self.var[f])
            if sd <= 1e-12:
                diff = v - self.mean[f]
                out[f] = 0.0 if abs(diff) <= 1e-12 else math.copysign(self.clip, diff)
            else:
                out[f] = (v - self.mean[f]) / sd
        return out

    def squash(self, x: Mapping[str, float]) -> dict[str, float]:
        """z-scores mapped linearly from [-clip, clip] onto [0, 1] and clipped."""
        c = self.clip
        return {f: min(1.0, max(0.0, (z + c) / (2.0 * c))) for f, z in self.zscores(x).items()}

    def zscores_matrix(self, x: np.ndarray) -> np.ndarray:
        """:meth:`zscores` of every row of ``x`` (rows × ``feature_names``) at once; NaN where
        :meth:`zscores` leaves a feature out. Same arithmetic, so the same bits.

        >>> s = EwStandardScaler(["a", "b"], window=100, clip=4.0)
        >>> for v in [1.0, 2.0, 3.0]:
        ...     s.learn({"a": v, "b": 5.0})
        >>> s.zscores_matrix(np.array([[2.0, 6.0], [np.inf, 5.0]])).tolist()
        [[0.0, 4.0], [nan, 0.0]]
        """
        x = np.asarray(x, dtype=float)
        names = self.feature_names
        mean = np.array([self.mean[f] for f in names])
        sd = np.sqrt(np.array([self.var[f] for f in names]))
        seen = np.array([self.n[f] > 0 for f in names])
        diff = x - mean
        flat = sd <= 1e-12
        with np.errstate(divide="ignore", invalid="ignore"):
            z = np.where(
                flat,
                np.where(np.abs(diff) <= 1e-12, 0.0, np.copysign(self.clip, diff)),
                diff / np.where(flat, 1.0, sd),
            )
        z[~np.isfinite(x) | ~seen] = np.nan
        return z
