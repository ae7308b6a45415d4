"""Each host's typical champion score: the champion's threshold for a host is never below it.

Why: the champion is trained on a fleet, and a host unlike that fleet can sit near or above
the champion's threshold *all the time* — features relative to the host's own baseline
remove most of that, not all (seen on the machine running the demo: an idle virtual disk
with rare page-cache-miss bursts scored 1.2-1.6 times the threshold for minutes, every
interval, while nothing happened). That is the champion saying "this host always looks
odd to me", not "something happened", and it must not page anyone. So each host's
effective champion threshold is ``max(model threshold, median of the host's last
``window`` unflagged champion scores)``: a host the champion finds typical is judged by the
model's own threshold (unchanged — seeded fleet hosts sit well below it), a host the
champion always finds odd is judged against its own usual score, and a real incident still
stands out from that (the stress suite's anomalies score 1.3-7x a host's usual).

Rows the combined decision flagged enter the buffer capped at ``CONVICTION`` times the
threshold they were judged by, so a short incident does not become the host's "usual" (a few
capped values among ``window`` do not move a median), while a shift that never ends does,
one bounded step at a time: after ``window / 2`` flagged rows in a row the host's usual is at
most ``CONVICTION`` times higher, and a host only slightly above that stops paging. Why: with
flagged rows left out, a host that settled a little above its old usual after a load paged
forever, because the rows that would have taught the calibration were exactly the ones it
refused (the likely cause of the live stress suite once seeing a host still alarming 150 s
after a 10 s network burst; that run did not record its features). Warm-up rows enter as they
are (that is how a new host's usual is learnt).

>>> cal = HostCalibration(window=4, min_rows=2)
>>> hosts = np.array(["a", "b"])
>>> cal.thresholds(hosts, np.array([1.0, 1.0])).tolist()   # nothing learnt yet: the model's
[1.0, 1.0]
>>> for s in ([0.4, 1.5], [0.5, 1.7], [0.6, 1.6]):
...     cal.update(hosts, np.array(s), np.array([False, False]), np.array([1.0, 1.0]))
>>> cal.thresholds(hosts, np.array([1.0, 1.0])).tolist()   # "b" always scores ~1.6
[1.0, 1.6]
>>> HostCalibration.from_state(cal.state()).thresholds(hosts, np.array([1.0, 1.0])).tolist()
[1.0, 1.6]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from vigil.decision import CONVICTION


class HostCalibration:
    """A ring buffer of each host's last ``window`` unflagged champion scores."""

    def __init__(self, window: int = 30, min_rows: int = 5) -> None:
        if window < 1 or min_rows < 1:
            raise ValueError("window and min_rows must be >= 1")
        self.window = window
        self.min_rows = min_rows
        self._index: dict[str, int] = {}
        self._buf = np.full((0, window), np.nan)
        self._pos = np.zeros(0, dtype=np.int64)

    def __len__(self) -> int:
        return len(self._index)

    def _rows(self, hosts: Sequence[str], create: bool) -> np.ndarray:
        """Buffer rows of ``hosts`` (-1 for unknown ones unless ``create``)."""
        if create:
            new = [h for h in dict.fromkeys(hosts) if h not in self._index]
            if new:
                start = len(self._index)
                for k, h in enumerate(new):
                    self._index[h] = start + k
                self._buf = np.vstack([self._buf, np.full((len(new), self.window), np.nan)])
                self._pos = np.concatenate([self._pos, np.zeros(len(new), dtype=np.int64)])
        return np.fromiter((self._index.get(h, -1) for h in hosts), dtype=np.int64, count=len(hosts))

    def typical(self, hosts: Sequence[str]) -> np.ndarray:
        """Median recent unflagged score per host; NaN while a host has fewer than ``min_rows``."""
        rows = self._rows(list(hosts), create=False)
        out = np.full(len(rows), np.nan)
        known = rows >= 0
        if known.any():
            buf = self._buf[rows[known]]
            enough = np.isfinite(buf).sum(axis=1) >= self.min_rows
            med = np.full(len(buf), np.nan)
            if enough.any():
                med[enough] = np.nanmedian(buf[enough], axis=1)
            out[known] = med
        return out

    def thresholds(self, hosts: Sequence[str], model_threshold: np.ndarray) -> np.ndarray:
        """The effective champion threshold per row: the model's, raised to the host's typical score."""
        typical = self.typical(hosts)
        base = np.asarray(model_threshold, dtype=float)
        return np.where(np.isfinite(typical), np.maximum(base, typical), base)

    def update(
        self, hosts: Sequence[str], scores: np.ndarray, flagged: np.ndarray, thresholds: np.ndarray
    ) -> None:
        """Add each row's score (in the given order); a flagged row's score is capped at
        ``CONVICTION`` times ``thresholds`` (the threshold it was judged by). Non-finite
        scores are skipped."""
        values = np.asarray(scores, dtype=float)
        flagged = np.asarray(flagged, dtype=bool)
        cap = CONVICTION * np.asarray(thresholds, dtype=float)
        values = np.where(flagged & np.isfinite(cap), np.minimum(values, cap), values)
        keep = np.isfinite(values)
        hosts = [h for h, k in zip(hosts, keep, strict=True) if k]
        if not hosts:
            return
        values = values[keep]
        rows = self._rows(hosts, create=True)
        for r, v in zip(rows, values, strict=True):  # a host may appear more than once (catch-up)
            self._buf[r, self._pos[r]] = v
            self._pos[r] = (self._pos[r] + 1) % self.window

    def subset(self, hosts: Sequence[str]) -> HostCalibration:
        """A copy holding just ``hosts`` (the scoring API reads it outside the detector's lock)."""
        out = HostCalibration(self.window, self.min_rows)
        known = [h for h in dict.fromkeys(hosts) if h in self._index]
        rows = out._rows(known, create=True)
        src = np.fromiter((self._index[h] for h in known), dtype=np.int64, count=len(known))
        out._buf[rows], out._pos[rows] = self._buf[src], self._pos[src]
        return out

    def forget(self, host: str) -> None:
        """Drop a host (it learns its usual again if it comes back)."""
        r = self._index.get(host)
        if r is not None:
            self._buf[r] = np.nan
            self._pos[r] = 0

    def state(self) -> dict[str, Any]:
        """Plain data for the detector's checkpoint."""
        return {
            "window": self.window,
            "min_rows": self.min_rows,
            "index": dict(self._index),
            "buf": self._buf.copy(),
            "pos": self._pos.copy(),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> HostCalibration:
        out = cls(state["window"], state["min_rows"])
        out._index = dict(state["index"])
        out._buf = np.asarray(state["buf"], dtype=float)
        out._pos = np.asarray(state["pos"], dtype=np.int64)
        return out
