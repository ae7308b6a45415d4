"""``vigil seed``: Telegraf-schema shape, seasonality, counters, label windows, determinism."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from toolkit.cli import main
from toolkit.collector import load_config
from toolkit.collector.parity import MeasurementSchema, allowed_differences, compare, read_fixture
from toolkit.seed import SeedResult, load_labels, seed_history
from vigil.influx import InfluxClient, quote_ident, quote_literal, time_range
from vigil.settings import Settings, get_settings
from vigil.synthetic import generate_host
from vigil.synthetic.anomalies import KINDS
from vigil.synthetic.lines import MEASUREMENTS, host_lines
from vigil.synthetic.signals import activity, iir1

START = pd.Timestamp("2026-03-02T00:00:00Z")  # a Monday
HOURS = 26.0
HOSTS = 3
SEED = 7


@pytest.fixture(scope="module")
def seed_settings(settings: Settings) -> Iterator[Settings]:
    s = settings.model_copy(update={"influx_raw_db": "seedtest_raw", "influx_vigil_db": "seedtest_vigil"})
    yield s
    client = InfluxClient(s.influx)
    for db in (s.influx.raw_db, s.influx.vigil_db):
        client.drop_database(db)


@pytest.fixture(scope="module")
def seeded(seed_settings: Settings) -> SeedResult:
    client = InfluxClient(seed_settings.influx)
    return seed_history(
        client,
        seed_settings.influx,
        seed_settings.collection,
        start=START,
        hours=HOURS,
        hosts=HOSTS,
        seed=SEED,
        progress=False,
    )


@pytest.fixture(scope="module")
def frames(seeded: SeedResult, seed_settings: Settings) -> dict[str, pd.DataFrame]:
    client = InfluxClient(seed_settings.influx)
    out = {}
    for m in MEASUREMENTS:
        q = f"SELECT * FROM {quote_ident(m)} WHERE {time_range(seeded.start, seeded.end)}"
        out[m] = client.query_df(seed_settings.influx.raw_db, q).sort_values(["host", "time"])
    return out


def _stored_schema(client: InfluxClient, db: str) -> dict[str, MeasurementSchema]:
    schema: dict[str, MeasurementSchema] = {}
    for m in client.measurements(db):
        fields = {
            n: k for s in client.query(db, f"SHOW FIELD KEYS FROM {quote_ident(m)}") for n, k in s["values"]
        }
        tags = {v[0] for s in client.query(db, f"SHOW TAG KEYS FROM {quote_ident(m)}") for v in s["values"]}
        schema[m] = MeasurementSchema(tags, fields)
    return schema


def test_seeded_history_has_the_telegraf_schema(seeded: SeedResult, seed_settings: Settings) -> None:
    client = InfluxClient(seed_settings.influx)
    stored = _stored_schema(client, seed_settings.influx.raw_db)
    assert set(stored) == set(MEASUREMENTS)
    config = load_config(seed_settings.influx, seed_settings.detector)
    samples = read_fixture()
    expected = samples.schema(["cpu", "mem", "net", "diskio", "system", "processes"])
    # subset=True: the seeder writes only the fields features read, but every one with Telegraf's name and type.
    problems = compare(stored, expected, allowed_differences(config), measurements=MEASUREMENTS, subset=True)
    assert problems == []
    assert stored["cpu"].tag_keys == {"cpu", "host"} and stored["net"].tag_keys == {"host", "interface"}
    assert seeded.points == HOSTS * int(HOURS * 360) * len(MEASUREMENTS)


def test_values_are_plausible_and_counters_only_grow(frames: dict[str, pd.DataFrame]) -> None:
    cpu = frames["cpu"]
    parts = [c for c in cpu.columns if c.startswith("usage_")]
    assert np.allclose(cpu[parts].sum(axis=1), 100.0, atol=0.1)
    assert (cpu[parts] >= 0).all().all()
    mem = frames["mem"]
    assert (mem["used"] < mem["total"]).all() and (mem["available"] <= mem["total"]).all()
    assert np.allclose(mem["used_percent"], 100 * mem["used"] / mem["total"], atol=0.01)
    counters = {
        "net": ["bytes_sent", "bytes_recv", "packets_sent", "packets_recv"],
        "diskio": ["reads", "writes", "read_bytes", "write_bytes", "io_time"],
        "system": ["uptime"],
    }
    for m, cols in counters.items():
        for _, g in frames[m].groupby("host"):
            assert (g[cols].diff().dropna() >= 0).all().all(), m
    hosts_cpus = frames["system"].groupby("host")["n_cpus"].first()
    assert hosts_cpus.nunique() >= 1 and set(frames["system"]["host"]) == {
        f"host-{i:02d}" for i in range(HOSTS)
    }


def test_daily_cycle_is_visible_in_hourly_cpu(seeded: SeedResult, frames: dict[str, pd.DataFrame]) -> None:
    cpu = frames["cpu"].copy()
    cpu["busy"] = 100 - cpu["usage_idle"]
    for host, g in cpu.groupby("host"):
        labelled = np.zeros(len(g), dtype=bool)
        for lab in seeded.labels[seeded.labels["host"] == host].itertuples():
            labelled |= ((g["time"] >= lab.start) & (g["time"] < lab.end)).to_numpy()
        hourly = g[~labelled].set_index("time")["busy"].resample("1h").mean()
        mid = np.array([t.value // 10**9 + 1800 for t in hourly.index])
        expected = activity(seeded.profiles[host], mid)
        r = np.corrcoef(hourly.to_numpy(), expected)[0, 1]
        assert r > 0.8, (host, r)
    # cpu, load and network follow one activity curve (hourly means, labelled intervals included)
    cpu_h = cpu.set_index("time").groupby("host")["busy"].resample("1h").mean()
    load_h = frames["system"].set_index("time").groupby("host")["load1"].resample("1h").mean()
    net = frames["net"].copy()
    net["rate"] = np.log1p(net.groupby("host")["bytes_recv"].diff())
    net_h = net.dropna().set_index("time").groupby("host")["rate"].resample("1h").mean()
    for host in seeded.hosts:
        assert cpu_h[host].corr(load_h[host]) > 0.7, host
        assert cpu_h[host].corr(net_h[host]) > 0.6, host


def test_weekends_are_quieter_than_weekdays() -> None:
    h = generate_host(
        0, "host-00", start_s=int(START.value // 10**9), n=14 * 8640, dt=10, seed=SEED, anomalies=False
    )
    busy = 100 - h.values["usage_idle"]
    weekday = ((h.t_s // 86400) + 3) % 7
    assert busy[weekday >= 5].mean() < 0.9 * busy[weekday < 5].mean()


def test_labels_are_written_and_read_back(seeded: SeedResult, seed_settings: Settings) -> None:
    client = InfluxClient(seed_settings.influx)
    labels = load_labels(client, seed_settings.influx, seeded.start, seeded.end)
    assert list(labels.columns[:5]) == ["host", "kind", "start", "end", "label_id"]
    assert (labels["source"] == "seed").all()
    mine = seeded.labels[["host", "kind", "start", "end", "label_id"]].sort_values(["host", "start"])
    pd.testing.assert_frame_equal(
        labels[["host", "kind", "start", "end", "label_id"]].reset_index(drop=True),
        mine.reset_index(drop=True),
        check_dtype=False,
    )
    assert set(labels["kind"]) == set(KINDS)
    # a window that overlaps only the end of one label still finds it
    first = labels.iloc[0]
    part = load_labels(
        client, seed_settings.influx, first["end"] - pd.Timedelta("10s"), first["end"] + pd.Timedelta("1h")
    )
    assert first["label_id"] in set(part["label_id"])


def _detector_features(frames: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """The per-host features the issue names: busy, iowait, mem used %, load per cpu, log byte rates."""
    cpu, mem, sys_, net, disk = (
        frames[m].set_index(["host", "time"]) for m in ("cpu", "mem", "system", "net", "diskio")
    )
    f = pd.DataFrame(index=cpu.index)
    f["busy"] = 100 - cpu["usage_idle"]
    f["iowait"] = cpu["usage_iowait"]
    f["mem"] = mem["used_percent"]
    f["load"] = sys_["load1"] / sys_["n_cpus"]
    f["net"] = np.log1p(
        net.groupby(level="host")[["bytes_recv"]].diff()["bytes_recv"]
        + net.groupby(level="host")[["bytes_sent"]].diff()["bytes_sent"]
    )
    f["disk"] = np.log1p(
        disk.groupby(level="host")[["write_bytes"]].diff()["write_bytes"]
        + disk.groupby(level="host")[["read_bytes"]].diff()["read_bytes"]
    )
    return f.dropna()


def test_label_windows_cover_abnormal_metrics(seeded: SeedResult, frames: dict[str, pd.DataFrame]) -> None:
    feats = _detector_features(frames)
    labels = seeded.labels
    in_label = pd.Series(False, index=feats.index)
    for row in labels.itertuples():
        sel = (
            (feats.index.get_level_values("host") == row.host)
            & (feats.index.get_level_values("time") >= row.start)
            & (feats.index.get_level_values("time") < row.end)
        )
        in_label[sel] = True
    z = pd.DataFrame(index=feats.index)
    for host in feats.index.get_level_values("host").unique():
        h = feats.xs(host, level="host", drop_level=False)
        normal = h[~in_label.loc[h.index]]
        z.loc[h.index, feats.columns] = ((h - normal.mean()) / normal.std()).abs().to_numpy()
    score = z.max(axis=1).astype(float)
    for row in labels.itertuples():
        window = score.xs(row.host, level="host")
        window = window[(window.index >= row.start) & (window.index < row.end)]
        # most of every window is far outside the host's normal range (per-host z-scores)
        assert (window > 4).mean() > 0.6, (row.kind, row.host, (window > 4).mean())
    outside = score[~in_label]
    assert (outside > 6).mean() < 0.01  # normal data rarely looks that abnormal


def test_anomaly_rate_and_share_over_a_week() -> None:
    per_day, shares, kinds = [], [], set()
    for i in range(6):
        h = generate_host(
            i,
            f"host-{i:02d}",
            start_s=int(START.value // 10**9),
            n=7 * 8640,
            dt=10,
            seed=SEED,
            anomalies=True,
        )
        per_day.append(len(h.labels) / 7)
        shares.append(h.anomalous.mean())
        kinds |= {lab["kind"] for lab in h.labels}
    assert 3 <= np.mean(per_day) <= 6
    assert 0.02 <= np.mean(shares) <= 0.05
    assert kinds == set(KINDS)


def test_generation_is_deterministic_per_seed() -> None:
    kw = {"start_s": int(START.value // 10**9), "n": 2000, "dt": 10, "anomalies": True}
    a, b = generate_host(1, "h", seed=3, **kw), generate_host(1, "h", seed=3, **kw)
    c = generate_host(1, "h", seed=4, **kw)
    lines = lambda h: [x for chunk in host_lines("h", h.values, h.t_s, h.profile.n_cpus, 500) for x in chunk]  # noqa: E731
    assert lines(a) == lines(b)
    assert a.labels == b.labels
    assert lines(a) != lines(c)


def test_bad_arguments_are_refused_before_anything_is_written(seed_settings: Settings) -> None:
    client = InfluxClient(seed_settings.influx)
    with pytest.raises(ValueError, match="hours"):
        seed_history(client, seed_settings.influx, seed_settings.collection, hours=0, hosts=1, progress=False)
    with pytest.raises(ValueError, match="distinct"):
        seed_history(
            client, seed_settings.influx, seed_settings.collection, hours=1, hosts=["a", "a"], progress=False
        )


def test_iir1_matches_the_recursive_definition() -> None:
    x = np.random.default_rng(0).standard_normal(5000)
    for a in (0.3, 0.846, 0.995):
        expected, prev = np.empty_like(x), 1.5
        for i, v in enumerate(x):
            prev = a * prev + 0.2 * v
            expected[i] = prev
        assert np.allclose(iir1(x, a, 0.2, 1.5), expected, atol=1e-10)


def test_seed_cli(settings: Settings, influx: InfluxClient, fresh_db: str, tmp_path: Path) -> None:
    env = {
        "VIGIL_INFLUX__PORT": str(settings.influx.port),
        "VIGIL_INFLUX__VIGIL_DB": fresh_db + "_v",
        "VIGIL_RUN_DIR": str(tmp_path),
    }
    png = tmp_path / "host.png"
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(
            main,
            [
                "seed",
                "--hours",
                "1",
                "--hosts",
                "2",
                "--db",
                fresh_db,
                "--start",
                "2026-03-03T10:00:00",
                "--seed",
                "1",
                "--plot",
                str(png),
            ],
            env=env,
        )
        assert result.exit_code == 0, result.output
        assert "wrote 4,320 points for 2 hosts" in result.output
        assert png.stat().st_size > 10_000
        rows = influx.query(
            fresh_db,
            f"SELECT count({quote_ident('usage_idle')}) FROM {quote_ident('cpu')} "
            f"WHERE {quote_ident('host')} = {quote_literal('host-01')}",
        )
        assert rows[0]["values"][0][1] == 360
        labels = load_labels(
            influx,
            settings.model_copy(update={"influx_vigil_db": fresh_db + "_v"}).influx,
            "2026-03-03T10:00:00Z",
            "2026-03-03T11:00:00Z",
        )
        assert len(labels) >= 2 and set(labels["host"]) == {"host-00", "host-01"}
    finally:
        get_settings.cache_clear()
        influx.drop_database(fresh_db + "_v")
