"""Synthetic anomalies injected into a copy of each host's real raw metrics: the label-free yardstick.

A real fleet has metrics and almost no labels, so "does this model catch anomalies?" is answered
by planting anomalies whose place and size we know into *copies* of each host's own history and
asking whether they are caught, while the untouched history tells how often the model would page
anyway. Everything here is raw metrics in, raw metrics out: the copies go through the very feature
code (and, in ``evaluate``, the very served decision) the detector runs.

Kinds (``KINDS``), each a change of the host's *base metrics* (``vigil.features.definitions``)
written back into the raw Telegraf fields they come from:

=============== ============================= ======================================================
kind            duration                      change (k = size in the host's own sigmas)
=============== ============================= ======================================================
spike           1-3 intervals                 1-2 of cpu busy, iowait, load, net, disk: + k sigma,
                                              k ~ LogUniform(2, 30)
level_shift     10-30 min                     1-3 metrics: + k sigma (- k sigma when there is room
                                              below), k ~ LogUniform(1.5, 12)
slow_leak       20-60 min                     memory or process count: a ramp from 0 to + k sigma,
                                              k ~ LogUniform(2, 20), then back (a restart)
saturation      5-20 min                      cpu pinned (idle 0-1.5 %) and load + k sigma per cpu,
                                              k ~ Uniform(2, 10); or (1 in 3) memory at 97-99.5 %
dropout         3-15 min                      flat-line: cpu, iowait, memory, load and processes
                                              frozen at their value at the start; network and disk
                                              counters stop (rates 0)
metric_burst    2-10 min                      one metric only, every interval + k sigma x U(0.5, 1.5),
                                              k ~ LogUniform(1.5, 15); the others stay normal
=============== ============================= ======================================================

**Sigma** is the host's own spread of that base metric before the window (1.4826 x the median
absolute deviation over the history given as ``before``, no look-ahead), never less than the
metric's baseline floor (``BaseMetric.floor``: 2 % busy, 1 % memory, 0.3 in the log scale of byte
rates, ...). So a host whose metric is constant gets events sized by the floor — documented, not
an error — and a metric a host does not report is never chosen for it. Byte rates are changed in
the log scale the features compare them on (``rate_transform``) and written back as counter
increments, so the counters stay monotonic; a change is never written where a counter reset or a
gap leaves the rate unknown.

**Placement**, per host (sorted by time): the first event starts ``LEAD_S`` (5 min) after the
host's first interval in the window, each next one ``GAP_S`` (30 min, plus up to 5 min of seeded
jitter) after the previous one ends, so baselines recover in between; events never overlap a
labelled window (or its ``GAP_S`` surroundings) and must end ``TAIL_S`` before the window does
(their trace must be scored). The kinds rotate per host from an offset fixed by the host's name;
a kind too long for what is left of the window gives way to the next one.
Every random draw comes from ``numpy.random.default_rng([seed, crc32(host)])``: the same seed and
data give the same events, and adding a host changes no other host's events.

A host with fewer than ``min_rows()`` intervals in the window gets no event and is listed in
``Injection.skipped_hosts`` with the reason; when no host can take one, :class:`InjectionError`
says how many intervals the window has and needs.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from pipelines.common import PipelineError
from vigil.errors import BadDataError
from vigil.features.definitions import BASE_METRICS, BaseMetric
from vigil.features.source import QUERY_GROUPS, RawFrames, base_metrics, group_key_name

log = logging.getLogger(__name__)

KINDS: tuple[str, ...] = ("spike", "level_shift", "slow_leak", "saturation", "dropout", "metric_burst")
#: (min, max) duration in seconds; spikes are counted in intervals instead (1-3).
DURATION_S: dict[str, tuple[float, float]] = {
    "level_shift": (600.0, 1800.0),
    "slow_leak": (1200.0, 3600.0),
    "saturation": (300.0, 1200.0),
    "dropout": (180.0, 900.0),
    "metric_burst": (120.0, 600.0),
}
SPIKE_INTERVALS = (1, 3)
LEAD_S = 300.0
GAP_S = 1800.0
JITTER_S = 300.0
TAIL_S = 300.0
#: Seconds after an event's end during which an alarm still counts as catching it (the short-window
#: features keep an event's trace for one short window; twice that for margin).
CATCH_GRACE_S = 120.0

_METRIC = {m.name: m for m in BASE_METRICS}
SPIKE_METRICS = ("cpu_busy", "cpu_iowait", "load_per_cpu", "net_rx", "net_tx", "disk_read", "disk_write")
LEAK_METRICS = ("mem_used_pct", "procs_total")
FROZEN_GAUGES = ("cpu_busy", "cpu_iowait", "mem_used_pct", "load_per_cpu", "procs_total")
RATE_METRICS = tuple(m.name for m in BASE_METRICS if m.kind == "rate")
#: Upper bound of percentage metrics.
PERCENT_METRICS = ("cpu_busy", "cpu_iowait", "mem_used_pct")


class InjectionError(PipelineError, BadDataError):
    """No host of the window can take an injected event (the message says why)."""


@dataclass(frozen=True)
class InjectedEvent:
    """One planted anomaly: ``[start, end)`` of ``host``; ``size`` in the host's sigmas (0: inherent)."""

    event_id: str
    host: str
    kind: str
    start: pd.Timestamp
    end: pd.Timestamp
    metrics: tuple[str, ...]
    size: float


