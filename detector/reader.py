"""Reading raw Telegraf points for one window, for the hosts this instance owns.

The queries are the shared ones (:func:`vigil.features.raw_queries`), so serving reads
exactly what training reads; this module adds what a long-running reader needs: a host
filter (warm-starting a new host from its history), the shard filter, per-query fault
isolation (one measurement with a field-type conflict must not blind the detector to the
others) and counting of bad values by kind.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd

from detector.sharding import ShardFilter
from vigil.features import raw_queries
from vigil.features.source import QUERY_GROUPS, RawFrames, group_key_name, per_interval
from vigil.influx import (
    InfluxClient,
    InfluxError,
    InfluxUnavailable,
    quote_ident,
    series_to_frame,
    tag_in,
    time_range,
)
from vigil.settings import Settings

log = logging.getLogger(__name__)

#: Hosts per query when reading the history of new hosts (keeps URLs and responses small).
HOSTS_PER_QUERY = 200

#: Raw field columns per query group (to check types).
_GROUP_FIELDS = {group_key_name(k): [f.field for f in fields] for k, fields in QUERY_GROUPS.items()}


#: One field per raw measurement the features read: what the point audits count.
_COUNTED_FIELDS: dict[str, str] = {
    m: next(f.field for k, fs in QUERY_GROUPS.items() if k[0] == m for f in fs)
    for m in sorted({k[0] for k in QUERY_GROUPS})
}


class RawReader:
    """Runs the shared raw queries for ``[start, end)``, in parallel, one client per thread."""

    def __init__(
        self,
        settings: Settings,
        shard: ShardFilter,
        on_error: Callable[[str, int], None],
        workers: int = 3,
    ) -> None:
        self.settings = settings
        self.db = settings.influx_raw_db
        self.shard = shard
        self.on_error = on_error
        self.templates = raw_queries()
        self._local = threading.local()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="reader")

    def _client(self) -> InfluxClient:
        client = getattr(self._local, "client", None)
        if client is None:
            # one quick attempt per query: the loop owns retrying (and its backoff)
            client = self._local.client = InfluxClient(settings=self.settings, retries=0)
        return client

    def read(
        self, start: pd.Timestamp, end: pd.Timestamp, hosts: Sequence[str] | None = None
    ) -> tuple[RawFrames, int]:
        """Raw frames per query group and the number of rows read; raises InfluxUnavailable."""
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
        out: RawFrames = {}
        rows = 0
        for name, parts in frames.items():
            frame = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
            frame = self.shard.filter(frame)
            frame = self._clean(name, frame)
            rows += len(frame)
            out[name] = per_interval(name, frame, self.settings.feature_interval_s)
        return out, rows

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
        """Coerce fields to float, counting non-numeric (type conflict) and non-finite values."""
        if frame.empty:
            return frame
        if "host" not in frame.columns:
            self.on_error("missing_host_tag", len(frame))
            return pd.DataFrame()
        no_host = frame["host"].isna() | (frame["host"].astype(str) == "")
        if no_host.any():
            self.on_error("missing_host_tag", int(no_host.sum()))
            frame = frame[~no_host.to_numpy()]
        frame = frame.copy()
        for col in _GROUP_FIELDS.get(name, []):
            if col not in frame.columns:
                self.on_error("missing_field", len(frame))
                frame[col] = np.nan
                continue
            raw = frame[col]
            numeric = pd.to_numeric(raw, errors="coerce")
            if raw.dtype == object or pd.api.types.is_bool_dtype(raw):  # a boolean is not a number
                bools = raw.map(lambda v: isinstance(v, bool | np.bool_))
                numeric = numeric.where(~bools.to_numpy())
            conflict = raw.notna() & numeric.isna()
            if conflict.any():
                self.on_error("type_conflict", int(conflict.sum()))
            values = numeric.astype(float)
            bad = ~np.isfinite(values) & values.notna()
            if bad.any():
                self.on_error("non_finite_value", int(bad.sum()))
                values = values.where(np.isfinite(values))
            frame[col] = values
        return frame

    def count_points(self, start: pd.Timestamp, end: pd.Timestamp) -> int | None:
        """Raw points stored in ``[start, end)`` over every measurement read (None if unknown).

        Used to notice points that arrived after their interval was closed (too late).
        """
        total = 0
        for m, field in _COUNTED_FIELDS.items():
            q = f"SELECT count({quote_ident(field)}) FROM {quote_ident(m)} WHERE {time_range(start, end)}"
            try:
                series = self._client().query(self.db, q)
            except InfluxError:
                return None
            for s in series:
                for row in s.get("values", []):
                    total += int(row[1] or 0)
        return total

    def count_duplicates(self, start: pd.Timestamp, end: pd.Timestamp) -> int | None:
        """Extra points in ``[start, end)``: per series (measurement + all tags) and interval, the
        points beyond the ``expected`` one(s) a collector sends (None if unknown).

        Counted on the server (a subquery) so the answer is one row per measurement, whatever the
        fleet size. ``expected`` = feature interval / collection interval (1 by default): a host
        collected every 5 s into 10 s intervals has two points per interval, not a duplicate.
        """
        expected = max(
            1, round(self.settings.feature_interval_s / max(self.settings.collect_interval_s, 1e-9))
        )
        window = time_range(start, end)
        interval = int(self.settings.feature_interval_s)

        def one(item: tuple[str, str]) -> int:
            m, field = item
            q = (
                f'SELECT sum("c") AS "points", count("c") AS "cells" FROM ('
                f'SELECT count({quote_ident(field)}) AS "c" FROM {quote_ident(m)} WHERE {window} '
                f'GROUP BY time({interval}s), *) WHERE "c" > {expected} AND {window}'
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
