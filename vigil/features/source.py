"""From raw Telegraf points in InfluxDB to one row of base metrics per host and interval.

Raw values pass the data-quality guard (:mod:`vigil.features.quality`) before they are
aggregated. Counters (network and disk bytes) become rates here. The previous reading of
each counter is carried in :class:`CounterState`, so the detector, which reads a
few intervals at a time, computes exactly the rates that a batch extraction over
the whole window computes.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import pandas as pd

from vigil.features.definitions import BASE_METRICS, BaseMetric, RawField, rate_transform
from vigil.features.quality import QualityConfig, QualityReport, guard_points
from vigil.influx import InfluxClient, quote_ident, quote_literal

log = logging.getLogger(__name__)

RawFrames = dict[str, pd.DataFrame]


def _query_groups() -> dict[tuple, list[RawField]]:
    groups: dict[tuple, list[RawField]] = defaultdict(list)
    for metric in BASE_METRICS:
        for raw in metric.inputs:
            key = (raw.measurement, raw.where, raw.per_tag)
            if raw not in groups[key]:
                groups[key].append(raw)
    return dict(groups)


QUERY_GROUPS = _query_groups()


def group_key_name(key: tuple) -> str:
    measurement, where, per_tag = key
    return measurement + "".join(f"[{k}={v}]" for k, v in where) + (f"/{per_tag}" if per_tag else "")


#: Query-group name -> its key (measurement, where, per-device tag).
GROUP_KEYS: dict[str, tuple] = {group_key_name(k): k for k in QUERY_GROUPS}


def group_conditions(key: tuple) -> list[str]:
    """The InfluxQL tag conditions of one query group (e.g. ``"cpu" = 'cpu-total'``), escaped:
    what its raw query reads, and what the detector's point audits count."""
    _, where, _ = key
    return [f"{quote_ident(k)} = {quote_literal(v)}" for k, v in where]


def group_series_tags(key: tuple) -> list[str]:
    """What one series of a query group is to the features: the host and, for per-device groups
    (net, diskio), the device — the raw query's tag columns, the per-interval grouping, and the
    series the detector's duplicate audit counts within."""
    _, _, per_tag = key
    return ["host"] + ([per_tag] if per_tag else [])


def raw_queries() -> dict[str, str]:
    """The InfluxQL that reads every raw field, with a ``{time}`` placeholder for the time filter.

    Raw points, tags as columns, no server-side ``GROUP BY``: :func:`per_interval` does the
    per-interval ``mean`` / ``last``. Why: at 10,000 hosts a ``GROUP BY time(10s), "host"``
    aggregate answers with one JSON series per host (server 0.44 s + parsing 0.1 s per query),
    a raw select with one series (0.1 s + 0.02 s); ``bench/detector_bench.py`` shows the effect.
    """
    queries = {}
    for key, fields in QUERY_GROUPS.items():
        measurement = key[0]
        columns = [f.field for f in fields] + group_series_tags(key)
        conds = group_conditions(key) + ["{time}"]
        queries[group_key_name(key)] = (
            f"SELECT {', '.join(quote_ident(c) for c in columns)} FROM {quote_ident(measurement)} "
            f"WHERE {' AND '.join(conds)}"
        )
    return queries


def per_interval(name: str, frame: pd.DataFrame, interval_s: int) -> pd.DataFrame:
    """Raw points of one query group -> one row per host (and device) and interval.

    The same answer InfluxDB's ``GROUP BY time(interval_s), "host"[, device] fill(none)`` with
    ``mean()`` (gauges) / ``last()`` (counters) gave: buckets aligned to the epoch, labelled by
    their start; ``last`` is the newest non-missing value of that field. Non-numeric values
    become missing (the reader counts them first). A missing device tag groups as "".

    >>> pts = pd.DataFrame({"time": pd.to_datetime([1, 4, 12], unit="s", utc=True),
    ...                     "host": ["a", "a", "a"], "used_percent": [10.0, 20.0, 50.0]})
    >>> per_interval("mem", pts, 10)[["time", "used_percent"]].to_numpy().tolist()
    [[Timestamp('1970-01-01 00:00:00+0000', tz='UTC'), 15.0], [Timestamp('1970-01-01 00:00:10+0000', tz='UTC'), 50.0]]
    """
    if frame.empty:
        return frame
    fields = QUERY_GROUPS[GROUP_KEYS[name]]
    keys = group_series_tags(GROUP_KEYS[name])
    frame = frame.copy()
    for k in keys:
        if k not in frame.columns:
            frame[k] = ""
        frame[k] = frame[k].fillna("").astype(str)
    ns = pd.to_datetime(frame["time"], utc=True, cache=False).astype("int64").to_numpy()
    step = int(interval_s) * 1_000_000_000
    frame["time"] = pd.to_datetime(ns - ns % step, unit="ns", utc=True)
    for f in fields:
        frame[f.field] = (
            pd.to_numeric(frame[f.field], errors="coerce").astype(float) if f.field in frame else np.nan
        )
    frame = frame.iloc[np.argsort(ns, kind="stable")]  # last() = newest
    grouped = frame.groupby([*keys, "time"], sort=True, dropna=False)
    out = grouped.agg({f.field: f.agg for f in fields}).reset_index()
    return out[["time", *keys, *[f.field for f in fields]]]


