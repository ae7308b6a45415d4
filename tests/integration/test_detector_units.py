"""Small parts of the detector against the real InfluxDB where they touch it: the decision rule,
the fast line encoder (equal to ``Point.to_line``), the spill-to-disk buffer, the checkpoint file."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from detector.predictions import prediction_lines
from detector.sink import PredictionSink
from detector.state import Checkpoint, load_checkpoint, save_checkpoint
from vigil import schema
from vigil.decision import CONVICTION, combine_frames
from vigil.influx import InfluxClient
from vigil.processes import free_port


def _frame(score, threshold, flag, feature="cpu_busy_z"):
    return pd.DataFrame(
        {
            "score": score,
            "threshold": threshold,
            "is_anomaly": flag,
            "top1_feature": feature,
            "top1_contribution": 0.5,
        }
    )


@pytest.mark.parametrize(
    ("batch", "online", "series", "warmup", "now", "expected"),
    [
        ((0.6, 0.5, 1), (0.9, 0.8, 1), 0.0, 0, None, 1),  # champion and fleet model both flag
        ((0.6, 0.5, 1), (0.5, 0.8, 0), 0.0, 0, None, 1),  # champion convinced (1.2 >= CONVICTION)
        ((0.52, 0.5, 1), (0.5, 0.8, 0), 0.0, 0, None, 0),  # champion barely over, nothing agrees
        ((0.3, 0.5, 0), (0.95, 0.8, 1), 0.0, 0, None, 0),  # the fleet model never pages alone
        ((0.3, 0.5, 0), (0.5, 0.8, 0), 0.6, 0, None, 1),  # series evidence convinced alone (1.2)
        ((0.3, 0.5, 0), (0.5, 0.8, 0), 0.52, 0, None, 0),  # series barely over, champion disagrees
        ((0.52, 0.5, 1), (0.5, 0.8, 0), 0.55, 0, None, 1),  # champion and series evidence agree
        ((0.9, 0.5, 1), (0.99, 0.8, 1), 0.9, 1, None, 0),  # warm-up never alarms
        ((0.9, 0.0, 1), (0.5, 0.8, 0), 0.0, 0, None, 1),  # threshold <= 0: a flag counts as convinced
        (None, (0.5, 0.8, 0), 0.55, 0, None, 1),  # no champion: the series evidence decides
        (None, (0.99, 0.8, 1), 0.0, 0, None, 0),  # ... and the fleet model alone does not
        ((0.9, 0.5, 1), (0.99, 0.8, 1), 0.0, 0, False, 0),  # recovery: nothing out of band now
        ((0.9, 0.5, 1), (0.99, 0.8, 1), 0.0, 0, True, 1),
        ((0.3, 0.5, 0), (0.5, 0.8, 0), 0.6, 0, False, 1),  # series evidence is itself "now"
    ],
)
def test_decision_rule(batch, online, series, warmup, now, expected):
    assert CONVICTION == pytest.approx(1.15)
    on = _frame([online[0]], [online[1]], [online[2]], "mem_used_pct_z")
    b = None if batch is None else _frame([batch[0]], [batch[1]], [batch[2]])
    ev = pd.DataFrame({"score": [series], "metric": ["mem_used_pct" if series else ""]})
    out = combine_frames(on, b, [warmup], series=ev, now=None if now is None else [now])
    assert int(out["is_anomaly"].iloc[0]) == expected
    assert out["threshold"].iloc[0] == 1.0
    if now is None:
        assert (out["score"].iloc[0] > 1.0) == bool(expected or warmup)
    if expected and series > 0.5 and series / 0.5 >= out["score"].iloc[0]:
        assert out["top1_feature"].iloc[0] == "mem_used_pct"  # the series' metric names the alarm


def test_without_fleet_confirmation_only_the_champions_conviction_or_the_series_page():
    """``detector_fleet_confirms=False`` (the ablation): a champion barely over its threshold that
    only the fleet model agrees with no longer pages; a convinced champion still does."""
    on = _frame([0.9, 0.9], [0.8, 0.8], [1, 1], "mem_used_pct_z")
    b = _frame([0.52, 0.6], [0.5, 0.5], [1, 1])
    ev = pd.DataFrame({"score": [0.0, 0.0], "metric": ["", ""]})
    with_fleet = combine_frames(on, b, [0, 0], series=ev)
    without = combine_frames(on, b, [0, 0], series=ev, fleet_confirms=False)
    assert with_fleet["is_anomaly"].tolist() == [1, 1]
    assert without["is_anomaly"].tolist() == [0, 1]


def test_prediction_lines_equal_point_to_line():
    frame = pd.DataFrame(
        {
            "host": ["web 01,rack=a", "db=1"],
            "time": pd.to_datetime([10**18, 10**18 + 10**10], utc=True),
            "score": [0.5, np.nan],
            "threshold": [0.7, 0.7],
            "is_anomaly": [1, 0],
            "warmup": [0, 1],
            "top1_feature": ["cpu_busy_z", ""],
            "top1_contribution": [0.25, 0.0],
        }
    )
    errors: list[tuple[str, int]] = []
    unwritable = frame.iloc[[0]].assign(host="line\nbreak")  # line protocol cannot carry it
    lines = prediction_lines(
        pd.concat([frame.iloc[[0]], unwritable, frame.iloc[[1]]]),
        model="m",
        version="3",
        source="combined",
        on_error=lambda kind, n: errors.append((kind, n)),
    )
    assert errors == [("unwritable_host", 1)] and len(lines) == 2
    for line, row in zip(lines, frame.itertuples(), strict=True):
        fields = {
            k: getattr(row, k)
            for k in ("score", "threshold", "is_anomaly", "warmup", "top1_feature", "top1_contribution")
            if getattr(row, k) not in ("",)
        }
        point = schema.PREDICTIONS.point(
            {"host": row.host, "model": "m", "version": "3", "source": "combined"},
            fields,
            int(row.time.value),
        )
        assert line == point.to_line()


def test_sink_spills_while_influxdb_is_unreachable_and_drains_later(settings, fresh_db, tmp_path):
    dead = InfluxClient(settings.influx, url=f"http://127.0.0.1:{free_port()}", retries=0)
    sink = PredictionSink(dead, fresh_db, tmp_path / "spill", max_points=10, backoff_s=0.01)
    lines = [
        f"vigil_predictions,host=h{i},source=online score={i}.5,threshold=1.0,is_anomaly=0i {10**18 + i}"
        for i in range(35)
    ]
    sink.add(lines)
    assert sink.flush(force=True) == 0 and sink.spilled > 0 and sink.buffered == 35
    sink.persist()
    # a restarted process finds the spill files and sends them to the (now reachable) server
    live = PredictionSink(InfluxClient(settings.influx), fresh_db, tmp_path / "spill", max_points=10)
    assert live.buffered == 35
    assert live.flush() == 35 and live.buffered == 0
    got = InfluxClient(settings.influx).query_df(fresh_db, "SELECT * FROM vigil_predictions")
    assert len(got) == 35


def test_sink_with_two_writers_sends_every_line_and_loses_none_when_influxdb_is_down(
    settings, fresh_db, tmp_path
):
    lines = [
        f"vigil_predictions,host=h{i},source=online score={i}.5,threshold=1.0,is_anomaly=0i {10**18 + i}"
        for i in range(1050)
    ]
    dead_url = f"http://127.0.0.1:{free_port()}"
    down = PredictionSink(
        InfluxClient(settings.influx, url=dead_url, retries=0),
        fresh_db,
        tmp_path / "down",
        max_points=10_000,
        batch_size=100,
        writers=2,
        client_factory=lambda: InfluxClient(settings.influx, url=dead_url, retries=0),
    )
    down.add(lines)
    assert down.writers == 2 and down.flush(force=True) == 0 and down.buffered == 1050
    assert down.last_error is not None and not down.healthy
    down.close()
    sink = PredictionSink(
        InfluxClient(settings.influx),
        fresh_db,
        tmp_path / "up",
        max_points=10_000,
        batch_size=100,
        writers=2,
        client_factory=lambda: InfluxClient(settings.influx, retries=0),
    )
    sink.add(lines)
    assert sink.flush() == 1050 and sink.buffered == 0 and sink.written == 1050
    sink.close()
    got = InfluxClient(settings.influx).query_df(fresh_db, "SELECT * FROM vigil_predictions")
    assert len(got) == 1050 and sorted(got["host"]) == sorted(f"h{i}" for i in range(1050))


def test_the_detector_wakes_when_the_next_interval_is_due(settings, tmp_path):
    """Sleep the rest of the poll interval, but not past the moment the next interval can be
    read (its end + the allowed lateness); while reads back off, the plain poll interval."""
    from detector.factory import build_detector

    s = settings.model_copy(
        update={
            "run_dir": tmp_path,
            "poll_interval_s": 5.0,
            "allowed_lateness_s": 1.5,
            "feature_interval_s": 10,
            "mlflow_port": free_port(),
        }
    )
    det = build_detector(s, start=pd.Timestamp("2026-01-01", tz="UTC"))
    due = det.watermark_ns / 1e9 + 10 + 1.5
    assert det.next_wait_s(0.0, now=due - 2) == pytest.approx(2.01)
    assert det.next_wait_s(4.5, now=due - 2) == pytest.approx(0.5)  # the poll's rest is shorter
    assert det.next_wait_s(0.0, now=due - 20) == 5.0
    assert det.next_wait_s(0.0, now=due + 3) == 0.0  # already due: go on at once
    det._read_failures = 1
    assert det.next_wait_s(0.0, now=due + 3) == 5.0  # InfluxDB unreadable: no busy loop
    det._read_failures = 0
    det.settings = s.model_copy(update={"detector_wake_on_due": False})
    assert det.next_wait_s(1.0, now=due - 2) == 4.0  # a fixed cadence when switched off
    det.shutdown()


def test_checkpoint_is_atomic_and_a_corrupt_one_is_set_aside(tmp_path):
    path = tmp_path / "ckpt.pkl"
    save_checkpoint(path, Checkpoint(watermark_ns=42, online=b"o", features=("counters", "baselines")))
    assert load_checkpoint(path).watermark_ns == 42
    assert not list(tmp_path.glob("*.tmp*"))
    path.write_bytes(b"garbage")
    assert load_checkpoint(path) is None and (tmp_path / "ckpt.pkl.broken").exists()


class _FeatureChampion:
    """A champion whose score is the row's ``disk_read_vol`` (the model itself is not under test)."""

    threshold = 1.0

    def predict(self, frame: pd.DataFrame) -> pd.DataFrame:
        s = frame["disk_read_vol"].to_numpy(dtype=float)
        return pd.DataFrame(
            {
                "score": s,
                "threshold": self.threshold,
                "is_anomaly": (s > self.threshold).astype(int),
                "top1_feature": "disk_read_vol",
                "top1_contribution": 1.0,
            }
        )