@dataclass
class Injection:
    """The injected copy of the raw frames and what was planted where."""

    raw: RawFrames
    events: list[InjectedEvent]
    skipped_hosts: dict[str, str] = field(default_factory=dict)

    def table(self) -> pd.DataFrame:
        """One row per event: event_id, host, kind, start, end, metrics, size."""
        cols = ["event_id", "host", "kind", "start", "end", "metrics", "size"]
        return pd.DataFrame(
            [
                {
                    "event_id": e.event_id,
                    "host": e.host,
                    "kind": e.kind,
                    "start": e.start,
                    "end": e.end,
                    "metrics": ",".join(e.metrics),
                    "size": e.size,
                }
                for e in self.events
            ],
            columns=cols,
        )


def min_rows(interval_s: float) -> int:
    """Intervals a host needs in the window to take at least one (short) event."""
    shortest = min(lo for lo, _ in DURATION_S.values())
    return int(np.ceil((LEAD_S + JITTER_S + shortest + TAIL_S) / interval_s))


def _duration(kind: str, interval_s: float, rng: np.random.Generator) -> pd.Timedelta:
    if kind == "spike":
        return pd.Timedelta(
            seconds=interval_s * int(rng.integers(SPIKE_INTERVALS[0], SPIKE_INTERVALS[1] + 1))
        )
    lo, hi = DURATION_S[kind]
    return pd.Timedelta(seconds=float(rng.uniform(lo, hi)))


def host_spreads(before: pd.DataFrame) -> pd.DataFrame:
    """Per host and base metric: (sigma, median) over ``before`` (base metrics, no look-ahead).

    sigma = 1.4826 x MAD, at least the metric's baseline floor; NaN where the host has no value.
    Returns a frame indexed by host with columns ``<metric>`` (sigma) and ``<metric>_median``.
    """
    if before.empty:
        return pd.DataFrame()
    out = {}
    grouped = before.groupby("host")
    for m in BASE_METRICS:
        if m.name not in before:
            continue
        med = grouped[m.name].median()
        mad = grouped[m.name].apply(
            lambda s: float(np.nanmedian(np.abs(s - np.nanmedian(s)))) if s.notna().any() else np.nan
        )
        out[m.name] = np.maximum(1.4826 * mad, m.floor).where(med.notna())
        out[f"{m.name}_median"] = med
    return pd.DataFrame(out)


