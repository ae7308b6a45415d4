"""The data-quality guard: raw values that cannot be real never reach the features.

Why a guard before the features: a value a collector could not have measured (``usage_idle =
1e300``, ``used_percent = -5``, a point stamped a day ahead) is not an anomaly of the host but
a fault of the data. Fed to the per-host baselines it poisons them for hours (the variance of
1e300 overflows: NaN baselines, then every feature of that host is noise), and scored it raises
alarms nobody can act on. So each raw value is checked against what its field can physically
take (:class:`vigil.features.definitions.Bounds`, declared once beside the field) before the
per-interval aggregation; a bad value is treated as missing (never averaged, never fed to a
baseline) and reported, per host, kind and field.

Training extraction and the detector run the same guard on the same raw frames
(:func:`vigil.features.source.fetch_raw`, ``detector.reader``), so a model never learns from a
value the detector would refuse, and the features stay identical on both sides.

Kinds (``vigil.schema.DATA_QUALITY_KINDS``): ``type_conflict`` (not a number), ``non_finite``
(NaN, inf), ``out_of_range`` (outside the declared bounds), ``future_time`` (stamped beyond now +
``future_tolerance_s``) are found here; ``missing_field`` (a point without one of the fields the
features read) is noted here; ``counter_reset`` / ``counter_backwards`` are told apart where the
counters become rates (:class:`vigil.features.source.CounterState`), because only the next
reading says which one happened.

>>> import pandas as pd
>>> from vigil.features.definitions import BASE_METRICS
>>> mem = [f for m in BASE_METRICS for f in m.inputs if f.field == "used_percent"]
>>> pts = pd.DataFrame({"time": pd.to_datetime([0, 3, 12], unit="s", utc=True), "host": ["a", "a", "a"],
...                     "used_percent": [40.0, -1e300, 41.0]})
>>> clean, report = guard_points(mem, pts, now_ns=20 * 10**9, interval_s=10)
>>> clean["used_percent"].tolist()
[40.0, nan, 41.0]
>>> report.events[["host", "kind", "field", "count", "value"]].to_dict("records")
[{'host': 'a', 'kind': 'out_of_range', 'field': 'mem.used_percent', 'count': 1, 'value': -1e+300}]
>>> QualityReport.merge([report]).tallies.to_dict("records")   # per host-interval: values kept, kept out
[{'host': 'a', 'time': 0, 'good': 1, 'bad': 1}, {'host': 'a', 'time': 10000000000, 'good': 1, 'bad': 0}]
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from vigil.features.definitions import RawField

NS = 1_000_000_000

#: Columns of :attr:`QualityReport.events`: one row per host, interval (start, ns), kind and field.
EVENT_COLUMNS = ["host", "time", "kind", "field", "count", "value"]
#: Columns of :attr:`QualityReport.tallies`: values kept (good) and kept out (bad) per host-interval.
TALLY_COLUMNS = ["host", "time", "good", "bad"]


@dataclass(frozen=True)
class QualityConfig:
    """Tunables of the guard and of data-quality incidents (one place; docs/detector.md)."""

    #: a point stamped later than now + this is a clock ahead, not a measurement. Generous:
    #: NTP keeps clocks within milliseconds, and a collector's own lateness is not a clock error.
    #: The detector takes it from ``VIGIL_DETECTOR__DATA_QUALITY_FUTURE_TOLERANCE_S`` and ``now`` from the
    #: wall clock.
    future_tolerance_s: float = 300.0
    #: a host-interval is *mostly bad* when at least this share of its checked values were bad...
    incident_share: float = 0.5
    #: ...and at least this many (one odd point among few values is not an incident). A
    #: data-quality incident opens at a mostly bad interval...
    incident_min_bad: int = 3
    #: ...and closes after this many intervals in a row that are not (1 min at 10 s)
    incident_window: int = 6


def _empty(columns: list[str]) -> pd.DataFrame:
    return pd.DataFrame(
        {c: pd.Series(dtype=object if c in ("host", "kind", "field") else "int64") for c in columns}
    )


#: Shared empty frames (a clean read builds none of its own): never modified in place.
_NO_EVENTS = _empty(EVENT_COLUMNS)
_NO_TALLIES = _empty(TALLY_COLUMNS)


def _groups(*keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(group id per row, one row index per group) of the rows' key tuples, groups in sorted order.

    Why not ``DataFrame.groupby``: it costs ~20 ms per call on 20,000 rows of object keys here, and
    the guard would pay that per query group and kind on a read full of bad values.
    """
    code = np.zeros(len(keys[0]), dtype=np.int64)
    for k in keys:
        c, uniques = pd.factorize(k)
        code = code * max(len(uniques), 1) + c
    _, first, inverse = np.unique(code, return_index=True, return_inverse=True)
    return inverse.ravel(), first