def _interval(t: int, scores: dict[str, float]) -> pd.DataFrame:
    from vigil.features import FEATURE_COLUMNS

    frame = pd.DataFrame(
        {"host": list(scores), "time": pd.Timestamp("2026-01-01", tz="UTC") + pd.Timedelta(seconds=10 * t)}
    )
    for c in FEATURE_COLUMNS:
        frame[c] = 0.0
    frame["disk_read_vol"] = list(scores.values())
    return frame


def test_a_host_the_champion_always_finds_odd_is_judged_against_its_own_usual_score():
    """The champion scores host "odd" 1.5x its threshold every interval while nothing happens.
    Without calibration every interval pages; with it the host's usual score is learnt in its
    warm-up and becomes its threshold, a real jump still alarms, a long incident is not learnt
    as the new usual, and a host below the threshold keeps the model's threshold."""
    from vigil.model import LoadedModel
    from vigil.online import OnlineDetector
    from vigil.serving.calibration import HostCalibration
    from vigil.serving.scoring import ONLINE_FEATURES, online_config, score_features

    hosts = ["odd", "typical"]
    scores = {"odd": 1.5, "typical": 0.5}
    model = LoadedModel("m", 1, None, _FeatureChampion())

    def run(calibration: HostCalibration | None, t: int, warm: tuple[bool, bool] = (False, False)):
        online = OnlineDetector(list(ONLINE_FEATURES), online_config())
        return score_features(_interval(t, scores), online, model, np.array(warm), 0, calibration=calibration)

    assert all(run(None, t).combined["is_anomaly"].tolist() == [1, 0] for t in range(12))  # a page every 10 s

    cal = HostCalibration(window=30, min_rows=5)
    for t in range(5):  # a new host's warm-up: scored, cannot alarm, teaches its usual
        assert run(cal, t, warm=(True, False)).combined["is_anomaly"].tolist() == [0, 0]
    after = [run(cal, t) for t in range(5, 15)]
    assert [s.combined["is_anomaly"].tolist() for s in after] == [[0, 0]] * 10
    assert after[-1].batch["threshold"].tolist() == [1.5, 1.0]
    scores["odd"] = 6.0  # a real incident on the odd host: 4x its usual
    for t in range(15, 60):  # alarms throughout: capped at CONVICTION x threshold, it is learnt slowly
        assert run(cal, t).combined["is_anomaly"].tolist() == [1, 0]
    usual = cal.typical(hosts)
    assert 1.5 < usual[0] <= 1.5 * CONVICTION**3 and usual[1] == 0.5  # one bounded step per half window


