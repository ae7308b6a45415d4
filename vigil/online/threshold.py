"""Adaptive threshold and score calibration: statistics over a rolling window of scores.

Both are O(window) worst case per update via a sorted list and bisect (a memmove of a
few thousand floats, ~1 µs), cheap next to the trees.
"""

from __future__ import annotations

import math
from bisect import bisect_left, insort
from collections import deque

import numpy as np


class RollingQuantile:
    """Quantile of the last ``window`` values.

    >>> rq = RollingQuantile(0.5, window=3)
    >>> for v in [1.0, 5.0, 3.0, 4.0]:
    ...     rq.update(v)
    >>> rq.value()   # median of [5, 3, 4]
    4.0
    """

    def __init__(self, q: float, window: int) -> None:
        self.q = q
        self.window = window
        self._fifo: deque[float] = deque()
        self._sorted: list[float] = []

    def __len__(self) -> int:
        return len(self._fifo)

    def update(self, value: float) -> None:
        self._fifo.append(value)
        insort(self._sorted, value)
        if len(self._fifo) > self.window:
            old = self._fifo.popleft()
            del self._sorted[bisect_left(self._sorted, old)]

    def rank(self, value: float) -> float:
        """Empirical CDF of ``value`` in the window, in [0, 1): ``below / (n + 1)``.

        A value beyond the window's maximum adds ``1 - max / value`` (in [0, 1)) to the count,
        so new extremes keep their order (a spike 10x the old maximum outranks one 1.1x it)
        and a score can always exceed a quantile of earlier scores; plain ranks would all
        be 1.0 there and a threshold at 1.0 could never be crossed.

        >>> rq = RollingQuantile(0.5, window=4)
        >>> for v in [1.0, 2.0, 3.0, 4.0]:
        ...     rq.update(v)
        >>> rq.rank(3.0), round(rq.rank(8.0), 2), rq.rank(8.0) < rq.rank(40.0) < 1.0
        (0.4, 0.9, True)
        """
        n = len(self._sorted)
        if n == 0:
            return 0.0
        below = bisect_left(self._sorted, value)
        if below == n:
            top = self._sorted[-1]
            extra = 1.0 - top / value if top > 0 and value > 0 else 0.5
            return (n + max(0.0, min(extra, 1.0 - 1e-12))) / (n + 1)
        return below / (n + 1)

    def rank_many(self, values: np.ndarray) -> np.ndarray:
        """:meth:`rank` of each value (same arithmetic, so the same bits), in one pass.

        >>> rq = RollingQuantile(0.5, window=4)
        >>> for v in [1.0, 2.0, 3.0, 4.0]:
        ...     rq.update(v)
        >>> rq.rank_many(np.array([3.0, 8.0])).tolist() == [rq.rank(3.0), rq.rank(8.0)]
        True
        """
        values = np.asarray(values, dtype=float)
        n = len(self._sorted)
        if n == 0:
            return np.zeros(len(values))
        below = np.searchsorted(np.asarray(self._sorted), values, side="left")
        top = self._sorted[-1]
        with np.errstate(divide="ignore", invalid="ignore"):
            extra = np.where((top > 0) & (values > 0), 1.0 - top / values, 0.5)
        beyond = (n + np.maximum(0.0, np.minimum(extra, 1.0 - 1e-12))) / (n + 1)
        return np.where(below == n, beyond, below / (n + 1))

    def value(self) -> float:
        """The ``q`` quantile (nearest rank, upper); 0.0 before any update."""
        if not self._sorted:
            return 0.0
        idx = min(len(self._sorted) - 1, math.ceil(self.q * len(self._sorted)) - 1)
        return self._sorted[max(idx, 0)]


class ScoreLikelihood:
    """How surprising the short-term mean of raw scores is under their long-term distribution.

    Raw HalfSpaceTrees scores are not comparable across series or model states; the tail
    probability of a short mean under a Gaussian fit of the long window is, and a short
    mean needs a sustained rise, so single noisy scores do not alarm. The calibrated score
    is ``-log10(tail) / log_scale`` clipped to [0, 1] (0.5 = a 1-in-10^5 event by default).

    >>> lk = ScoreLikelihood(long_window=100, short_window=2, log_scale=10.0)
    >>> for i in range(100):
    ...     lk.update(0.1 + 0.01 * (i % 3))
    >>> lk.calibrate(0.11) < 0.1 < lk.calibrate(0.5)
    True
    """

    def __init__(self, long_window: int, short_window: int, log_scale: float) -> None:
        self.long_window = long_window
        self.short_window = short_window
        self.log_scale = log_scale
        self._long: deque[float] = deque()
        self._sum = 0.0
        self._sumsq = 0.0
        self._short: deque[float] = deque(maxlen=max(short_window - 1, 0) or None)
        if short_window <= 1:
            self._short = deque(maxlen=1)

    def update(self, raw: float) -> None:
        self._long.append(raw)
        self._sum += raw
        self._sumsq += raw * raw
        if len(self._long) > self.long_window:
            old = self._long.popleft()
            self._sum -= old
            self._sumsq -= old * old
        if self.short_window > 1:
            self._short.append(raw)

    def calibrate(self, raw: float) -> float:
        """Calibrated score in [0, 1] of ``raw`` given the history (does not update it)."""
        n = len(self._long)
        if n < 10:
            return 0.0
        mean = self._sum / n
        var = max(self._sumsq / n - mean * mean, 0.0)
        sd = max(math.sqrt(var), 1e-3)  # floor: a perfectly flat history must not explode
        recent = list(self._short) if self.short_window > 1 else []
        short_mean = (sum(recent) + raw) / (len(recent) + 1)
        z = (short_mean - mean) / sd
        if z <= 0:
            return 0.0
        tail = 0.5 * math.erfc(z / math.sqrt(2.0))
        return min(1.0, -math.log10(max(tail, 1e-300)) / self.log_scale)


class AlarmCooldown:
    """Per-key alarm suppression: after an alarm, the next ``rows`` alarms of that key are muted.

    Part of the decision rule, kept out of :class:`~vigil.online.OnlineDetector` because one
    fleet-wide model serves many hosts while a cooldown is per host (one incident = one
    alarm, not one per interval). The model still does not learn from the muted points: it
    is the *notification* that is muted, not the flag.

    >>> cd = AlarmCooldown(rows=2)
    >>> [cd.step("h1", f) for f in [True, True, True, False, True]]
    [True, False, False, False, True]
    >>> cd.step("h2", True)
    True
    """

    def __init__(self, rows: int) -> None:
        if rows < 0:
            raise ValueError("cooldown rows must be >= 0")
        self.rows = rows
        self._left: dict[str, int] = {}

    def step(self, key: str, flagged: bool) -> bool:
        """Whether this row raises an alarm; advances the key's cooldown by one row."""
        left = self._left.get(key, 0)
        if left > 0:
            self._left[key] = left - 1
            return False
        if flagged:
            self._left[key] = self.rows
            return True
        return False

    def in_cooldown(self, key: str) -> bool:
        return self._left.get(key, 0) > 0