def _events(hosts, times, kinds, fields, counts, values) -> pd.DataFrame:
    """Events summed per (host, time, kind, field), each with its value farthest from zero."""
    group, first = _groups(hosts, times, kinds, fields)
    mag = np.abs(values.astype(float))
    order = np.lexsort((-np.where(np.isnan(mag), -1.0, mag), group))
    head = order[np.r_[True, group[order][1:] != group[order][:-1]]]  # the extreme row per group
    return pd.DataFrame(
        {
            "host": pd.Index(hosts[first]).astype(str),
            "time": times[first].astype("int64"),
            "kind": kinds[first],
            "field": fields[first],
            "count": np.bincount(group, weights=counts).astype("int64"),
            "value": values[head].astype(float),
        }
    )


def _aggregate_events(events: pd.DataFrame) -> pd.DataFrame:
    """Sum counts per (host, time, kind, field); keep the value farthest from zero."""
    if events.empty:
        return _NO_EVENTS
    return _events(*(events[c].to_numpy() for c in EVENT_COLUMNS))


def _aggregate_tallies(
    hosts: np.ndarray, times: np.ndarray, good: np.ndarray, bad: np.ndarray
) -> pd.DataFrame:
    if not len(hosts):
        return _NO_TALLIES
    group, first = _groups(hosts, times)
    return pd.DataFrame(
        {
            "host": pd.Index(hosts[first]).astype(str),
            "time": times[first].astype("int64"),
            "good": np.bincount(group, weights=good).astype("int64"),
            "bad": np.bincount(group, weights=bad).astype("int64"),
        }
    )


@dataclass
class QualityReport:
    """What the guard found in some raw frames.

    ``events``: per host, interval start (ns), kind and field, how many values and the most
    extreme one (``value``, NaN when not a finite number). ``tallies``: per host and interval,
    how many values were kept (``good``) and kept out (``bad``), for every host with an event,
    over every frame merged into the report (what data-quality incidents are judged on: a
    host-interval's share depends on its own values only, not on how reads were batched).
    ``rows``: the per-point tallies behind them, until :meth:`merge` has seen every frame.
    """

    events: pd.DataFrame = field(default_factory=lambda: _NO_EVENTS)
    tallies: pd.DataFrame = field(default_factory=lambda: _NO_TALLIES)
    rows: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = field(
        default_factory=list, repr=False
    )

    @property
    def empty(self) -> bool:
        return self.events.empty and self.tallies.empty and not self.rows

    def counts(self) -> Counter[tuple[str, str]]:
        """Values per (host, kind)."""
        out: Counter[tuple[str, str]] = Counter()
        for host, kind, n in zip(self.events["host"], self.events["kind"], self.events["count"], strict=True):
            out[(str(host), str(kind))] += int(n)
        return out

    @staticmethod
    def merge(reports: Iterable[QualityReport]) -> QualityReport:
        """One report for several frames: events of the same cell added up, and the tallies of
        every host with an event, over all the frames' points."""
        reports = [r for r in reports if not r.empty]
        parts = [r.events for r in reports if not r.events.empty]
        if not parts:
            events = _NO_EVENTS
        elif len(parts) == 1:
            events = parts[0]
        else:
            events = pd.concat(parts, ignore_index=True)
            cells = [frozenset(zip(p["kind"], p["field"], strict=True)) for p in parts]
            if sum(len(c) for c in cells) != len(frozenset().union(*cells)):  # a cell in two parts
                events = _aggregate_events(events)
        tallies = [r.tallies for r in reports if not r.tallies.empty]
        if not events.empty:
            wanted = pd.Index(events["host"].unique())
            hosts, times, good, bad = [], [], [], []
            for r in reports:
                for h, t, g, b in r.rows:
                    keep = wanted.get_indexer(h) >= 0
                    if keep.any():
                        (
                            hosts.append(h[keep]),
                            times.append(t[keep]),
                            good.append(g[keep]),
                            bad.append(b[keep]),
                        )
            for t in tallies:
                hosts.append(t["host"].to_numpy()), times.append(t["time"].to_numpy())
                good.append(t["good"].to_numpy()), bad.append(t["bad"].to_numpy())
            if hosts:
                cat = np.concatenate
                return QualityReport(events, _aggregate_tallies(cat(hosts), cat(times), cat(good), cat(bad)))
        tally = tallies[0] if len(tallies) == 1 else _NO_TALLIES
        return QualityReport(events, tally)


