"""The detector's side of the data-quality guard: future points, incidents, events and counts.

The guard itself (:mod:`vigil.features.quality`) checks values; what only a long-running
reader needs lives here:

* **Points from the future.** A point stamped beyond ``now + future_tolerance_s`` is never in
  the window being read, so the detector looks for such points every iteration
  (:meth:`RawReader.read_future`), counts each once (``future_time``) and remembers it
  (:class:`FuturePoints`): when its time comes, that same point (same series, time and values)
  is kept out of the window. A point written later at that time with other values (the host's
  real reading, which overwrites it in InfluxDB) is scored as usual.
* **Data-quality incidents.** A host-interval is *mostly bad* when at least ``incident_share``
  (half) of its checked values, and at least ``incident_min_bad`` (3), were bad. A host has a
  data-quality incident from a mostly bad interval until ``incident_window`` (6) intervals in a
  row that are not: one ``vigil_data_quality`` point per interval while it lasts
  (``kind=incident``, ``state`` open | ongoing | closed) and its combined predictions cannot
  alarm meanwhile. Its good values are still scored; bad data is not an anomaly.
* **Events and counts**: one ``vigil_data_quality`` point per host, interval, kind and field;
  per host and kind in ``/metrics``; per kind in ``vigil_detector_stats``.
"""

from __future__ import annotations

import logging
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from vigil import schema
from vigil.features.quality import EVENT_COLUMNS, QualityConfig, QualityReport
from vigil.features.source import GROUP_KEYS, QUERY_GROUPS, group_series_tags
from vigil.lineprotocol import LineProtocolError

log = logging.getLogger(__name__)

#: Most future points remembered (beyond: still counted, no longer kept out when their time comes).
MAX_FUTURE_POINTS = 100_000
#: Most ``vigil_data_quality`` event points written per iteration (counts in /metrics are complete).
MAX_EVENT_POINTS = 5_000


class FuturePoints:
    """Points found stamped in the future: (group, host, device, time ns) -> their field values."""

    def __init__(self) -> None:
        self.points: dict[tuple[str, str, str, int], tuple[Any, ...]] = {}

    @staticmethod
    def _keys(
        name: str, frame: pd.DataFrame
    ) -> tuple[list[tuple[str, str, str, int]], list[tuple[Any, ...]]]:
        tags = group_series_tags(GROUP_KEYS[name])
        device = frame[tags[1]].fillna("").astype(str) if len(tags) > 1 and tags[1] in frame else None
        t_ns = pd.DatetimeIndex(pd.to_datetime(frame["time"], utc=True, cache=False)).asi8
        hosts = frame["host"].astype(str).to_numpy()
        devices = device.to_numpy() if device is not None else np.full(len(frame), "", dtype=object)
        fields = [f.field for f in QUERY_GROUPS[GROUP_KEYS[name]]]
        values = list(
            zip(
                *[frame[f].to_numpy() if f in frame else np.full(len(frame), None) for f in fields],
                strict=True,
            )
        )
        keys = [(name, h, d, int(t)) for h, d, t in zip(hosts, devices, t_ns, strict=True)]
        return keys, values

    def remember(self, name: str, frame: pd.DataFrame) -> pd.DataFrame:
        """Remember the points of ``frame`` (a future probe's answer); return the ones not seen before."""
        if frame.empty:
            return frame
        keys, values = self._keys(name, frame)
        new = np.array([self.points.get(k) != v for k, v in zip(keys, values, strict=True)])
        for k, v, is_new in zip(keys, values, new, strict=True):
            if is_new and len(self.points) < MAX_FUTURE_POINTS:
                self.points[k] = v
        return frame[new]

    def exclude(self, name: str, frame: pd.DataFrame) -> pd.DataFrame:
        """``frame`` without the remembered future points (same key and values) it holds."""
        if frame.empty or not any(k[0] == name for k in self.points):
            return frame
        keys, values = self._keys(name, frame)
        keep = np.array([self.points.get(k) != v for k, v in zip(keys, values, strict=True)])
        return frame if keep.all() else frame[keep]

    def prune(self, before_ns: int) -> None:
        """Forget points older than ``before_ns`` (their interval has been read)."""
        for k in [k for k in self.points if k[3] < before_ns]:
            del self.points[k]


