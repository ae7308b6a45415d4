"""The feature path: counter rates, per-host baselines, and identical results however the data is split."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest

from detector.state import Checkpoint, load_checkpoint, save_checkpoint
from vigil.features import (
    BASE_METRIC_NAMES,
    FEATURE_COLUMNS,
    BaselineConfig,
    CounterState,
    FeatureBuilder,
    FeaturePipeline,
    base_metrics,
    per_interval,
    raw_queries,
)
from vigil.features.definitions import rate_transform
from vigil.features.source import QUERY_GROUPS, group_key_name


def _raw_frames(
    n: int = 120, hosts: tuple[str, ...] = ("h1", "h2"), seed: int = 0
) -> dict[str, pd.DataFrame]:
    """Raw frames shaped like the InfluxDB answers of ``raw_queries`` (counters keep growing)."""
    rng = np.random.default_rng(seed)
    times = pd.date_range("2026-01-01", periods=n, freq="10s", tz="UTC")
    frames = {}
    for key, fields in QUERY_GROUPS.items():
        _, _, per_tag = key
        parts = []
        for host in hosts:
            for device in ("eth0", "eth1") if per_tag else (None,):
                data: dict[str, object] = {"time": times, "host": host}
                if per_tag:
                    data[per_tag] = device
                for f in fields:
                    if f.agg == "last" and per_tag:
                        data[f.field] = np.cumsum(rng.integers(1_000, 2_000, n)).astype(float)
                    elif f.field == "n_cpus":
                        data[f.field] = 4.0
                    else:
                        data[f.field] = rng.normal(50, 5, n)
                parts.append(pd.DataFrame(data))
        frames[group_key_name(key)] = pd.concat(parts, ignore_index=True)
    return frames


def _window(frames: dict[str, pd.DataFrame], lo: pd.Timestamp, hi: pd.Timestamp) -> dict[str, pd.DataFrame]:
    return {k: v[(v["time"] >= lo) & (v["time"] < hi)] for k, v in frames.items()}


def test_queries_quote_every_identifier() -> None:
    queries = raw_queries()
    assert set(queries) == {group_key_name(k) for k in QUERY_GROUPS}
    cpu = queries["cpu[cpu=cpu-total]"]
    assert cpu.startswith('SELECT "usage_idle", "usage_iowait", "host" FROM "cpu"')
    assert "\"cpu\" = 'cpu-total'" in cpu and "{time}" in cpu and "GROUP BY" not in cpu
    assert queries["net/interface"].startswith('SELECT "bytes_recv", "bytes_sent", "host", "interface" FROM')


def test_per_interval_means_gauges_and_keeps_the_newest_counter_reading() -> None:
    t = lambda s: pd.Timestamp(1_700_000_000 + s, unit="s", tz="UTC")  # noqa: E731 - bucket-aligned base
    system = pd.DataFrame(
        {
            "time": [t(7), t(1), t(4), t(12)],  # out of order, as a raw answer may be after a concat
            "host": ["a", "a", "a", "a"],
            "load1": [3.0, 1.0, "x", 5.0],  # a non-number is missing, not a crash
            "n_cpus": [8, 4, None, 2],
        }
    )
    out = per_interval("system", system, 10)
    assert out["time"].tolist() == [t(0), t(10)]
    assert out["load1"].tolist() == [2.0, 5.0]  # mean of 1 and 3
    assert out["n_cpus"].tolist() == [8.0, 2.0]  # last = the newest value present (t 7, not t 4)
    net = pd.DataFrame(
        {
            "time": [t(1), t(2)],
            "host": ["a", "a"],
            "interface": ["eth0", None],
            "bytes_recv": [1, 2],
            "bytes_sent": [3, 4],
        }
    )
    out = per_interval("net/interface", net, 10)
    assert sorted(out["interface"]) == ["", "eth0"]  # a missing device tag groups as "", like GROUP BY


def test_counter_rates_and_resets() -> None:
    times = pd.date_range("2026-01-01", periods=4, freq="10s", tz="UTC")
    net = pd.DataFrame(
        {
            "time": times,
            "host": "a",
            "interface": "eth0",
            "bytes_recv": [1000.0, 2000.0, 500.0, 1500.0],  # reset between 2nd and 3rd reading
            "bytes_sent": [0.0, 100.0, 200.0, 300.0],
        }
    )
    base = base_metrics({"net/interface": net})
    rx = base["net_rx"].to_numpy()
    assert np.isnan(rx[0]) and np.isnan(rx[2])  # no history, then a counter reset: unknown, not negative
    assert rx[1] == pytest.approx(rate_transform(100.0)) and rx[3] == pytest.approx(rate_transform(100.0))


def test_training_and_serving_features_are_identical() -> None:
    """One pass over the window == many small polls with carried state (the skew guard)."""
    frames = _raw_frames()
    _, batch = FeaturePipeline().update(frames)
    serving = FeaturePipeline()
    times = sorted(frames["mem"]["time"].unique())
    cuts = [0, 7, 8, 30, 31, 32, 90, len(times)]
    parts = []
    for lo, hi in zip(cuts[:-1], cuts[1:], strict=True):
        end = times[hi - 1] + pd.Timedelta("1s")
        # overlap the previous window too: already absorbed intervals must be ignored
        start = times[max(lo - 3, 0)]
        parts.append(serving.update(_window(frames, start, end))[1])
    online = pd.concat(parts).sort_values(["host", "time"]).reset_index(drop=True)
    assert len(online) == len(batch)
    np.testing.assert_allclose(online[list(FEATURE_COLUMNS)], batch[list(FEATURE_COLUMNS)], rtol=1e-12)
    # and through a checkpoint round trip
    restored = FeaturePipeline.from_bytes(serving.to_bytes())
    assert restored.builder.seen("h1") == serving.builder.seen("h1") == len(times)


@pytest.mark.parametrize("checkpoint_format", [1, 2])
def test_a_checkpoint_restores_the_feature_state_exactly(tmp_path, checkpoint_format) -> None:
    """Scoring on from a checkpoint gives the same features as never stopping, for the format
    written now (the state pickled straight into the file) and the one written before (bytes)."""
    frames = _raw_frames()
    times = sorted(frames["mem"]["time"].unique())
    cut, end = times[40], times[-1] + pd.Timedelta("1s")
    _, straight = FeaturePipeline().update(frames)
    first = FeaturePipeline()
    first.update(_window(frames, times[0], cut))
    path = tmp_path / "ckpt.pkl"
    if checkpoint_format == 2:
        save_checkpoint(path, Checkpoint(watermark_ns=1, online=b"o", features=first.state()))
    else:  # what a detector of format 1 wrote: FeaturePipeline.to_bytes() nesting the builder's bytes
        old = pickle.dumps((first.counters, first.builder.to_bytes()), protocol=5)
        payload = {"format": 1, "checkpoint": Checkpoint(watermark_ns=1, online=b"o", features=old)}
        path.write_bytes(pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL))
    restored = FeaturePipeline.from_state(load_checkpoint(path).features)
    _, rest = restored.update(_window(frames, cut, end))
    expected = straight[straight["time"] >= cut].reset_index(drop=True)
    assert len(rest) == len(expected) > 0
    np.testing.assert_array_equal(rest[list(FEATURE_COLUMNS)], expected[list(FEATURE_COLUMNS)])


def test_level_shift_and_flatline_stand_out() -> None:
    rng = np.random.default_rng(1)
    n = 400
    cpu = rng.normal(30, 6, n)
    cpu[300:330] += 40  # level shift
    cpu[350:380] = 30.0  # flat line
    frame = pd.DataFrame(
        {"host": "a", "time": pd.date_range("2026-01-01", periods=n, freq="10s", tz="UTC"), "cpu_busy": cpu}
    )
    out = FeatureBuilder(("cpu_busy",), BaselineConfig(warmup_s=300.0)).transform(frame)
    assert out["cpu_busy_z"].iloc[305:330].min() > 5  # stays flagged: the baseline does not absorb it
    assert out["cpu_busy_z"].iloc[100:290].abs().quantile(0.99) < 4
    # vol is standardised against the host's own volatility baseline: about unit spread when
    # normal, strongly negative for a stuck metric, positive for a burst
    vol = out["cpu_busy_vol"]
    assert 0.5 < vol.iloc[100:290].std() < 2.0 and vol.iloc[100:290].abs().quantile(0.9) < 2.5
    assert vol.iloc[360:380].max() < -2.0
    assert vol.iloc[300:310].max() > 2.0
    assert out["warmup"].iloc[:30].all() and not out["warmup"].iloc[31:].any()


def test_new_host_is_relative_to_its_own_baseline() -> None:
    """Two hosts at very different levels give comparable features."""
    rng = np.random.default_rng(2)
    n = 300
    times = pd.date_range("2026-01-01", periods=n, freq="10s", tz="UTC")
    frame = pd.concat(
        [
            pd.DataFrame({"host": "small", "time": times, "cpu_busy": rng.normal(5, 1, n)}),
            pd.DataFrame({"host": "big", "time": times, "cpu_busy": rng.normal(80, 4, n)}),
        ]
    )
    out = FeatureBuilder(("cpu_busy",)).transform(frame)
    settled = out[~out["warmup"].astype(bool)]
    for _, g in settled.groupby("host"):
        assert abs(g["cpu_busy_z"].mean()) < 0.5 and g["cpu_busy_z"].std() < 2.0


def test_missing_values_and_garbage_do_not_break_features() -> None:
    frame = pd.DataFrame(
        {
            "host": ["a"] * 5,
            "time": pd.date_range("2026-01-01", periods=5, freq="10s", tz="UTC"),
            "cpu_busy": [10.0, np.nan, np.inf, -np.inf, 11.0],
        }
    )
    out = FeatureBuilder(("cpu_busy", "mem_used_pct")).transform(frame)
    assert np.isfinite(out[[c for c in out.columns if c.endswith(("_z", "_zmean", "_vol"))]].to_numpy()).all()
    assert (out["mem_used_pct_z"] == 0).all()  # a metric with no data sits at its baseline


def test_empty_input_gives_empty_frame_with_columns() -> None:
    out = FeaturePipeline().update({})[1]
    assert out.empty and set(FEATURE_COLUMNS) <= set(out.columns)
    assert list(base_metrics({}, CounterState()).columns) == ["host", "time", *BASE_METRIC_NAMES]


def test_hosts_that_arrive_one_at_a_time_keep_the_state_small() -> None:
    """The baseline state grows with the hosts, not with how they arrive: it used to double on
    every interval that brought a new host (12 hosts one by one made 32,768 rows of state)."""
    builder = FeatureBuilder(("cpu",))
    t0 = pd.Timestamp("2026-01-01", tz="UTC")
    for i in range(40):  # one more host every interval
        frame = pd.DataFrame(
            {"host": [f"h{k}" for k in range(i + 1)], "time": t0 + pd.Timedelta(seconds=10 * i), "cpu": 1.0}
        )
        builder.transform(frame)
    assert len(builder.hosts) == 40
    assert builder._s.mu.shape[0] <= 2 * 40  # rows of state
    builder.transform(pd.DataFrame({"host": [f"x{k}" for k in range(1000)], "time": t0, "cpu": 1.0}))
    assert builder._s.mu.shape[0] == 1040  # a whole fleet at once: no more than it needs
