"""The data-quality guard's parts: declared bounds, each kind of bad value, tallies across
queries, counters that reset or go backwards, and training extraction using the same guard."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd

from detector.data_quality import FuturePoints, IncidentTracker
from vigil import schema
from vigil.features import BASE_METRICS, fetch_raw
from vigil.features.quality import QualityConfig, QualityReport, guard_points
from vigil.features.source import QUERY_GROUPS, CounterState, base_metrics, guard_group, per_interval
from vigil.influx import InfluxClient

NS = 10**9
CPU = next(k for k in QUERY_GROUPS if k[0] == "cpu")


def _frame(times_s, hosts, **cols) -> pd.DataFrame:
    return pd.DataFrame({"time": pd.to_datetime(times_s, unit="s", utc=True), "host": hosts, **cols})


def test_every_raw_field_declares_its_physical_bounds() -> None:
    fields = [f for m in BASE_METRICS for f in m.inputs]
    assert all(f.bounds is not None for f in fields), [f.column for f in fields if f.bounds is None]
    by = {f.column: f.bounds for f in fields}
    assert (by["cpu.usage_idle"].low, by["cpu.usage_idle"].high) == (0.0, 100.0)
    assert (by["mem.used_percent"].low, by["mem.used_percent"].high) == (0.0, 100.0)
    assert by["net.bytes_recv"].low == 0.0 and by["system.n_cpus"].low == 1.0
    assert set(schema.DATA_QUALITY_BAD_KINDS) | set(schema.DATA_QUALITY_NOTED_KINDS) == set(
        schema.DATA_QUALITY_KINDS
    )


def test_each_kind_of_bad_value_is_kept_out_and_named() -> None:
    frame = _frame(
        [0, 1, 2, 3, 4, 5, 10_000],
        ["a"] * 7,
        usage_idle=pd.Series([50.0, "NaN", True, np.inf, 100.0000001, -0.5, 60.0], dtype=object),
        usage_iowait=[1.0, 1.0, 1.0, 1.0, None, 1.0, 1.0],
    )
    clean, report = guard_points(QUERY_GROUPS[CPU], frame, now_ns=10 * NS, interval_s=10)
    assert clean["usage_idle"].tolist()[:1] == [50.0] and np.isnan(clean["usage_idle"].iloc[1:4]).all()
    assert clean["usage_idle"].iloc[4] == 100.0000001  # float noise at the bound is accepted
    assert np.isnan(clean["usage_idle"].iloc[5]) and np.isnan(clean["usage_idle"].iloc[6])
    found = {(r.kind, r.field): r.count for r in report.events.itertuples()}
    assert found == {
        ("type_conflict", "cpu.usage_idle"): 2,  # a string, even "NaN", and a boolean
        ("non_finite", "cpu.usage_idle"): 1,
        ("out_of_range", "cpu.usage_idle"): 1,
        ("missing_field", "cpu.usage_iowait"): 1,
        ("future_time", "cpu.usage_idle"): 1,  # stamped 10,000 s ahead of now = 10 s
        ("future_time", "cpu.usage_iowait"): 1,
    }
    future = report.events[report.events["kind"] == "future_time"]
    assert set(future["time"]) == {10 * NS}  # filed under the interval of now, not its own


def test_tallies_count_every_query_of_a_read_for_a_host_with_an_event() -> None:
    """A host's share is over all its values, also those of queries where it had no event."""
    cpu = _frame([0], ["a"], usage_idle=[150.0], usage_iowait=[1.0])
    mem = _frame([0, 0], ["a", "b"], used_percent=[40.0, 41.0])
    mem_fields = next(v for k, v in QUERY_GROUPS.items() if k[0] == "mem")
    reports = [
        guard_points(QUERY_GROUPS[CPU], cpu, now_ns=None, interval_s=10)[1],
        guard_points(mem_fields, mem, now_ns=None, interval_s=10)[1],
    ]
    tallies = QualityReport.merge(reports).tallies
    assert tallies.to_dict("records") == [{"host": "a", "time": 0, "good": 2, "bad": 1}]  # b: no event


def _counter_frame(values: list[float], start: int = 0) -> pd.DataFrame:
    return _frame(
        [10 * (start + i) for i in range(len(values))],
        ["h"] * len(values),
        bytes_recv=values,
        bytes_sent=values,
        interface=["eth0"] * len(values),
    )


NET = next(k for k in QUERY_GROUPS if k[0] == "net")


def _rates(frames: list[pd.DataFrame]) -> tuple[list[float], list[tuple]]:
    state = CounterState()
    out: list[float] = []
    for f in frames:
        raw = {"net/interface": per_interval("net/interface", f, 10)}
        base = base_metrics(raw, state)
        out += list(np.expm1(base["net_rx"].to_numpy()) * 32_768.0)  # back to bytes/s
    return out, [e for e in state.drain() if e[2] == "net.bytes_recv"]