def test_host_calibration_lets_a_host_that_settled_slightly_higher_stop_paging():
    """After a load, a host may settle a little above its old usual (seen: still alarming 150 s
    after a 10 s network burst). Before, flagged rows never taught the calibration, so that host
    paged forever; now it pages, then its usual catches up within about half a window."""
    from vigil.serving.calibration import HostCalibration

    cal = HostCalibration(window=30, min_rows=5)
    hosts, model_threshold = np.array(["h"]), np.array([1.0])
    for _ in range(30):
        cal.update(hosts, np.array([1.5]), np.array([False]), cal.thresholds(hosts, model_threshold))
    paged = []
    for _ in range(60):  # 1.3x its usual: beyond CONVICTION, so the champion alone pages
        threshold = cal.thresholds(hosts, model_threshold)
        flagged = np.array([1.95 / threshold[0] > CONVICTION])
        paged.append(bool(flagged[0]))
        cal.update(hosts, np.array([1.95]), flagged, threshold)
    assert paged[0] and not any(paged[16:]), paged
    assert sum(paged) <= 16


def test_fleet_online_model_flags_a_record_deviation_on_one_metric():
    """A CPU at 100 % on a host idle at 2 % is cpu_busy_z ~ 50 with every other metric calm: the
    fleet's online model must flag it (so it can confirm the champion), and must not flag the
    calm rows around it more often than its quantile allows."""
    from vigil.online import OnlineDetector
    from vigil.serving.scoring import ONLINE_FEATURES, online_config

    rng = np.random.default_rng(3)
    det = OnlineDetector(list(ONLINE_FEATURES), online_config())
    calm = rng.standard_t(4, size=(3000, len(ONLINE_FEATURES)))  # heavy-tailed, like real z-scores
    flagged = 0
    for start in range(0, len(calm), 100):  # one "interval" of 100 hosts at a time
        batch = det.score_many(calm[start : start + 100])
        flagged += int(batch.is_anomaly.sum()) if start >= 1500 else 0  # once its history is long
        det.learn_many(calm[start : start + 100], batch)
    assert not det.score_many(calm[:1]).warmup
    assert flagged / 1500 < 0.02, flagged
    spike = np.zeros((1, len(ONLINE_FEATURES)))
    spike[0, list(ONLINE_FEATURES).index("cpu_busy_z")] = 50.0
    result = det.score_many(spike)
    assert result.is_anomaly[0] and result.top_features[0, 0] == "cpu_busy_z"


