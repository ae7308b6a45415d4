"""Alarm grouping: one incident pages once, not once per interval.

Why in the decision path and not in a report or a benchmark: what pages people is what must be
grouped. A host's flagged row **pages** (``alarm = 1``) unless the same host paged within the
last ``group_s`` seconds; rows within ``group_s`` after a page are **muted** (part of the same
incident: still flagged in ``is_anomaly``, so dashboards show the incident as long as it lasts,
but not a new page). Time is the data's own (seconds), so one setting serves 10 s host metrics
and 5-minute series alike.

>>> g = AlarmGrouping(group_s=60.0)
>>> alarm, muted = g.step(["a", "a", "a", "b"], [0.0, 30.0, 90.0, 30.0], [True, True, True, True])
>>> alarm.tolist(), muted.tolist()
([True, False, True, True], [False, True, False, False])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


class AlarmGrouping:
    """Each host's last page time; rows must be given in time order."""

    def __init__(self, group_s: float) -> None:
        if group_s < 0:
            raise ValueError(f"group_s must be >= 0, got {group_s}")
        self.group_s = float(group_s)
        self._last: dict[str, float] = {}

    def step(
        self, hosts: Sequence[str], times_s: Sequence[float], flagged: Sequence[bool], *, update: bool = True
    ) -> tuple[np.ndarray, np.ndarray]:
        """(alarm, muted) per row; ``update=False`` reads the state without changing it."""
        n = len(hosts)
        alarm = np.zeros(n, dtype=bool)
        muted = np.zeros(n, dtype=bool)
        last = self._last if update else dict(self._last)
        times = np.asarray(times_s, dtype=float)
        flags = np.asarray(flagged, dtype=bool)
        for i in np.flatnonzero(flags | np.fromiter((h in last for h in hosts), dtype=bool, count=n)):
            host, t = hosts[i], float(times[i])
            prev = last.get(host)
            if prev is not None and t - prev <= self.group_s:
                muted[i] = True
            elif flags[i]:
                alarm[i] = True
                last[host] = t
        return alarm, muted

    def forget(self, host: str) -> None:
        self._last.pop(host, None)

    def state(self) -> dict[str, Any]:
        return {"group_s": self.group_s, "last": dict(self._last)}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> AlarmGrouping:
        out = cls(state["group_s"])
        out._last = dict(state["last"])
        return out
