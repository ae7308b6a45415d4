"""Reading raw Telegraf points for one window, for the hosts this instance owns.

The queries are the shared ones (:func:`vigil.features.raw_queries`), so serving reads
exactly what training reads; this module adds what a long-running reader needs: a host
filter (warm-starting a new host from its history), the shard filter, per-query fault
isolation (one measurement with a field-type conflict must not blind the detector to the
others), the data-quality guard on every raw value (:mod:`vigil.features.quality`: what it
finds comes back with the frames) and the look-out for points stamped in the future.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pandas as pd

from detector.data_quality import FuturePoints
from detector.sharding import ShardFilter
from vigil.features import raw_queries
from vigil.features.quality import QualityConfig, QualityReport
from vigil.features.source import (
    GROUP_KEYS,
    QUERY_GROUPS,
    RawFrames,
    group_conditions,
    group_key_name,
    group_series_tags,
    guard_group,
    per_interval,
)
from vigil.influx import (
    InfluxClient,
    InfluxError,
    InfluxUnavailable,
    quote_ident,
    series_to_frame,
    tag_in,
    time_literal,
    time_range,
)
from vigil.settings import InfluxSettings

log = logging.getLogger(__name__)

#: Hosts per query when reading the history of new hosts (keeps URLs and responses small).
HOSTS_PER_QUERY = 200

#: Most points one look-out for future points reads per query group.
FUTURE_LIMIT = 10_000


#: Per query group: the field whose points the audits count (the group's first field).
_COUNTED_FIELDS: dict[str, str] = {group_key_name(k): fs[0].field for k, fs in QUERY_GROUPS.items()}


@dataclass(frozen=True)
class WindowAudit:
    """What a window held when it was read, as the server stores it (every shard's hosts).

    ``points``: points of the counted fields that the raw queries read; ``duplicates``: points
    beyond the ``expected`` one(s) per host (and device) and interval. Counted from the read's
    own answer, so the audit costs no query of its own; a later recount with the same filters
    (:meth:`RawReader.count_points`, :meth:`RawReader.count_duplicates`) finds what came late.
    """

    points: int
    duplicates: int


def _group_filter(name: str) -> str:
    """The group's own tag conditions followed by `` AND ``, or ""."""
    return "".join(f"{c} AND " for c in group_conditions(GROUP_KEYS[name]))


def window_audit(name: str, frame: pd.DataFrame, interval_s: int, expected: int) -> tuple[int, int]:
    """(points, duplicates) of one query group's raw answer, counted as the server would count
    them (``count(field)`` ... ``GROUP BY time(interval), host[, device]``).

    >>> t = pd.to_datetime([0, 1, 3, 11, 12], unit="s", utc=True)
    >>> f = pd.DataFrame({"time": t, "host": ["a", "a", "a", "a", None], "used_percent": [1.0, 2, 3, None, 5]})
    >>> window_audit("mem", f, 10, expected=1)   # three points of "a" in [0, 10): two extra
    (4, 2)
    """
    field = _COUNTED_FIELDS[name]
    if frame.empty or field not in frame.columns:
        return 0, 0
    present = frame[frame[field].notna().to_numpy()]
    if present.empty:
        return 0, 0
    keys = {
        tag: (present[tag].astype(object).where(present[tag].notna(), "") if tag in present else "")
        for tag in group_series_tags(GROUP_KEYS[name])
    }
    keys["bucket"] = pd.DatetimeIndex(present["time"]).asi8 // (int(interval_s) * 1_000_000_000)
    cells = pd.DataFrame(keys, index=present.index).groupby(list(keys), sort=False).size().to_numpy()
    return len(present), int(np.clip(cells - expected, 0, None).sum())


class RawReader:
    """Runs the shared raw queries for ``[start, end)``, in parallel, one client per thread.

    ``influx``: the InfluxDB section (``settings.influx``); ``interval_s`` is the feature interval
    (``settings.features.interval_s``), ``collect_interval_s`` the collector's
    (``settings.collection.interval_s``: how many points one interval should hold)."""

    def __init__(
        self,
        influx: InfluxSettings,
        shard: ShardFilter,
        on_error: Callable[[str, int], None],
        *,
        interval_s: int,
        collect_interval_s: float,
        workers: int = 3,
        future: FuturePoints | None = None,
        quality: QualityConfig | None = None,
    ) -> None:
        self.influx = influx
        self.interval_s = interval_s
        self.collect_interval_s = collect_interval_s
        self.db = influx.raw_db
        self.shard = shard
        self.on_error = on_error
        self.future = future if future is not None else FuturePoints()
        self.quality = quality or QualityConfig()
        self.templates = raw_queries()
        self._local = threading.local()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="reader")

    def _client(self) -> InfluxClient:
        client = getattr(self._local, "client", None)
        if client is None:
            # one quick attempt per query: the loop owns retrying (and its backoff)
            client = self._local.client = InfluxClient(self.influx, retries=0)
        return client

    def read(
        self, start: pd.Timestamp, end: pd.Timestamp, hosts: Sequence[str] | None = None
    ) -> tuple[RawFrames, int]:
        """Raw frames per query group and the number of rows read; raises InfluxUnavailable.
        Bad values are kept out (guarded) but not reported: this reads history."""
        frames, rows, _, _ = self._read(start, end, hosts, audit=False)
        return frames, rows

    def read_audited(
        self,
        start: pd.Timestamp,
        end: pd.Timestamp,
        now_ns: int | None = None,
    ) -> tuple[RawFrames, int, WindowAudit | None, QualityReport]:
        """:meth:`read` of every host, plus the window's :class:`WindowAudit` (None when a query
        group could not be read, so the window's content is not known) and what the data-quality
        guard found (``now_ns``: the detector's now, for points stamped in the future)."""
        return self._read(start, end, None, audit=True, now_ns=now_ns)

    def _read(
        self,
        start: pd.Timestamp,
        end: pd.Timestamp,
        hosts: Sequence[str] | None,
        audit: bool,
        now_ns: int | None = None,
    ) -> tuple[RawFrames, int, WindowAudit | None, QualityReport]:
        time_filter = time_range(start, end)
        jobs = []
        for name, template in self.templates.items():
            if hosts:
                for i in range(0, len(hosts), HOSTS_PER_QUERY):
                    where = f"{time_filter} AND {tag_in('host', list(hosts[i : i + HOSTS_PER_QUERY]))}"
                    jobs.append((name, template.format(time=where)))
            else:
                jobs.append((name, template.format(time=time_filter)))
        results = list(self._pool.map(lambda job: (job[0], self._query(job[0], job[1])), jobs))
        frames: dict[str, list[pd.DataFrame]] = {name: [] for name in self.templates}
        for name, frame in results:
            if frame is not None and not frame.empty:
                frames[name].append(frame)
        known = audit and all(frame is not None for _, frame in results)
        expected = self._expected_per_cell()
        points = duplicates = 0
        out: RawFrames = {}
        reports = []
        rows = 0
        for name, parts in frames.items():
            frame = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
            if known:
                p, d = window_audit(name, frame, self.interval_s, expected)
                points, duplicates = points + p, duplicates + d
            frame = self.shard.filter(frame)
            frame = self._clean(name, frame)
            if not frame.empty:
                frame = self.future.exclude(name, frame)  # found earlier stamped in the future
                frame, report = self._guard(name, frame, now_ns)
                reports.append(report)
            rows += len(frame)
            out[name] = per_interval(name, frame, self.interval_s)
        return out, rows, (WindowAudit(points, duplicates) if known else None), QualityReport.merge(reports)

    def read_future(self, now_ns: int) -> QualityReport:
        """Look for points stamped after ``now_ns + future_tolerance_s`` (a clock ahead): one
        request for every query group; each point is counted once (``future_time``) and
        remembered, so it is kept out when its interval is read. Raises InfluxUnavailable.

        Why ask every iteration: such a point is in no window the detector reads until its
        time comes, and by then it cannot be told from a real one. Cheap when there is none:
        InfluxDB keeps data in time-bounded shards and has none beyond now.
        """
        after = now_ns + int(self.quality.future_tolerance_s * 1e9)
        statements, names = [], []
        for name, template in self.templates.items():
            statements.append(
                template.format(time=f"time > {time_literal(after)}") + f" LIMIT {FUTURE_LIMIT}"
            )
            names.append(name)
        try:
            series = self._client().query(self.db, "; ".join(statements), epoch="ns")
        except InfluxUnavailable:
            raise
        except InfluxError as exc:
            self.on_error("query_error", 1)
            log.warning("the look-out for future points failed (%s)", exc)
            return QualityReport()
        by_measurement = {GROUP_KEYS[n][0]: n for n in names}
        reports = []
        for s in series:
            name = by_measurement.get(s.get("name", ""))
            if name is None:
                continue
            frame = series_to_frame([s]).drop(columns=["_measurement"], errors="ignore")
            frame = self._clean(name, self.shard.filter(frame))
            frame = self.future.remember(name, frame)
            if not frame.empty:
                reports.append(self._guard(name, frame, now_ns)[1])
        return QualityReport.merge(reports)

    def _guard(self, name: str, frame: pd.DataFrame, now_ns: int) -> tuple[pd.DataFrame, QualityReport]:
        """The data-quality guard with this reader's interval and bounds (one call for both reads)."""
        return guard_group(name, frame, now_ns=now_ns, interval_s=self.interval_s, config=self.quality)

    def _expected_per_cell(self) -> int:
        """Points one series sends per feature interval: interval / collection interval (>= 1)."""
        return max(1, round(self.interval_s / max(self.collect_interval_s, 1e-9)))

    def _query(self, name: str, q: str) -> pd.DataFrame | None:
        try:
            frame = series_to_frame(self._client().query(self.db, q, epoch="ns"))
            frame = frame.drop(columns=["_measurement"], errors="ignore")
        except InfluxUnavailable:
            raise
        except InfluxError as exc:
            # e.g. a measurement the server cannot read this window. The other measurements
            # are still read; this one counts as missing this window.
            self.on_error("query_error", 1)
            log.warning("raw query %s failed (%s); its metrics are missing for this window", name, exc)
            return None
        return frame

    def _clean(self, name: str, frame: pd.DataFrame) -> pd.DataFrame:
        """Drop points without a host tag (counted): nothing can be said about whose they are.
        Values are checked by the data-quality guard, per host."""
        if frame.empty:
            return frame
        if "host" not in frame.columns:
            self.on_error("missing_host_tag", len(frame))
            return pd.DataFrame()
        no_host = frame["host"].isna() | (frame["host"].astype(str) == "")
        if no_host.any():
            self.on_error("missing_host_tag", int(no_host.sum()))
            frame = frame[~no_host.to_numpy()]
        return frame

    def count_points(self, start: pd.Timestamp, end: pd.Timestamp) -> int | None:
        """Points stored in ``[start, end)`` that the raw queries read (None if unknown): the
        recount that finds points which arrived after their interval was read (too late)."""
        total = 0
        for name, field in _COUNTED_FIELDS.items():
            m = GROUP_KEYS[name][0]
            q = (
                f"SELECT count({quote_ident(field)}) FROM {quote_ident(m)} "
                f"WHERE {_group_filter(name)}{time_range(start, end)}"
            )
            try:
                series = self._client().query(self.db, q)
            except InfluxError:
                return None
            for s in series:
                for row in s.get("values", []):
                    total += int(row[1] or 0)
        return total

    def count_duplicates(self, start: pd.Timestamp, end: pd.Timestamp) -> int | None:
        """Extra points in ``[start, end)``: per host (and device) and interval, the points beyond
        the expected one(s) a collector sends (None if unknown) — :func:`window_audit`'s count,
        on the server.

        Counted on the server (a subquery) so the answer is one row per measurement, whatever the
        fleet size. ``expected`` = feature interval / collection interval (1 by default): a host
        collected every 5 s into 10 s intervals has two points per interval, not a duplicate.
        """
        expected = self._expected_per_cell()
        window = time_range(start, end)
        interval = int(self.interval_s)

        def one(item: tuple[str, str]) -> int:
            name, field = item
            m = GROUP_KEYS[name][0]
            by = ", ".join(quote_ident(t) for t in group_series_tags(GROUP_KEYS[name]))
            q = (
                f'SELECT sum("c") AS "points", count("c") AS "cells" FROM ('
                f'SELECT count({quote_ident(field)}) AS "c" FROM {quote_ident(m)} '
                f"WHERE {_group_filter(name)}{window} GROUP BY time({interval}s), {by}) "
                f'WHERE "c" > {expected} AND {window}'
            )
            extra = 0
            for s in self._client().query(self.db, q):
                for row in s.get("values", []):
                    extra += int(row[1] or 0) - expected * int(row[2] or 0)
            return extra

        try:
            return sum(self._pool.map(one, _COUNTED_FIELDS.items()))
        except InfluxError:
            return None

    def close(self) -> None:
        self._pool.shutdown(wait=False)
