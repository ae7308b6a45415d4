"""Incidents: a flag that lasts as long as its cause, and one page per incident.

Why in the decision path and not in a report or a benchmark: what pages people is what must be
grouped. Per host, in time order:

* **hold** — once a host is flagged, it stays flagged while it is still out of its normal band
  (``out_of_band``: some metric's current deviation is at least ``band_z``), even if a model's
  score dips under its threshold for an interval; it ends on the first interval back in band.
  An incident neither flickers while its load lasts nor outlives it.
* **page** — the first flagged row of an incident pages (``alarm = 1``), unless the host paged
  within the last ``group_s`` seconds. The rest of the incident, and anything within ``group_s``
  of its page, is **muted**: still flagged in ``is_anomaly`` (dashboards show the incident as
  long as it lasts), but not a new page.

Time is the data's own (seconds), so one setting serves 10 s host metrics and 5-minute series.

>>> g = AlarmGrouping(group_s=60.0)
>>> flag, alarm, muted = g.step(
...     ["a", "a", "a", "a", "b"], [0.0, 10.0, 20.0, 200.0, 10.0],
...     flagged=[True, False, False, True, True], out_of_band=[True, True, False, True, True])
>>> flag.tolist(), alarm.tolist(), muted.tolist()
([True, True, False, True, True], [True, False, False, True, True], [False, True, True, False, False])
>>> g.step(["c"] * 3, [300.0, 400.0, 500.0], flagged=[True, True, True])[1].tolist()  # one page
[True, False, False]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


class AlarmGrouping:
    """Each host's open incident and last flagged time; rows must be given in time order."""

    def __init__(self, group_s: float) -> None:
        if group_s < 0:
            raise ValueError(f"group_s must be >= 0, got {group_s}")
        self.group_s = float(group_s)
        self._last: dict[str, float] = {}  # time of the host's last page
        self._open: set[str] = set()  # hosts whose last row was flagged (an incident is open)

    def step(
        self,
        hosts: Sequence[str],
        times_s: Sequence[float],
        flagged: Sequence[bool],
        out_of_band: Sequence[bool] | None = None,
        *,
        update: bool = True,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(flag, alarm, muted) per row: the held flag, whether it pages, whether it is muted.
        ``update=False`` reads the state without changing it."""
        n = len(hosts)
        flag = np.asarray(flagged, dtype=bool).copy()
        band = np.ones(n, dtype=bool) if out_of_band is None else np.asarray(out_of_band, dtype=bool)
        alarm = np.zeros(n, dtype=bool)
        muted = np.zeros(n, dtype=bool)
        last = self._last if update else dict(self._last)
        open_ = self._open if update else set(self._open)
        times = np.asarray(times_s, dtype=float)
        # rows that can change anything: flagged ones, and those of hosts with a state already or
        # flagged earlier in this batch (a batch may hold several intervals of one host)
        batch_flagged = {hosts[i] for i in np.flatnonzero(flag)}
        relevant = flag | np.fromiter(
            (h in last or h in open_ or h in batch_flagged for h in hosts), dtype=bool, count=n
        )
        for i in np.flatnonzero(relevant):
            host, t = hosts[i], float(times[i])
            if not flag[i] and host in open_ and band[i]:
                flag[i] = True  # held: the incident is not over while the host is out of band
            prev = last.get(host)
            recent = prev is not None and t - prev <= self.group_s
            if flag[i]:
                if host not in open_ and not recent:
                    alarm[i] = True
                    last[host] = t
                else:
                    muted[i] = True
                open_.add(host)
            else:
                open_.discard(host)
                muted[i] = recent
        return flag, alarm, muted

    def forget(self, host: str) -> None:
        self._last.pop(host, None)
        self._open.discard(host)

    def state(self) -> dict[str, Any]:
        return {"group_s": self.group_s, "last": dict(self._last), "open": sorted(self._open)}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> AlarmGrouping:
        out = cls(state["group_s"])
        out._last = dict(state["last"])
        out._open = set(state.get("open", ()))
        return out