def guard_group(
    name: str,
    frame: pd.DataFrame,
    *,
    now_ns: int | None,
    interval_s: int,
    config: QualityConfig | None = None,
) -> tuple[pd.DataFrame, QualityReport]:
    """:func:`vigil.features.quality.guard_points` on the raw answer of query group ``name``."""
    return guard_points(
        QUERY_GROUPS[GROUP_KEYS[name]], frame, now_ns=now_ns, interval_s=interval_s, config=config
    )


def fetch_raw(
    client: InfluxClient,
    db: str,
    start: datetime | pd.Timestamp,
    end: datetime | pd.Timestamp,
    interval_s: int,
    on_quality: Callable[[QualityReport], None] | None = None,
) -> RawFrames:
    """Read every raw field needed by the base metrics for ``[start, end)``, per interval.

    Every raw value passes the data-quality guard first, as in the detector: a value that
    cannot be real is missing here too (``on_quality`` gets what was found; it is logged).
    """
    frames: RawFrames = {}
    reports = []
    now_ns = time.time_ns()
    for name, template in raw_queries().items():
        frame = client.query_window(db, template, start, end)
        if not frame.empty:
            frame = frame.drop(columns=["_measurement"])
            frame, report = guard_group(name, frame, now_ns=now_ns, interval_s=interval_s)
            reports.append(report)
        frames[name] = per_interval(name, frame, interval_s)
    report = QualityReport.merge(reports)
    if not report.events.empty:
        kinds = report.events.groupby("kind")["count"].sum().to_dict()
        log.warning("data-quality guard: raw values kept out of the features in %s: %s", db, kinds)
    if on_quality is not None:
        on_quality(report)
    return frames


@dataclass
class CounterState:
    """Last reading of each counter: (host, device, field) -> (time ns, value).

    ``held``: for a counter whose last reading went *down*, the reading before it. Only the
    next reading tells a reset (a restart: the counter stays low and grows again) from a wrong
    reading (it comes back above where it was): see :func:`_rates`. ``events``: what that found,
    ``(host, interval start ns, field column, kind, value)`` with kind ``counter_reset`` or
    ``counter_backwards``, for the caller to drain (the detector reports them).
    """

    last: dict[tuple[str, str, str], tuple[int, float]] = field(default_factory=dict)
    held: dict[tuple[str, str, str], tuple[int, float]] = field(default_factory=dict)
    events: list[tuple[str, int, str, str, float]] = field(default_factory=list)

    def __setstate__(self, state: dict) -> None:  # checkpoints written before held/events existed
        self.__dict__.update({"held": {}, "events": [], **state})

    def drain(self) -> list[tuple[str, int, str, str, float]]:
        """The counter events found since the last drain."""
        out, self.events = self.events, []
        return out


#: Most counter events kept undrained (a caller that never drains must not grow without bound).
MAX_COUNTER_EVENTS = 10_000


def _rates(frame: pd.DataFrame, raw: RawField, state: CounterState) -> pd.DataFrame:
    """Per-device rates of one counter, summed per host and interval (NaN where unknown).

    A counter that goes down is either reset (restart) or read wrong, and only the next reading
    says which: back at or above the reading before the drop, the drop was wrong
    (``counter_backwards``: that reading is dropped and the rate spans it); still below, it was a
    reset (``counter_reset``: its interval has no rate, the next rate counts from the reset). The
    interval of the drop has no rate either way, never a negative one.
    """
    tag = raw.per_tag or "__device"
    data = (
        frame[["host", "time", raw.field]].copy()
        if raw.per_tag is None
        else frame[["host", "time", tag, raw.field]].copy()
    )
    if raw.per_tag is None:
        data[tag] = ""
    data = data.dropna(subset=[raw.field]).sort_values([tag, "host", "time"], kind="stable")
    if data.empty:
        return pd.DataFrame(columns=["host", "time", raw.field])
    t_ns = data["time"].astype("int64").to_numpy()
    v = data[raw.field].astype(float).to_numpy()
    keys = list(zip(data["host"].astype(str), data[tag].astype(str), strict=True))
    first = np.r_[True, [keys[i] != keys[i - 1] for i in range(1, len(keys))]]
    prev_t = np.r_[0, t_ns[:-1]].astype(float)
    prev_v = np.r_[np.nan, v[:-1]]
    for i in np.flatnonzero(first):
        saved = state.last.get((keys[i][0], keys[i][1], raw.field))
        prev_t[i], prev_v[i] = saved if saved else (np.nan, np.nan)
    dt = (t_ns - prev_t) / 1e9
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = (v - prev_v) / dt
    drops = v < prev_v
    rate[(dt <= 0) | drops | ~np.isfinite(rate)] = np.nan  # a drop, out of order or no history
    held_keys = {k[:2] for k in state.held if k[2] == raw.field}
    if drops.any() or held_keys:
        _settle_drops(
            keys, t_ns, v, rate, first, raw, state, {keys[i] for i in np.flatnonzero(drops)} | held_keys
        )
    last_rows = np.r_[first[1:], True]
    for i in np.flatnonzero(last_rows):
        state.last[(keys[i][0], keys[i][1], raw.field)] = (int(t_ns[i]), float(v[i]))
    del state.events[: max(0, len(state.events) - MAX_COUNTER_EVENTS)]
    data[raw.field] = rate
    return data.groupby(["host", "time"], as_index=False)[raw.field].sum(min_count=1)


