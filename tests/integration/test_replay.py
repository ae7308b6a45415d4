"""``vigil replay`` against a real InfluxDB: a faithful replay equals its source (modulo the time
shift), perturbations are exact and deterministic per seed, the same input + model + seed gives
the same predictions (the detector's own loop, in process, on a virtual clock), injected
disorder and duplicates show up in the detector's ``late_point`` and ``duplicate_point``
counters, and bad input (an empty window, a bundle with a missing file or a malformed line) is a
clear error with nothing written."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from click.testing import CliRunner
from support.detector_support import detector_settings, fit_model, predictions

from detector.factory import build_detector
from stress.replay import NS, Perturbation, plan_replay, replay_run
from stress.replay_source import ReplayInputError, read_bundle, read_influx_window
from toolkit.cli import main
from toolkit.seed import seed_history
from vigil import schema
from vigil.features import FeaturePipeline
from vigil.influx import InfluxClient, quote_ident
from vigil.model import LoadedModel
from vigil.settings import get_settings

START = pd.Timestamp("2026-02-02T00:00:00Z")
MINUTES = 6
HOSTS = 3


@pytest.fixture(scope="module")
def source(settings):
    """15 min of seeded raw history for 3 hosts in a database of its own."""
    client = InfluxClient(settings.influx)
    db = "replay_src"
    client.drop_database(db)
    client.create_database(db)
    s = settings.model_copy(update={"influx_raw_db": db})
    seeded = seed_history(
        client,
        s.influx,
        s.collection,
        start=START,
        hours=MINUTES / 60,
        hosts=HOSTS,
        seed=5,
        progress=False,
        db=db,
    )
    yield s, seeded
    client.drop_database(db)


def drop(client: InfluxClient, *dbs: str) -> None:
    for db in dbs:
        client.drop_database(db)


def databases(client: InfluxClient) -> set[str]:
    return {row[0] for series in client.query(None, "SHOW DATABASES") for row in series["values"]}


def total_points(client: InfluxClient, db: str) -> int:
    total = 0
    for m in client.measurements(db):
        series = client.query(db, f"SELECT count(*) FROM {quote_ident(m)}")
        total += max(int(v) for v in series[0]["values"][0][1:])
    return total


def test_faithful_replay_equals_the_source_modulo_the_time_shift(source, influx):
    s, seeded = source
    into = "replay_faithful"
    drop(influx, into)
    try:
        stats = replay_run(
            s.influx,
            s.features,
            source="influx",
            into=into,
            start=seeded.start,
            end=seeded.end,
            speed=0,
            echo=print,
        )
        original = read_influx_window(influx, s.influx.raw_db, seeded.start, seeded.end)
        assert stats.read == stats.written == len(original) == HOSTS * 6 * MINUTES * 6
        assert (stats.dropped, stats.duplicated, stats.reordered, stats.late) == (0, 0, 0, 0)
        shift = int(stats.shift_s * NS)
        assert shift > 0 and shift % (10 * NS) == 0, "whole intervals: the interval grid is unchanged"
        lo, hi = seeded.start + pd.Timedelta(shift, "ns"), seeded.end + pd.Timedelta(shift, "ns")
        assert lo <= pd.Timestamp.now(tz="UTC"), "speed 0: the replayed window ends now, never in the future"
        replayed = read_influx_window(influx, into, lo, hi)
        assert [(p.measurement, p.tags, p.fields, p.time_ns - shift) for p in replayed] == [
            (p.measurement, p.tags, p.fields, p.time_ns) for p in original
        ]
        # types survive (JSON prints the float 100.0 as 100; the schema's type is restored)
        types = {(p.measurement, k): type(v) for p in replayed for k, v in p.fields.items()}
        assert types[("mem", "total")] is int and types[("cpu", "usage_idle")] is float
    finally:
        drop(influx, into)


def test_perturbation_counts_are_exact_and_deterministic_per_seed(source, influx):
    s, seeded = source
    points = read_influx_window(influx, s.influx.raw_db, seeded.start, seeded.end)
    p = Perturbation(shuffle_window=12, duplicate_rate=0.02, drop_rate=0.05, seed=3)
    a, b = plan_replay(points, p, 10), plan_replay(points, p, 10)
    other = plan_replay(
        points, Perturbation(shuffle_window=12, duplicate_rate=0.02, drop_rate=0.05, seed=4), 10
    )
    n = len(points)
    assert a.stats.dropped == round(0.05 * n) and a.stats.duplicated == round(0.02 * (n - a.stats.dropped))
    assert len(a.points) == n - a.stats.dropped + a.stats.duplicated
    assert a.stats.reordered > len(a.points) // 2 and 0 < a.stats.late < a.stats.reordered
    assert a.lines(0) == b.lines(0) and a.stats == b.stats, "same seed, same sequence"
    assert a.lines(0) != other.lines(0), "another seed, another sequence"
    into, exact = "replay_perturbed", "replay_exact_dups"
    drop(influx, into, exact)
    try:
        stats = replay_run(
            s.influx,
            s.features,
            source="influx",
            into=into,
            start=seeded.start,
            end=seeded.end,
            speed=0,
            keep_time=True,
            perturbation=p,
        )
        assert stats.written == len(a.points)
        assert total_points(influx, into) == n - stats.dropped + stats.duplicated, (
            "1 ms duplicates are stored"
        )
        # exact duplicates (offset 0) are merged by InfluxDB: invisible downstream, by construction
        same = Perturbation(duplicate_rate=0.02, drop_rate=0.05, seed=3, duplicate_offset_ns=0)
        stats0 = replay_run(
            s.influx,
            s.features,
            source="influx",
            into=exact,
            start=seeded.start,
            end=seeded.end,
            speed=0,
            keep_time=True,
            perturbation=same,
        )
        assert total_points(influx, exact) == n - stats0.dropped
    finally:
        drop(influx, into, exact)


@pytest.fixture(scope="module")
def champion(source, settings):
    """One fixed champion for every run: an IsolationForest fit on the source's features.

    Given to the detector in process — the object its registry watcher would swap in (loading
    through MLflow is covered by the detector's own tests; here it would only add minutes).
    """
    s, seeded = source
    client = InfluxClient(settings.influx)
    _, features = FeaturePipeline().update_from_influx(client, s.influx.raw_db, seeded.start, seeded.end, 10)
    return LoadedModel(name="replay-champion", version=1, run_id=None, model=fit_model(features, seed=0))


def drive_detector(base, run_dir, source_settings, seeded, into, perturbation, champion=None):
    """Replay slot interval by slot interval, running one detector iteration after each (virtual clock)."""
    client = InfluxClient(base.influx)
    vigil_db = into + "_vigil"
    drop(client, into, vigil_db)
    client.create_database(into)
    client.create_database(vigil_db)
    s = detector_settings(base, run_dir, into, vigil_db)
    points = read_influx_window(client, source_settings.influx.raw_db, seeded.start, seeded.end)
    plan = plan_replay(points, perturbation, s.features.interval_s)
    det = build_detector(s, start=seeded.start)
    det.watcher.current = champion
    interval_ns = s.features.interval_s * NS
    for slot_start, lo, hi in plan.slot_groups(interval_ns):
        client.write_lines(into, plan.lines(0, lo, hi), precision="ns")
        det.run_once(now=(slot_start + interval_ns) / NS)
    det.run_once(now=seeded.end.value / NS + 10)
    det.checkpoint()
    pred = predictions(client, vigil_db).sort_values(["source", "host", "time"]).reset_index(drop=True)
    errors = dict(det.metrics.errors)
    drop(client, into, vigil_db)
    return plan, pred, errors


def test_same_input_model_and_seed_give_the_same_predictions_and_disorder_is_counted(
    source, settings, champion, tmp_path
):
    s, seeded = source
    p = Perturbation(shuffle_window=12, duplicate_rate=0.02, drop_rate=0.01, seed=7)
    plan_a, pred_a, errors_a = drive_detector(
        settings, tmp_path / "a", s, seeded, "replay_det_a", p, champion
    )
    plan_b, pred_b, errors_b = drive_detector(
        settings, tmp_path / "b", s, seeded, "replay_det_b", p, champion
    )
    n_intervals = MINUTES * 6
    for src in ("online", "batch", "combined"):
        part = pred_a[pred_a["source"] == src]
        assert len(part) == HOSTS * n_intervals and not part.duplicated(["host", "time"]).any(), src
    assert set(pred_a.loc[pred_a["source"] == "batch", "model"]) == {"replay-champion"}
    pd.testing.assert_frame_equal(pred_a, pred_b)
    # disorder: points sent after their interval was read are counted by the detector, exactly
    assert plan_a.stats.late > 0
    assert errors_a.get("late_point") == errors_b.get("late_point") == plan_a.stats.late
    # duplicates (1 ms apart, so both are stored) are counted by the detector, exactly
    assert plan_a.stats.duplicated > 0
    assert errors_a.get("duplicate_point") == errors_b.get("duplicate_point") == plan_a.stats.duplicated
    # a faithful replay of the same input: nothing late
    _, pred_clean, errors_clean = drive_detector(
        settings, tmp_path / "c", s, seeded, "replay_det_c", Perturbation(), champion
    )
    assert "late_point" not in errors_clean and "duplicate_point" not in errors_clean
    assert len(pred_clean) == len(pred_a)


def test_empty_window_is_a_clear_error_and_nothing_is_written(source, influx, monkeypatch):
    s, seeded = source
    monkeypatch.setenv("VIGIL_INFLUX__PORT", str(s.influx.port))
    monkeypatch.setenv("VIGIL_INFLUX__RAW_DB", s.influx.raw_db)
    get_settings.cache_clear()
    try:
        res = CliRunner().invoke(
            main,
            ["replay", "--source", "influx", "--from", "2020-01-01T00:00:00Z", "--to", "2020-01-01T01:00:00Z",
             "--into", "replay_never", "--speed", "0"],
        )  # fmt: skip
        assert res.exit_code != 0 and "nothing to replay" in res.output and "nothing written" in res.output
        res = CliRunner().invoke(
            main,
            ["replay", "--source", "influx", "--from", str(seeded.start), "--to", str(seeded.end),
             "--hosts", "no-such-host", "--into", "replay_never", "--speed", "0"],
        )  # fmt: skip
        assert res.exit_code != 0 and "no-such-host" in res.output
        res = CliRunner().invoke(
            main, ["replay", "--source", "influx", "--from", "x", "--to", "y", "--into", "z"]
        )
        assert res.exit_code == 2 and "not a time" in res.output
        res = CliRunner().invoke(
            main,
            ["replay", "--source", "influx", "--from", str(seeded.start), "--to", str(seeded.end),
             "--into", s.influx.raw_db],
        )  # fmt: skip
        assert res.exit_code != 0 and "live raw database" in res.output
        assert "replay_never" not in databases(influx)
    finally:
        get_settings.cache_clear()


def write_bundle(folder, points, extra_lines=()):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "meta.json").write_text(json.dumps({"incident": "test", "field_types": {}}))
    with (folder / "events.jsonl").open("w") as fh:
        for p in points:
            fh.write(
                json.dumps(
                    {"measurement": p.measurement, "tags": p.tags, "fields": p.fields, "time_ns": p.time_ns}
                )
                + "\n"
            )
        for line in extra_lines:
            fh.write(line + "\n")


def test_bundle_replay_and_bad_bundles(source, influx, tmp_path, monkeypatch):
    s, seeded = source
    host = "host-01"
    points = read_influx_window(
        influx, s.influx.raw_db, seeded.start, seeded.start + pd.Timedelta(minutes=2), [host]
    )
    prediction = {"kind": "prediction", "measurement": schema.PREDICTIONS.name, "tags": {"host": host},
                  "fields": {"score": 1.0}, "time_ns": points[0].time_ns}  # fmt: skip
    good = tmp_path / "good"
    write_bundle(good, points[::-1], [json.dumps(prediction)])
    assert read_bundle(good) == points, "raw points only, canonical order, types as stored"
    into = "replay_bundle"
    drop(influx, into)
    try:
        monkeypatch.setenv("VIGIL_INFLUX__PORT", str(s.influx.port))
        get_settings.cache_clear()
        res = CliRunner().invoke(
            main,
            ["replay", "--source", "bundle", "--bundle", str(good), "--into", into, "--speed", "0",
             "--keep-time", "--shuffle-window", "6", "--seed", "1"],
        )  # fmt: skip
        assert res.exit_code == 0, res.output
        assert f"read {len(points)}, dropped 0, duplicated 0, reordered " in res.output
        assert f"written {len(points)}" in res.output and len(points) == 12 * 6
        replayed = read_influx_window(influx, into, seeded.start, seeded.end)
        assert replayed == points, "disorder changes the arrival order, not what is stored"
    finally:
        get_settings.cache_clear()
        drop(influx, into)
    missing = tmp_path / "missing"
    missing.mkdir()
    (missing / "meta.json").write_text("{}")
    with pytest.raises(ReplayInputError, match="missing events.jsonl"):
        replay_run(s.influx, s.features, source="bundle", bundle=missing, into="replay_never", speed=0)
    broken = tmp_path / "broken"
    write_bundle(broken, points[:3], ['{"measurement": "cpu", "tags": {}}'])
    with pytest.raises(ReplayInputError, match=r"events.jsonl:4: not a raw point"):
        replay_run(s.influx, s.features, source="bundle", bundle=broken, into="replay_never", speed=0)
    res = CliRunner().invoke(
        main, ["replay", "--source", "bundle", "--bundle", str(tmp_path / "nope"), "--into", "x"]
    )
    assert res.exit_code != 0 and "is not a folder" in res.output
    assert "replay_never" not in databases(influx)