def to_numbers(raw: pd.Series) -> tuple[pd.Series, pd.Series]:
    """(floats, type conflicts): strings and booleans are not numbers (InfluxDB stores a field's
    type per shard, so a string field can meet a float field in one answer)."""
    numeric = pd.to_numeric(raw, errors="coerce")
    if raw.dtype == object or pd.api.types.is_bool_dtype(raw):
        bools = raw.map(lambda v: isinstance(v, bool | np.bool_))
        numeric = numeric.where(~bools.to_numpy())
        # "NaN" and "inf" as strings parse; they are still strings, i.e. type conflicts
        strings = raw.map(lambda v: isinstance(v, str)).to_numpy()
        numeric = numeric.where(~strings | numeric.isna())
    return numeric.astype(float), raw.notna() & numeric.isna()


def guard_points(
    fields: Sequence[RawField],
    frame: pd.DataFrame,
    *,
    now_ns: int | None,
    interval_s: int,
    config: QualityConfig | None = None,
) -> tuple[pd.DataFrame, QualityReport]:
    """Check the raw points of one query (``time``, ``host``, device tag, ``fields``' columns).

    Returns the frame with every field as float and each bad value replaced by NaN (what
    :func:`vigil.features.source.per_interval` treats as missing), and what was found (merge
    the reports of every query of a read with :meth:`QualityReport.merge` for complete
    tallies). A point stamped after ``now_ns + future_tolerance_s`` has all its values kept out
    (``future_time``, filed under the interval of ``now_ns``; ``now_ns=None`` skips the check).
    """
    config = config or QualityConfig()
    if frame.empty:
        return frame, QualityReport()
    frame = frame.copy()
    n = len(frame)
    step = int(interval_s) * NS
    t_ns = pd.DatetimeIndex(pd.to_datetime(frame["time"], utc=True, cache=False)).asi8
    bucket = t_ns - t_ns % step
    future = np.zeros(n, dtype=bool)
    if now_ns is not None:
        future = t_ns > now_ns + int(config.future_tolerance_s * NS)
        if future.any():
            bucket = np.where(future, now_ns - now_ns % step, bucket)
    hosts = frame["host"].to_numpy()
    good = np.zeros(n, dtype=np.int64)
    bad = np.zeros(n, dtype=np.int64)
    found: list[tuple[str, str, np.ndarray, np.ndarray]] = []  # kind, field, rows, values

    def note(kind: str, mask: np.ndarray, column: str, values: np.ndarray | None) -> None:
        if mask.any():
            rows = np.flatnonzero(mask)
            found.append(
                (kind, column, rows, values[rows] if values is not None else np.full(len(rows), np.nan))
            )

    for f in fields:
        if f.field not in frame.columns:
            frame[f.field] = np.nan
            note("missing_field", ~future, f.column, None)
            continue
        raw = frame[f.field]
        if raw.dtype.kind in "fiu":  # plain numbers (the usual answer): numpy only
            x = raw.to_numpy(dtype=float)
            present = ~np.isnan(x)  # JSON has no NaN: a NaN here is a missing value
            conflict = np.zeros(n, dtype=bool)
        else:
            values, conflicts = to_numbers(raw)
            x, conflict, present = values.to_numpy(), conflicts.to_numpy(), raw.notna().to_numpy()
        finite = np.isfinite(x)
        non_finite = present & ~conflict & ~finite
        out_of_range = finite & ~f.bounds.contains(x) if f.bounds is not None else np.zeros(n, dtype=bool)
        late = future & present & ~conflict & ~non_finite & ~out_of_range
        note("type_conflict", conflict, f.column, None)
        note("non_finite", non_finite, f.column, x)
        note("out_of_range", out_of_range, f.column, x)
        note("future_time", late, f.column, x)
        note("missing_field", ~present & ~future, f.column, None)
        is_bad = conflict | non_finite | out_of_range | late
        if is_bad.any():
            x = np.where(is_bad, np.nan, x)
        frame[f.field] = x
        bad += is_bad
        good += present & ~is_bad
    events = _NO_EVENTS
    if found:
        rows = np.concatenate([r for _, _, r, _ in found])
        events = _events(
            hosts[rows],
            bucket[rows],
            np.concatenate([np.full(len(r), k, dtype=object) for k, _, r, _ in found]),
            np.concatenate([np.full(len(r), c, dtype=object) for _, c, r, _ in found]),
            np.ones(len(rows)),
            np.concatenate([v for _, _, _, v in found]),
        )
    return frame, QualityReport(events, rows=[(hosts, bucket, good, bad)])
