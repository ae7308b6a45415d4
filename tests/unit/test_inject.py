"""Injected anomalies (pipelines/inject.py) on the seeder's raw metrics, no services: every kind is
planted, sized by the host's own spread from before the window (no look-ahead), seeded, kept clear
of labelled windows, written back without touching any other row or breaking a counter; bad input
(a window too short, a constant metric, a metric a host does not report) is a clear error or a
documented skip."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipelines.common import slice_raw
from pipelines.inject import KINDS, InjectionError, event_rows, host_spreads, inject, min_rows
from pipelines.synthetic import raw_frames_of_hosts
from vigil.features.definitions import BASE_METRICS
from vigil.features.source import base_metrics

FLOORS = {m.name: m.floor for m in BASE_METRICS}


@pytest.fixture(scope="module")
def history() -> tuple[dict[str, pd.DataFrame], pd.Timestamp, pd.Timestamp]:
    raw, _ = raw_frames_of_hosts(4, 10.0, seed=3, anomalies=False)
    t0 = raw["mem"]["time"].min()
    return raw, t0 + pd.Timedelta(hours=5), t0 + pd.Timedelta(hours=10)


def _inject(history, seed: int = 1, avoid: pd.DataFrame | None = None, raw=None):
    base_raw, start, end = history
    raw = raw if raw is not None else base_raw
    before = base_metrics(slice_raw(raw, None, start))
    return inject(slice_raw(raw, start, end), (start, end), before, interval_s=10, seed=seed, avoid=avoid)


def _base(raw: dict[str, pd.DataFrame], start: pd.Timestamp) -> pd.DataFrame:
    # one interval of history first, so the first window row has a counter rate
    frame = base_metrics(slice_raw(raw, start - pd.Timedelta(seconds=10), None))
    return frame[frame["time"] >= start].set_index(["host", "time"]).sort_index()


def test_every_kind_is_planted_deterministically_and_nothing_else_changes(history) -> None:
    _, start, _ = history
    first, again, other = _inject(history), _inject(history), _inject(history, seed=2)
    assert first.table().equals(again.table())  # same seed, same events
    assert not first.table()[["start", "size"]].equals(other.table()[["start", "size"]])
    assert set(first.table()["kind"]) == set(KINDS)
    clean, dirty = _base(slice_raw(history[0], None, history[2]), start), _base(first.raw, start)
    changed = ((dirty - clean).abs() > 1e-9).any(axis=1).to_numpy()
    inside = event_rows(clean.reset_index(), first.events) >= 0
    assert changed.sum() > 0 and not (changed & ~inside).any()  # only the events' rows move
    for name in ("net/interface", "diskio/name"):  # counters stay counters: never decrease
        frame = first.raw[name].sort_values(["host", "time"])
        for field in frame.columns[3:]:
            assert (frame.groupby("host")[field].diff().dropna() >= 0).all(), (name, field)


def test_sizes_are_in_the_hosts_own_sigmas_from_before_the_window(history) -> None:
    raw, start, _ = history
    result = _inject(history)
    spreads = host_spreads(base_metrics(slice_raw(raw, None, start)))
    clean, dirty = _base(slice_raw(raw, None, history[2]), start), _base(result.raw, start)
    checked = 0
    for e in result.events:
        if e.kind not in ("spike", "level_shift"):
            continue
        rows = (slice(e.host, e.host), slice(e.start, e.end - pd.Timedelta(seconds=1)))
        for metric in e.metrics:
            delta = (dirty.loc[rows, metric] - clean.loc[rows, metric]).abs().dropna()
            unclipped = delta[(dirty.loc[rows, metric].loc[delta.index] > 0)]
            if metric in ("cpu_busy", "cpu_iowait", "mem_used_pct"):
                unclipped = unclipped[dirty.loc[rows, metric].loc[unclipped.index] < 100]
            expected = e.size * spreads.at[e.host, metric]
            if len(unclipped):
                np.testing.assert_allclose(
                    unclipped.to_numpy(), expected, rtol=1e-6, err_msg=f"{e.event_id} {metric}"
                )
                checked += 1
    assert checked >= 3
    # sigma is never below the metric's floor, and comes only from the rows before the window
    for m, floor in FLOORS.items():
        assert (spreads[m] >= floor - 1e-12).all()


def test_no_look_ahead_the_window_does_not_size_its_own_events(history) -> None:
    raw, start, end = history
    louder = {name: frame.copy() for name, frame in raw.items()}
    late = louder["mem"]["time"] >= start
    louder["mem"].loc[late, "used_percent"] = louder["mem"].loc[late, "used_percent"] * 0.5 + 40
    a, b = _inject(history).table(), _inject(history, raw=louder).table()
    pd.testing.assert_frame_equal(
        a[["event_id", "start", "end", "size"]], b[["event_id", "start", "end", "size"]]
    )


def test_events_keep_clear_of_labelled_windows(history) -> None:
    _, start, end = history
    host = "host-01"
    avoid = pd.DataFrame(
        {"host": [host], "start": [start + pd.Timedelta(hours=1)], "end": [start + pd.Timedelta(hours=2)]}
    )
    events = [e for e in _inject(history, avoid=avoid).events if e.host == host]
    assert events
    gap = pd.Timedelta(minutes=30)
    for e in events:
        assert e.end + gap <= avoid["start"][0] or e.start - gap >= avoid["end"][0], e


def test_a_window_too_short_is_a_clear_error_and_a_short_host_is_skipped(history) -> None:
    raw, start, _ = history
    short_end = start + pd.Timedelta(seconds=10 * (min_rows(10) - 5))
    before = base_metrics(slice_raw(raw, None, start))
    with pytest.raises(InjectionError, match="no host can take an injected anomaly.*intervals"):
        inject(slice_raw(raw, start, short_end), (start, short_end), before, interval_s=10, seed=1)
    # one host with only a few minutes in the window: skipped with the reason, the others get events
    window = slice_raw(raw, start, history[2])
    cut = {
        name: f[(f["host"] != "host-02") | (f["time"] < start + pd.Timedelta(minutes=8))]
        for name, f in window.items()
    }
    result = inject(cut, (start, history[2]), before, interval_s=10, seed=1)
    assert "host-02" in result.skipped_hosts and "needed" in result.skipped_hosts["host-02"]
    assert {e.host for e in result.events} == {"host-00", "host-01", "host-03"}


def test_a_constant_metric_is_sized_by_its_floor_and_a_missing_one_never_chosen(history) -> None:
    raw, start, end = history
    odd = {name: frame.copy() for name, frame in raw.items()}
    odd["mem"].loc[odd["mem"]["host"] == "host-00", "used_percent"] = 42.0  # constant memory
    odd["diskio/name"] = odd["diskio/name"][odd["diskio/name"]["host"] != "host-03"]  # no disk at all
    result = _inject(history, raw=odd)
    spreads = host_spreads(base_metrics(slice_raw(odd, None, start)))
    assert spreads.at["host-00", "mem_used_pct"] == FLOORS["mem_used_pct"]
    assert np.isnan(spreads.at["host-03", "disk_read"])
    for e in result.events:
        if e.host == "host-03":
            assert not {"disk_read", "disk_write"} & set(e.metrics), e
    assert any(e.host == "host-00" for e in result.events)