def test_the_audit_counted_from_a_read_equals_the_servers_count(settings, fresh_db):
    """The detector counts a window's points and duplicates from its own read instead of two more
    rounds of queries (``RawReader.read_audited``); the later recount that finds late points
    asks the server (``count_points`` / ``count_duplicates``), so both must count the same
    things. Here: duplicates of one host and of one device, two devices of one host (not
    duplicates), a point without a host tag, per-core cpu series and a field the features do
    not read (neither is read, so neither is counted), in two intervals, with a shard filter
    that drops one host from the features but not from the audit."""
    from detector.reader import RawReader
    from detector.sharding import ShardFilter

    client = InfluxClient(settings.influx)
    t0 = 1_700_000_000 // 10 * 10
    lines = []
    for k, t in enumerate((t0, t0 + 10)):
        for host in ("a", "b"):
            lines += [
                f"mem,host={host} used_percent={40 + k} {t}000000000",
                f"cpu,cpu=cpu-total,host={host} usage_idle=90,usage_iowait=1 {t}000000000",
                f"cpu,cpu=cpu0,host={host} usage_idle=80,usage_iowait=1 {t}000000000",
                f"net,host={host},interface=eth0 bytes_recv=1i,bytes_sent=1i {t}000000000",
                f"net,host={host},interface=eth1 bytes_recv=1i,bytes_sent=1i {t}000000000",
                f"system,host={host} uptime=5i {t}000000000",
            ]
    lines += [
        f"mem,host=a used_percent=41 {t0 + 3}000000000",  # duplicate of a's mem, interval 1
        f"mem,host=a used_percent=42 {t0 + 4}000000000",  # and another
        f"net,host=b,interface=eth1 bytes_recv=2i,bytes_sent=2i {t0 + 12}000000000",  # device duplicate
        f"mem used_percent=10 {t0 + 1}000000000",  # no host tag
    ]
    client.write_lines(fresh_db, lines)
    s = settings.model_copy(
        update={"influx_raw_db": fresh_db, "feature_interval_s": 10, "collect_interval_s": 10.0}
    )
    errors: dict[str, int] = {}
    shard = ShardFilter(0, 2)
    reader = RawReader(
        s.influx,
        shard,
        lambda kind, n=1: errors.__setitem__(kind, errors.get(kind, 0) + n),
        interval_s=s.features.interval_s,
        collect_interval_s=s.collection.interval_s,
    )
    try:
        lo, hi = pd.Timestamp(t0, unit="s", tz="UTC"), pd.Timestamp(t0 + 20, unit="s", tz="UTC")
        frames, rows, audit, _quality = reader.read_audited(lo, hi)
        # mem 4 + 2 duplicates + 1 hostless, cpu-total 4, net 8 + 1 (system has no load1: not counted)
        assert audit is not None and (audit.points, audit.duplicates) == (7 + 4 + 9, 3)
        assert (audit.points, audit.duplicates) == (
            reader.count_points(lo, hi),
            reader.count_duplicates(lo, hi),
        )
        # the features read only this shard's hosts (a: mem 4, cpu 2, net 4; b: mem 2, cpu 2, net 5)
        assert rows == (10 if shard.owns("a") else 0) + (9 if shard.owns("b") else 0)
        assert errors.get("missing_host_tag") == 1  # counted by the read, then dropped
        assert reader.read(lo, hi)[1] == rows  # the plain read reads the same rows
    finally:
        reader.close()


