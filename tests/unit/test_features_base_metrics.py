"""``vigil.features.base_metrics`` (numpy) gives what its former pandas version gave, bit for bit.

Why keep the former version here: base metrics feed training, the detector and the scoring API,
so a faster implementation must not move a single value. The reference below is the pandas code
that served until 2026-12 (outer merges of the query groups, a groupby per counter, the drop
settling of issue 21's data-quality guard), unchanged;
the test feeds both the same raw frames (several hosts and devices, counters that reset, missing
values, groups and fields, one window after another with the counter state carried) and compares
every value and the carried counter state.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from vigil.features import BASE_METRIC_NAMES, CounterState, base_metrics
from vigil.features.definitions import BASE_METRICS, BaseMetric, RawField, rate_transform
from vigil.features.source import MAX_COUNTER_EVENTS, QUERY_GROUPS, RawFrames, _settle_drops, group_key_name

# --- the former implementation (reference) -------------------------------------------------------


def _ref_rates(frame: pd.DataFrame, raw: RawField, state: CounterState) -> pd.DataFrame:
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


def _ref_metric_column(metric: BaseMetric, parts: dict[str, pd.Series]) -> pd.Series:
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


def reference_base_metrics(raw: RawFrames, state: CounterState | None = None) -> pd.DataFrame:
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
            parts = [_ref_rates(frame, f, state) for f in fields]
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
        out[metric.name] = _ref_metric_column(metric, parts).astype(float).to_numpy()
    return out.sort_values(["host", "time"], kind="stable").reset_index(drop=True)


# --- the comparison ------------------------------------------------------------------------------


def raw_frames(seed: int, n: int = 40, hosts: int = 5) -> RawFrames:
    """Raw per-interval frames with the awkward cases: two devices, resets, gaps and junk."""
    rng = np.random.default_rng(seed)
    times = pd.date_range("2026-01-01", periods=n, freq="10s", tz="UTC")
    frames = {}
    for key, fields in QUERY_GROUPS.items():
        per_tag = key[2]
        parts = []
        for h in range(hosts):
            for device in ("eth0", "eth1", "lo")[: 1 + h % 3] if per_tag else (None,):
                data: dict[str, object] = {"time": times, "host": f"host-{h}"}
                if per_tag:
                    data[per_tag] = device
                for f in fields:
                    if f.agg == "last" and per_tag:
                        values = np.cumsum(rng.integers(0, 5_000, n)).astype(float)
                        values[rng.random(n) < 0.05] = 0.0  # a counter reset
                        if h == 1:  # a restart: the counter stays low and grows again
                            values[n // 2 :] -= values[n // 2 - 1]
                    elif f.field == "n_cpus":
                        values = rng.choice([0.0, 2.0, 4.0], n)  # 0: no ratio
                    else:
                        values = rng.normal(50, 20, n)
                    values[rng.random(n) < 0.1] = np.nan  # a missing reading
                    data[f.field] = values
                frame = pd.DataFrame(data)
                parts.append(frame[rng.random(n) > 0.1])  # missing intervals
        frame = pd.concat(parts, ignore_index=True).sample(frac=1.0, random_state=seed)  # any order
        if seed % 3 == 1 and key[0] == "system":
            frame = frame.drop(columns=["n_cpus"])  # a field the server did not return
        if seed % 3 == 2 and key[0] == "processes":
            continue  # a whole group missing this window
        frames[group_key_name(key)] = frame
    return frames


@pytest.mark.parametrize("seed", range(6))
def test_numpy_base_metrics_equal_the_former_pandas_ones(seed: int) -> None:
    frames = raw_frames(seed)
    new_state, ref_state = CounterState(), CounterState()
    times = pd.date_range("2026-01-01", periods=40, freq="10s", tz="UTC")
    for lo, hi in ((0, 13), (13, 14), (14, 40)):  # windows of several, one and many intervals
        window = {
            k: v[
                (v["time"] >= times[lo])
                & (v["time"] < (times[hi] if hi < 40 else times[-1] + pd.Timedelta("10s")))
            ]
            for k, v in frames.items()
        }
        new = base_metrics(window, new_state)
        ref = reference_base_metrics(window, ref_state)
        assert list(new.columns) == ["host", "time", *BASE_METRIC_NAMES]
        assert new["host"].tolist() == ref["host"].tolist()
        assert new["time"].tolist() == ref["time"].tolist()
        assert str(new["time"].dtype) == str(ref["time"].dtype)
        for name in BASE_METRIC_NAMES:
            np.testing.assert_array_equal(new[name].to_numpy(), ref[name].to_numpy(), err_msg=name)
        assert new_state.last == ref_state.last
        assert new_state.held == ref_state.held and new_state.events == ref_state.events


def test_empty_input_gives_the_empty_frame() -> None:
    assert base_metrics({}).columns.tolist() == reference_base_metrics({}).columns.tolist()
    empty = {group_key_name(k): pd.DataFrame() for k in QUERY_GROUPS}
    assert base_metrics(empty).empty and reference_base_metrics(empty).empty