def _log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def plan_events(
    hosts_times: dict[str, np.ndarray],
    spreads: pd.DataFrame,
    *,
    interval_s: float,
    seed: int,
    avoid: pd.DataFrame | None = None,
    prefix: str = "inj",
) -> tuple[list[InjectedEvent], dict[str, str]]:
    """Place events per host (see the module doc); ``hosts_times``: host -> sorted interval starts
    (ns) in the window; ``avoid``: labelled windows (host, start, end) not to overlap."""
    events: list[InjectedEvent] = []
    skipped: dict[str, str] = {}
    need = min_rows(interval_s)
    step = pd.Timedelta(seconds=interval_s)
    for host in sorted(hosts_times):
        times = hosts_times[host]
        if len(times) < need:
            skipped[host] = f"{len(times)} intervals in the window, {need} needed"
            continue
        if host not in spreads.index:
            skipped[host] = "no history before the window to size events by"
            continue
        present = [
            m.name
            for m in BASE_METRICS
            if m.name in spreads.columns and np.isfinite(spreads.at[host, m.name])
        ]
        if not present:
            skipped[host] = "no base metric with history"
            continue
        key = zlib.crc32(host.encode())
        rng = np.random.default_rng([seed, key])
        offset = key % len(KINDS)
        blocked = _blocked(avoid, host)
        t0 = pd.Timestamp(int(times[0]), tz="UTC")
        t_last = pd.Timestamp(int(times[-1]), tz="UTC") + step
        cursor = t0 + pd.Timedelta(seconds=LEAD_S)
        tail, gap = pd.Timedelta(seconds=TAIL_S), pd.Timedelta(seconds=GAP_S)
        j = 0
        while True:
            # the kinds in rotation; one that does not fit before the window's end gives way to the next
            for attempt in range(len(KINDS)):
                kind = KINDS[(offset + j + attempt) % len(KINDS)]
                start = (cursor + pd.Timedelta(seconds=float(rng.uniform(0, JITTER_S)))).floor(
                    f"{int(interval_s * 1e9)}ns"
                )
                end = start + step * max(1, int(np.ceil(_duration(kind, interval_s, rng) / step)))
                if end + tail <= t_last:
                    break
            else:
                break
            clash = [(a, b) for a, b in blocked if a < end + gap and b > start - gap]
            if clash:
                cursor = max(b for _, b in clash) + gap
                continue
            metrics, size = _choose(kind, present, spreads.loc[host], rng)
            if metrics:
                events.append(
                    InjectedEvent(
                        f"{prefix}-{host}-{j:03d}-{kind}", host, kind, start, end, tuple(metrics), size
                    )
                )
            j += 1 + attempt
            cursor = end + gap
    return events, skipped


def _blocked(avoid: pd.DataFrame | None, host: str) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
    if avoid is None or avoid.empty:
        return []
    rows = avoid[avoid["host"] == host]
    return [(pd.Timestamp(a), pd.Timestamp(b)) for a, b in zip(rows["start"], rows["end"], strict=True)]


def _choose(
    kind: str, present: list[str], spread: pd.Series, rng: np.random.Generator
) -> tuple[list[str], float]:
    """The metrics an event of ``kind`` changes on this host, and its size in sigmas."""

    def pick(pool: tuple[str, ...], lo: int, hi: int) -> list[str]:
        avail = [m for m in pool if m in present]
        if not avail:
            return []
        n = int(rng.integers(lo, min(hi, len(avail)) + 1))
        return sorted(rng.choice(avail, size=n, replace=False).tolist())

    if kind == "spike":
        return pick(SPIKE_METRICS, 1, 2), _log_uniform(rng, 2, 30)
    if kind == "level_shift":
        return pick(tuple(_METRIC), 1, 3), _log_uniform(rng, 1.5, 12)
    if kind == "slow_leak":
        return pick(LEAK_METRICS, 1, 1), _log_uniform(rng, 2, 20)
    if kind == "saturation":
        if rng.random() < 1 / 3 and "mem_used_pct" in present:
            return ["mem_used_pct"], 0.0
        return [m for m in ("cpu_busy", "load_per_cpu") if m in present], float(rng.uniform(2, 10))
    if kind == "dropout":
        return [m for m in (*FROZEN_GAUGES, *RATE_METRICS) if m in present], 0.0
    if kind == "metric_burst":
        return pick(tuple(_METRIC), 1, 1), _log_uniform(rng, 1.5, 15)
    raise ValueError(f"unknown kind {kind!r}")


# ------------------------------------------------------------------------------------------------
# What each kind does to the base metrics of its rows