def test_one_iteration_reads_at_most_the_budget_of_host_intervals(settings, fresh_db, tmp_path):
    """``detector_read_budget`` bounds hosts x intervals per read (the detector's memory grows with
    it): a fresh start reads one interval to learn the fleet's size, then budget // hosts
    intervals at a time; every interval is still scored, once."""
    from detector.factory import build_detector

    client = InfluxClient(settings.influx)
    vigil_db = fresh_db + "_v"
    client.create_database(vigil_db)
    t0 = 1_700_000_000 // 10 * 10
    hosts = [f"budget-{i}" for i in range(4)]
    client.write_lines(
        fresh_db,
        [
            f"{m},host={h} {field}={v + k} {t0 + 10 * k}"
            for k in range(7)
            for h in hosts
            for m, field, v in (("cpu,cpu=cpu-total", "usage_idle", 80), ("mem", "used_percent", 40))
        ],
        precision="s",
    )
    s = settings.model_copy(
        update={
            "run_dir": tmp_path,
            "influx_raw_db": fresh_db,
            "influx_vigil_db": vigil_db,
            "feature_interval_s": 10,
            "allowed_lateness_s": 0.0,
            "detector_history_hours": 0.0,
            "detector_read_budget": 8,
            "detector_max_catchup_intervals": 60,
            "mlflow_port": free_port(),
        }
    )
    det = build_detector(s, start=pd.Timestamp(t0, unit="s", tz="UTC"))
    try:
        spans = []
        while det.watermark_ns < (t0 + 70) * 10**9:
            r = det.run_once(now=t0 + 70)
            spans.append((r.end_ns - r.start_ns) // 10**10)
        assert spans == [1, 2, 2, 2]  # 8 // 4 hosts = 2 intervals per read after the first
        det.host_last_seen.update({f"other-{i}": 0 for i in range(96)})
        assert det.intervals_per_read() == 1  # never fewer than one interval
        det.sink.flush(force=True)
        got = client.query_df(
            vigil_db, f'SELECT count("score") FROM "{schema.PREDICTIONS.name}" GROUP BY "host"'
        )
        # 7 intervals x 2 sources (online and combined: no champion here), for every host
        assert len(got) == 4 and set(got["count"]) == {7 * 2}
    finally:
        det.shutdown()
        client.drop_database(vigil_db)