@dataclass
class _HostState:
    """One host's tallies not yet judged (interval start -> [good, bad]) and its incident."""

    bins: dict[int, list[int]] = field(default_factory=dict)
    opened_ns: int | None = None
    quiet: int = 0  # intervals in a row, since the last mostly bad one, that were not
    kinds: Counter[str] = field(default_factory=Counter)


class IncidentTracker:
    """Data-quality incidents, decided interval by interval from each host-interval's own values
    (so the outcome does not depend on how the reads were batched): a host-interval is *mostly
    bad* when at least ``incident_share`` of its checked values, and at least
    ``incident_min_bad`` of them, were bad. An incident opens at a mostly bad interval and closes
    after ``incident_window`` intervals in a row that are not."""

    def __init__(self, config: QualityConfig, interval_ns: int) -> None:
        self.config = config
        self.interval_ns = interval_ns
        self.hosts: dict[str, _HostState] = {}

    @property
    def open(self) -> list[str]:
        return sorted(h for h, w in self.hosts.items() if w.opened_ns is not None)

    def observe(
        self, tallies: pd.DataFrame, kinds: Counter[tuple[str, str]], lo: int, hi: int
    ) -> tuple[list[dict[str, Any]], set[tuple[str, int]]]:
        """Absorb the tallies found reading ``[lo, hi)`` (future points may be filed later) and
        judge the intervals of ``[lo, hi)``; return the incident points to write and the (host,
        interval) pairs whose alarms are muted."""
        cfg, step = self.config, self.interval_ns
        for host, t, good, bad in tallies[["host", "time", "good", "bad"]].itertuples(index=False):
            cell = self.hosts.setdefault(str(host), _HostState()).bins.setdefault(int(t), [0, 0])
            cell[0] += int(good)
            cell[1] += int(bad)
        for (host, kind), n in kinds.items():
            if host in self.hosts and kind in schema.DATA_QUALITY_BAD_KINDS:
                self.hosts[host].kinds[kind] += n
        points: list[dict[str, Any]] = []
        muted: set[tuple[str, int]] = set()
        for host, w in list(self.hosts.items()):
            for t in range(lo, hi, step):
                good, bad = w.bins.pop(t, (0, 0))
                share = bad / (good + bad) if good + bad else 0.0
                mostly_bad = bad >= cfg.incident_min_bad and share >= cfg.incident_share
                point = {"host": host, "time": t, "share": share, "count": bad}
                if mostly_bad:
                    w.quiet = 0
                    detail = ", ".join(f"{k} {n}" for k, n in w.kinds.most_common())
                    if w.opened_ns is None:
                        w.opened_ns = t
                        log.warning(
                            "data-quality incident on %s: %.0f%% of its values bad (%s); its alarms are muted",
                            host,
                            100 * share,
                            detail,
                        )
                    points.append(
                        {**point, "state": "open" if w.opened_ns == t else "ongoing", "detail": detail}
                    )
                elif w.opened_ns is not None:
                    w.quiet += 1
                    if w.quiet >= cfg.incident_window:
                        log.warning("data-quality incident on %s closed", host)
                        points.append({**point, "state": "closed", "detail": ""})
                        w.opened_ns, w.quiet = None, 0
                        w.kinds.clear()
                    else:
                        points.append({**point, "state": "ongoing", "detail": ""})
                if w.opened_ns is not None:
                    muted.add((host, t))
            w.bins = {s: c for s, c in w.bins.items() if s >= hi}  # filed ahead (future points)
            if w.opened_ns is None and not w.bins:
                del self.hosts[host]
        return points, muted

    def state(self) -> dict[str, Any]:
        return {h: (w.bins, w.opened_ns, w.quiet, dict(w.kinds)) for h, w in self.hosts.items()}

    def restore(self, saved: dict[str, Any]) -> None:
        self.hosts = {h: _HostState(dict(b), o, q, Counter(k)) for h, (b, o, q, k) in saved.items()}