def _settle_drops(
    keys: list[tuple[str, str]],
    t_ns: np.ndarray,
    v: np.ndarray,
    rate: np.ndarray,
    first: np.ndarray,
    raw: RawField,
    state: CounterState,
    wanted: set[tuple[str, str]],
) -> None:
    """Walk the devices in ``wanted`` (a drop now or undecided from before: rare) in time order
    and decide each drop (see :func:`_rates`); ``rate`` is corrected in place, ``state.held`` and
    ``state.events`` updated."""
    bounds = np.r_[np.flatnonzero(first), len(keys)]
    for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
        key = keys[lo]
        if key not in wanted:
            continue
        state_key = (key[0], key[1], raw.field)
        held = state.held.pop(state_key, None)  # the reading before an undecided drop
        last = state.last.get(state_key)
        prev = last  # the reading rates are taken against
        drop_at: tuple[int, float] | None = last if held is not None else None
        for i in range(lo, hi):
            t, x = int(t_ns[i]), float(v[i])
            if held is not None and drop_at is not None:
                if x >= held[1]:  # back above: the drop was a wrong reading
                    state.events.append((key[0], drop_at[0], raw.column, "counter_backwards", drop_at[1]))
                    prev = held
                else:
                    state.events.append((key[0], drop_at[0], raw.column, "counter_reset", drop_at[1]))
                held = drop_at = None
            if prev is not None and t > prev[0] and x < prev[1]:
                held, drop_at = prev, (t, x)
                rate[i] = np.nan
            elif prev is not None and t > prev[0]:
                rate[i] = (x - prev[1]) / ((t - prev[0]) / 1e9)
            prev = (t, x)
        if held is not None:
            state.held[state_key] = held


def _metric_column(metric: BaseMetric, parts: dict[str, pd.Series]) -> pd.Series:
    # float even when a part is empty/all-missing (an object column would break log1p)
    parts = {k: pd.to_numeric(v, errors="coerce").astype(float) for k, v in parts.items()}
    first = parts[metric.inputs[0].field]
    if metric.kind == "gauge":
        return first
    if metric.kind == "complement":
        return 100.0 - first
    if metric.kind == "ratio":
        denom = parts[metric.inputs[1].field].where(lambda d: d > 0)
        return first / denom
    if metric.kind == "rate":
        return rate_transform(first, metric.rate_scale)
    raise ValueError(f"unknown metric kind {metric.kind!r}")


def base_metrics(raw: RawFrames, state: CounterState | None = None) -> pd.DataFrame:
    """One row per (host, time) with every base metric (NaN where a metric had no data)."""
    state = state if state is not None else CounterState()
    per_group: list[pd.DataFrame] = []
    for key, fields in QUERY_GROUPS.items():
        frame = raw.get(group_key_name(key), pd.DataFrame())
        if frame.empty:
            continue
        frame = frame.copy()
        frame["time"] = pd.to_datetime(frame["time"], utc=True, cache=False)
        frame["host"] = frame["host"].astype(str)
        for f in fields:
            if f.field not in frame.columns:
                frame[f.field] = np.nan
            frame[f.field] = pd.to_numeric(frame[f.field], errors="coerce")
        if key[2] is not None or any(f.agg == "last" and f.per_tag for f in fields):
            parts = [_rates(frame, f, state) for f in fields]
            merged = parts[0]
            for p in parts[1:]:
                merged = merged.merge(p, on=["host", "time"], how="outer")
            per_group.append(merged)
        else:
            per_group.append(frame[["host", "time", *[f.field for f in fields]]])
    if not per_group:
        return pd.DataFrame(columns=["host", "time", *[m.name for m in BASE_METRICS]])
    merged = per_group[0]
    for part in per_group[1:]:
        overlap = [c for c in part.columns if c in merged.columns and c not in ("host", "time")]
        merged = merged.merge(part.drop(columns=overlap), on=["host", "time"], how="outer")
    out = merged[["host", "time"]].copy()
    for metric in BASE_METRICS:
        parts = {
            f.field: merged[f.field] if f.field in merged else pd.Series(np.nan, index=merged.index)
            for f in metric.inputs
        }
        out[metric.name] = _metric_column(metric, parts).astype(float).to_numpy()
    return out.sort_values(["host", "time"], kind="stable").reset_index(drop=True)