def _changed(
    event: InjectedEvent, base: pd.DataFrame, spread: pd.Series, rng: np.random.Generator
) -> pd.DataFrame:
    """New base-metric values for the event's rows (``base``: host's rows in the event, time order)."""
    out = base.copy()
    n = len(base)
    for metric in event.metrics:
        col = base[metric].to_numpy(dtype=float)
        sigma = float(spread[metric])
        if event.kind == "spike":
            new = col + event.size * sigma
        elif event.kind == "level_shift":
            sign = -1.0 if (rng.random() < 0.3 and np.nanmin(col) - event.size * sigma > 0) else 1.0
            new = col + sign * event.size * sigma
        elif event.kind == "slow_leak":
            new = col + np.linspace(0.0, event.size * sigma, n)
        elif event.kind == "saturation":
            if metric == "mem_used_pct":
                new = rng.uniform(97.0, 99.5, n)
            elif metric == "cpu_busy":
                new = 100.0 - rng.uniform(0.0, 1.5, n)
            else:
                new = col + event.size * sigma
        elif event.kind == "dropout":
            new = np.zeros(n) if metric in RATE_METRICS else np.full(n, _first_finite(col))
        elif event.kind == "metric_burst":
            new = col + event.size * sigma * rng.uniform(0.5, 1.5, n)
        else:
            raise ValueError(f"unknown kind {event.kind!r}")
        if metric in PERCENT_METRICS:
            new = np.clip(new, 0.0, 100.0)
        else:
            new = np.maximum(new, 0.0)
        out[metric] = np.where(np.isfinite(col), new, col)  # never write where the value is unknown
    return out


def _first_finite(col: np.ndarray) -> float:
    finite = col[np.isfinite(col)]
    return float(finite[0]) if len(finite) else np.nan


# ------------------------------------------------------------------------------------------------
# Writing base-metric changes back into raw fields


def _gauge_writer(metric: BaseMetric) -> tuple[str, str, Callable[[np.ndarray, pd.DataFrame], np.ndarray]]:
    """(group name, raw field, base value -> raw value) for a gauge-like metric."""
    raw = metric.inputs[0]
    group = next(group_key_name(k) for k, fields in QUERY_GROUPS.items() if raw in fields)
    if metric.kind == "complement":
        return group, raw.field, lambda v, rows: 100.0 - v
    if metric.kind == "ratio":
        denom = metric.inputs[1].field
        return group, raw.field, lambda v, rows: v * rows[denom].to_numpy(dtype=float)
    return group, raw.field, lambda v, rows: v


def inject(
    raw: RawFrames,
    window: tuple[Any, Any],
    before: pd.DataFrame,
    *,
    interval_s: float,
    seed: int,
    avoid: pd.DataFrame | None = None,
    prefix: str = "inj",
) -> Injection:
    """A copy of ``raw`` with events planted in ``[window)``; ``before``: base metrics of the history
    before the window (host spreads, no look-ahead); ``avoid``: labelled windows to keep clear of.

    Raises :class:`InjectionError` when no host of the window can take an event.
    """
    start, end = (pd.Timestamp(t) for t in window)
    spreads = host_spreads(before)
    inside = {name: f[(f["time"] >= start) & (f["time"] < end)] for name, f in raw.items()}
    base = base_metrics(inside)
    hosts_times = {h: np.sort(g["time"].astype("int64").to_numpy()) for h, g in base.groupby("host")}
    events, skipped = plan_events(
        hosts_times, spreads, interval_s=interval_s, seed=seed, avoid=avoid, prefix=prefix
    )
    for host, why in skipped.items():
        log.info("inject: no event for %s (%s)", host, why)
    if not events:
        longest = max((len(t) for t in hosts_times.values()), default=0)
        raise InjectionError(
            f"no host can take an injected anomaly between {start} and {end}: "
            f"the longest host has {longest} intervals there, {min_rows(interval_s)} are needed "
            f"(and history before the window to size them); extract a longer window"
            + (f"; skipped: {dict(list(skipped.items())[:5])}" if skipped else "")
        )
    out = {name: frame.copy() for name, frame in raw.items()}
    by_host = dict(tuple(base.groupby("host")))
    for event in events:
        rng = np.random.default_rng([seed, zlib.crc32(event.event_id.encode())])
        rows = by_host[event.host]
        rows = rows[(rows["time"] >= event.start) & (rows["time"] < event.end)].sort_values("time")
        if rows.empty:
            continue
        new = _changed(event, rows, spreads.loc[event.host], rng)
        for metric in event.metrics:
            _write_back(out, _METRIC[metric], event.host, rows, new[metric].to_numpy(dtype=float))
    return Injection(out, events, skipped)


def _write_back(
    out: RawFrames, metric: BaseMetric, host: str, rows: pd.DataFrame, values: np.ndarray
) -> None:
    times = rows["time"].to_numpy()
    if metric.kind == "rate":
        _write_rate(out, metric, host, times, rows[metric.name].to_numpy(dtype=float), values)
        return
    group, fld, to_raw = _gauge_writer(metric)
    frame = out[group]
    hit = (frame["host"].astype(str) == host).to_numpy() & frame["time"].isin(times).to_numpy()
    target = frame[hit].sort_values("time")
    lookup = pd.Series(values, index=pd.DatetimeIndex(times))
    new = lookup.reindex(pd.DatetimeIndex(target["time"])).to_numpy()
    raw_new = to_raw(new, target)
    keep = np.isfinite(raw_new)
    frame.loc[target.index[keep], fld] = raw_new[keep]