class DataQuality:
    """What the detector keeps about data quality between iterations (checkpointed)."""

    def __init__(self, interval_ns: int, config: QualityConfig | None = None) -> None:
        self.config = config or QualityConfig()
        self.future = FuturePoints()
        self.incidents = IncidentTracker(self.config, interval_ns)
        self._lines: deque[str] = deque()
        self.dropped_events = 0

    def observe(
        self, report: QualityReport, counter_events: list[tuple[str, int, str, str, float]], lo: int, hi: int
    ) -> tuple[Counter[tuple[str, str]], set[tuple[str, int]]]:
        """Count, record and judge what one window's guard found; return (values per (host, kind),
        the (host, interval) pairs whose alarms must be muted)."""
        events = report.events
        counters = [e for e in counter_events if lo <= e[1] < hi]  # warm-start history is not news
        if counters:
            extra = pd.DataFrame(counters, columns=["host", "time", "field", "kind", "value"]).assign(count=1)
            events = QualityReport.merge(
                [QualityReport(events=events), QualityReport(events=extra[EVENT_COLUMNS])]
            ).events
        counts: Counter[tuple[str, str]] = QualityReport(events=events).counts()
        incident_points, muted = self.incidents.observe(report.tallies, counts, lo, hi)
        self._queue(events, incident_points)
        self.future.prune(hi)  # their intervals have been read
        return counts, muted

    def _queue(self, events: pd.DataFrame, incidents: list[dict[str, Any]]) -> None:
        m = schema.DATA_QUALITY
        budget = MAX_EVENT_POINTS
        for p in incidents:
            self._lines.append(
                m.point(
                    {"host": p["host"], "kind": schema.DATA_QUALITY_INCIDENT},
                    {k: p[k] for k in ("count", "share", "state", "detail")},
                    p["time"],
                ).to_line()
            )
        if len(events) > budget:
            self.dropped_events += len(events) - budget
            log.warning(
                "%d data-quality event points not written this iteration (counted in /metrics)",
                len(events) - budget,
            )
            events = events.head(budget)
        for host, t, kind, fld, count, value in events[EVENT_COLUMNS].itertuples(index=False):
            fields: dict[str, Any] = {"count": int(count)}
            if value is not None and np.isfinite(value):
                fields["value"] = float(value)
            try:
                self._lines.append(
                    m.point({"host": host, "kind": kind, "field": fld}, fields, int(t)).to_line()
                )
            except (ValueError, LineProtocolError):  # a host name line protocol cannot carry
                self.dropped_events += 1

    def drain_lines(self) -> list[str]:
        out = list(self._lines)
        self._lines.clear()
        return out

    @staticmethod
    def mute(combined: pd.DataFrame, muted: set[tuple[str, int]]) -> int:
        """Clear ``is_anomaly`` of combined rows whose host is in a data-quality incident; return
        how many alarms that removed."""
        if not muted or combined.empty:
            return 0
        t_ns = pd.DatetimeIndex(pd.to_datetime(combined["time"], utc=True, cache=False)).asi8
        hit = np.array(
            [(h, int(t)) in muted for h, t in zip(combined["host"].astype(str), t_ns, strict=True)]
        )
        removed = int(combined.loc[hit, "is_anomaly"].sum()) if hit.any() else 0
        if hit.any():
            combined.loc[hit, "is_anomaly"] = 0
            if "alarm" in combined.columns:
                combined.loc[hit, "alarm"] = 0
        return removed

    def state(self) -> dict[str, Any]:
        return {"future": self.future.points, "incidents": self.incidents.state()}

    def restore(self, saved: dict[str, Any] | None) -> None:
        if saved:
            self.future.points = dict(saved.get("future", {}))
            self.incidents.restore(saved.get("incidents", {}))