def test_a_backward_reading_is_dropped_and_the_rate_spans_it() -> None:
    rates, events = _rates([_counter_frame([1000, 2000, 5, 4000, 5000])])
    np.testing.assert_allclose(rates[1:], [100, np.nan, 100, 100], rtol=1e-9)  # no burst from 5 bytes
    assert events == [("h", 20 * NS, "net.bytes_recv", "counter_backwards", 5.0)]


def test_a_reset_stays_low_and_rates_count_from_it() -> None:
    rates, events = _rates([_counter_frame([1000, 2000, 5, 105, 205])])
    np.testing.assert_allclose(rates[1:], [100, np.nan, 10, 10], rtol=1e-9)
    assert events == [("h", 20 * NS, "net.bytes_recv", "counter_reset", 5.0)]


def test_a_drop_at_the_end_of_a_read_is_decided_by_the_next_read() -> None:
    """The detector reads a few intervals at a time: same rates and events as one read."""
    one, events_one = _rates([_counter_frame([1000, 2000, 5, 4000])])
    split, events_split = _rates([_counter_frame([1000, 2000, 5]), _counter_frame([4000], start=3)])
    np.testing.assert_allclose(one, split, rtol=1e-12)
    assert events_one == events_split
    old = CounterState(last={("h", "eth0", "bytes_recv"): (0, 1.0)})
    del old.__dict__["held"], old.__dict__["events"]  # as a checkpoint from before they existed
    restored = pickle.loads(pickle.dumps(old))
    assert restored.held == {} and restored.events == [] and restored.last == old.last


def test_future_points_are_remembered_once_and_kept_out_only_while_unchanged() -> None:
    future = FuturePoints()
    frame = _frame([100, 110], ["a", "a"], used_percent=[55.0, 56.0])
    assert len(future.remember("mem", frame)) == 2
    assert future.remember("mem", frame).empty  # found again: not new
    window = _frame([100, 110, 120], ["a", "a", "a"], used_percent=[55.0, 99.0, 40.0])
    kept = future.exclude("mem", window)
    assert kept["used_percent"].tolist() == [99.0, 40.0]  # 110 was overwritten by a real reading
    future.prune(105 * NS)
    assert list(future.points) == [("mem", "a", "", 110 * NS)]


def test_an_incident_opens_on_a_mostly_bad_interval_and_closes_after_a_quiet_window() -> None:
    step = 10 * NS
    cfg = QualityConfig()
    tracker = IncidentTracker(cfg, step)
    # one odd value among many is not an incident; two bad of three is not enough values either
    tallies = pd.DataFrame({"host": ["x", "y"], "time": [0, 0], "good": [9, 1], "bad": [1, 2]})
    points, muted = tracker.observe(tallies, {}, 0, step)
    assert points == [] and muted == set() and tracker.open == []
    bad = pd.DataFrame({"host": ["z"] * 2, "time": [step, 2 * step], "good": [1, 1], "bad": [9, 9]})
    points, muted = tracker.observe(bad, {("z", "out_of_range"): 18}, step, 3 * step)
    assert [p["state"] for p in points] == ["open", "ongoing"] and muted == {("z", step), ("z", 2 * step)}
    assert points[0]["share"] == 0.9 and points[0]["detail"] == "out_of_range 18"
    states = []
    for k in range(3, 3 + cfg.incident_window):  # good data (no tallies at all) from then on
        points, _ = tracker.observe(
            pd.DataFrame(columns=["host", "time", "good", "bad"]), {}, k * step, (k + 1) * step
        )
        states += [p["state"] for p in points]
    assert states == ["ongoing"] * (cfg.incident_window - 1) + ["closed"] and tracker.open == []
    restored = IncidentTracker(cfg, step)
    restored.restore(pickle.loads(pickle.dumps(tracker.state())))
    assert restored.hosts.keys() == tracker.hosts.keys()


def test_training_extraction_uses_the_same_guard(influx: InfluxClient, fresh_db: str) -> None:
    t0 = 1_767_225_600
    influx.write_lines(
        fresh_db,
        [f"mem,host=a used_percent={v} {t0 + 10 * i}" for i, v in enumerate([40, -1e300, 41])],
        precision="s",
    )
    reports: list[QualityReport] = []
    start, end = pd.Timestamp(t0, unit="s", tz="UTC"), pd.Timestamp(t0 + 30, unit="s", tz="UTC")
    frames = fetch_raw(influx, fresh_db, start, end, 10, on_quality=reports.append)
    assert frames["mem"]["used_percent"].tolist()[0] == 40.0 and np.isnan(
        frames["mem"]["used_percent"].iloc[1]
    )
    (report,) = reports
    assert report.counts() == {("a", "out_of_range"): 1}
    assert guard_group("mem", pd.DataFrame(), now_ns=None, interval_s=10)[1].empty