def _write_rate(
    out: RawFrames,
    metric: BaseMetric,
    host: str,
    times: np.ndarray,
    old_base: np.ndarray,
    new_base: np.ndarray,
) -> None:
    """Change the summed byte rate of ``host`` to ``new_base`` (log scale) at ``times`` by rewriting
    its counters: each device's increment is scaled by the same factor (or, where all were idle,
    the first device takes it), and every later reading of the device shifts by the bytes added."""
    raw_field = metric.inputs[0]
    key = next(k for k in QUERY_GROUPS if raw_field in QUERY_GROUPS[k])
    group = group_key_name(key)
    tag = key[2]
    frame = out[group]
    mine = frame[(frame["host"].astype(str) == host).to_numpy()]
    if mine.empty:
        return
    old_rate = metric.rate_scale * np.expm1(np.maximum(old_base, 0.0))
    new_rate = metric.rate_scale * np.expm1(np.maximum(new_base, 0.0))
    ok = np.isfinite(old_base) & np.isfinite(new_base)
    target = pd.Series(new_rate, index=pd.DatetimeIndex(times))[ok]
    before = pd.Series(old_rate, index=pd.DatetimeIndex(times))[ok]
    devices = sorted(mine[tag].astype(str).unique()) if tag else [""]
    series = {d: (mine[mine[tag].astype(str) == d] if tag else mine).sort_values("time") for d in devices}
    # each device's own rate at the event's times (bytes/s), from its counter
    dev_rate = {}
    for d, rows in series.items():
        c = rows[raw_field.field].to_numpy(dtype=float)
        t = rows["time"].astype("int64").to_numpy() / 1e9
        r = np.r_[np.nan, np.diff(c) / np.diff(t)] if len(c) else np.zeros(0)
        r[~(r >= 0)] = np.nan
        dev_rate[d] = pd.Series(r, index=pd.DatetimeIndex(rows["time"]))
    for d, rows in series.items():
        t_idx = pd.DatetimeIndex(rows["time"])
        mine_r = dev_rate[d].reindex(target.index)
        total = before.reindex(target.index)
        share = np.where(
            total.to_numpy() > 0,
            mine_r.to_numpy() / np.where(total.to_numpy() > 0, total.to_numpy(), 1.0),
            1.0 if d == devices[0] else 0.0,
        )
        new_dev = share * target.to_numpy()
        extra = new_dev - mine_r.to_numpy()
        extra[~np.isfinite(extra)] = 0.0
        dt = pd.Series(np.r_[np.nan, np.diff(rows["time"].astype("int64").to_numpy() / 1e9)], index=t_idx)
        added = pd.Series(0.0, index=t_idx)
        at = added.index.get_indexer(target.index)
        valid = at >= 0
        added.iloc[at[valid]] = extra[valid] * np.nan_to_num(dt.iloc[at[valid]].to_numpy())
        offset = np.cumsum(added.to_numpy())
        frame.loc[rows.index, raw_field.field] = rows[raw_field.field].to_numpy(dtype=float) + offset


def event_rows(frame: pd.DataFrame, events: list[InjectedEvent], *, grace_s: float = 0.0) -> np.ndarray:
    """For each row of ``frame`` (host, time) the index of the event whose ``[start, end + grace)``
    holds it, -1 for none."""
    out = np.full(len(frame), -1, dtype=np.int64)
    if not events or frame.empty:
        return out
    hosts = frame["host"].astype(str).to_numpy()
    times = pd.to_datetime(frame["time"], utc=True).astype("int64").to_numpy()
    grace = int(grace_s * 1e9)
    for i, e in enumerate(events):
        hit = (hosts == e.host) & (times >= e.start.value) & (times < e.end.value + grace)
        out[hit & (out < 0)] = i
    return out


__all__ = [
    "CATCH_GRACE_S",
    "InjectedEvent",
    "Injection",
    "InjectionError",
    "KINDS",
    "event_rows",
    "host_spreads",
    "inject",
    "min_rows",
    "plan_events",
]
