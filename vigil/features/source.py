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
from typing import Any

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


def _sorted_codes(values: np.ndarray) -> np.ndarray:
    """Integer codes that sort like the strings themselves (pandas' ``sort_values`` order).

    Small arrays go through ``np.unique`` (Python's string order too, ~10 us) rather than
    ``pd.factorize`` (~90 us whatever the size): a scoring API request has a handful of rows.
    """
    if len(values) < 256:
        return np.unique(values, return_inverse=True)[1].ravel()
    codes, _ = pd.factorize(values, sort=True)
    return codes


def _time_ns(times: pd.Series) -> np.ndarray:
    """Times as int64 ns since the epoch (UTC), without a parse when they are datetimes already."""
    if not isinstance(times.dtype, pd.DatetimeTZDtype):
        times = pd.to_datetime(times, utc=True, cache=False)
    return pd.DatetimeIndex(times).as_unit("ns").asi8


def _counter_rates(
    hosts: np.ndarray,
    devices: np.ndarray,
    t_ns: np.ndarray,
    values: np.ndarray,
    raw: RawField,
    state: CounterState,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-device rates of one counter, summed per host and interval (NaN where unknown).

    Rows are the counter's non-missing readings; each device's readings are taken in time order,
    the first against the reading carried in ``state`` (its previous window), and the newest is
    carried forward. A reading at or before its predecessor in time, or with no predecessor,
    gives no rate. A counter that goes down is either reset (restart) or read wrong, and only the
    next reading says which: back at or above the reading before the drop, the drop was wrong
    (``counter_backwards``: that reading is dropped and the rate spans it); still below, it was a
    reset (``counter_reset``: its interval has no rate, the next rate counts from the reset). The
    interval of the drop has no rate either way, never a negative one. Returns (hosts, times,
    rates), one row per host and time that had a reading.
    """
    keep = ~np.isnan(values)
    hosts, devices, t_ns, v = hosts[keep], devices[keep], t_ns[keep], values[keep]
    if len(v) == 0:
        return hosts, t_ns, v
    host_code = _sorted_codes(hosts)
    order = np.lexsort((t_ns, host_code, _sorted_codes(devices)))  # device, host, time; stable
    hosts, devices, t_ns, v, host_code = hosts[order], devices[order], t_ns[order], v[order], host_code[order]
    dev_code = _sorted_codes(devices)
    first = np.r_[True, (host_code[1:] != host_code[:-1]) | (dev_code[1:] != dev_code[:-1])]
    prev_t = np.r_[0, t_ns[:-1]].astype(float)
    prev_v = np.r_[np.nan, v[:-1]]
    for i in np.flatnonzero(first):
        saved = state.last.get((hosts[i], devices[i], raw.field))
        prev_t[i], prev_v[i] = saved if saved else (np.nan, np.nan)
    dt = (t_ns - prev_t) / 1e9
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = (v - prev_v) / dt
    drops = v < prev_v
    rate[(dt <= 0) | drops | ~np.isfinite(rate)] = np.nan  # a drop, out of order or no history
    held_keys = {k[:2] for k in state.held if k[2] == raw.field}
    if drops.any() or held_keys:
        keys = list(zip(hosts.tolist(), devices.tolist(), strict=True))
        _settle_drops(
            keys, t_ns, v, rate, first, raw, state, {keys[i] for i in np.flatnonzero(drops)} | held_keys
        )
    last_rows = np.r_[first[1:], True]
    for i in np.flatnonzero(last_rows):
        state.last[(hosts[i], devices[i], raw.field)] = (int(t_ns[i]), float(v[i]))
    del state.events[: max(0, len(state.events) - MAX_COUNTER_EVENTS)]
    # sum over devices per (host, time); NaN when no device had a rate (pandas' min_count=1)
    key, inverse = np.unique(np.stack([host_code, t_ns]), axis=1, return_inverse=True)
    inverse = inverse.ravel()
    first_of_key = np.zeros(key.shape[1], dtype=np.int64)
    first_of_key[inverse[::-1]] = np.arange(len(inverse))[::-1]
    return hosts[first_of_key], key[1], _group_sum(rate, inverse, key.shape[1])


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
    and decide each drop (see :func:`_counter_rates`); ``rate`` is corrected in place, ``state.held`` and
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


def _group_sum(values: np.ndarray, groups: np.ndarray, n_groups: int) -> np.ndarray:
    """Sum of the non-missing ``values`` of each group in row order, NaN for a group with none.

    Compensated (Kahan) like pandas' grouped sum, so a host with three or more devices gets the
    same last bit as the ``groupby(...).sum(min_count=1)`` this replaces: the k-th rows of all
    groups are added in one vectorised step, k = 0, 1, ... (a host has a handful of devices).
    """
    order = np.argsort(groups, kind="stable")
    g = groups[order]
    starts = np.r_[0, np.flatnonzero(g[1:] != g[:-1]) + 1]
    rank = np.arange(len(g)) - np.repeat(starts, np.diff(np.r_[starts, len(g)]))
    total, comp = np.zeros(n_groups), np.zeros(n_groups)
    seen = np.zeros(n_groups, dtype=bool)
    for k in range(int(rank.max(initial=-1)) + 1):
        rows = order[rank == k]
        lab, val = groups[rows], values[rows]
        ok = ~np.isnan(val)
        lab, val = lab[ok], val[ok]
        y = val - comp[lab]
        t = total[lab] + y
        c = t - total[lab] - y
        comp[lab] = np.where(np.isnan(c), 0.0, c)
        total[lab] = t
        seen[lab] = True
    return np.where(seen, total, np.nan)


def _metric_values(metric: BaseMetric, parts: dict[str, np.ndarray]) -> np.ndarray:
    first = parts[metric.inputs[0].field]
    if metric.kind == "gauge":
        return first
    if metric.kind == "complement":
        return 100.0 - first
    if metric.kind == "ratio":
        denom = parts[metric.inputs[1].field]
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(denom > 0, first / np.where(denom > 0, denom, 1.0), np.nan)
    if metric.kind == "rate":
        return np.asarray(rate_transform(first, metric.rate_scale), dtype=float)
    raise ValueError(f"unknown metric kind {metric.kind!r}")


def _numbers(frame: pd.DataFrame, column: str) -> np.ndarray:
    if column not in frame.columns:
        return np.full(len(frame), np.nan)
    return pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=float, na_value=np.nan)


def base_metrics(raw: RawFrames, state: CounterState | None = None) -> pd.DataFrame:
    """One row per (host, time) with every base metric (NaN where a metric had no data), sorted
    by host and time.

    The rows are every (host, time) of a gauge group, and every (host, time) with a reading of a
    counter; each raw field is taken from the first query group that has it. numpy throughout
    (factorised keys, one scatter per field) rather than outer merges of the groups: the
    merges cost ~1 ms each whatever the size, most of a one-row request to the scoring API, and a
    third of the detector's own CPU at 10,000 hosts.
    """
    state = state if state is not None else CounterState()
    parts: list[tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]] = []  # hosts, times (ns), fields
    for key, fields in QUERY_GROUPS.items():
        frame = raw.get(group_key_name(key), pd.DataFrame())
        if frame.empty:
            continue
        hosts = frame["host"].astype(str).to_numpy(dtype=object)
        t_ns = _time_ns(frame["time"])
        if key[2] is not None or any(f.agg == "last" and f.per_tag for f in fields):
            tag = key[2]
            devices = (
                frame[tag].astype(str).to_numpy(dtype=object)
                if tag is not None
                else np.full(len(frame), "", dtype=object)
            )
            for f in fields:
                h, t, rate = _counter_rates(hosts, devices, t_ns, _numbers(frame, f.field), f, state)
                parts.append((h, t, {f.field: rate}))
        else:
            parts.append((hosts, t_ns, {f.field: _numbers(frame, f.field) for f in fields}))
    names = [m.name for m in BASE_METRICS]
    if not parts or not any(len(h) for h, _, _ in parts):
        return pd.DataFrame(columns=["host", "time", *names])
    all_hosts = np.concatenate([h for h, _, _ in parts])
    all_t = np.concatenate([t for _, t, _ in parts])
    keys, inverse = np.unique(np.stack([_sorted_codes(all_hosts), all_t]), axis=1, return_inverse=True)
    inverse = inverse.ravel()
    n = keys.shape[1]
    first_of_key = np.zeros(n, dtype=np.int64)
    first_of_key[inverse[::-1]] = np.arange(len(inverse))[::-1]
    columns: dict[str, np.ndarray] = {}
    offset = 0
    for h, _, fields in parts:
        rows = inverse[offset : offset + len(h)]
        offset += len(h)
        for name, values in fields.items():
            if name in columns:
                continue  # a field two groups share is taken from the first (as the merge did)
            column = np.full(n, np.nan)
            column[rows] = values  # duplicate keys: the last row wins
            columns[name] = column
    missing = np.full(n, np.nan)
    data: dict[str, Any] = {
        "host": all_hosts[first_of_key],
        "time": pd.DatetimeIndex(keys[1].view("datetime64[ns]")).tz_localize("UTC"),
    }
    for metric in BASE_METRICS:
        parts_of = {f.field: columns.get(f.field, missing) for f in metric.inputs}
        data[metric.name] = _metric_values(metric, parts_of).astype(float)
    return pd.DataFrame(data)
