"""End to end, in process, on seeded history: the detector finds the seeded anomalies, scores
every host-interval exactly once, serves features identical to training's, warm-starts known
hosts from their history and keeps a brand-new host in warm-up (scored, never alarming).

Real InfluxDB and MLflow (session fixtures); loop iterations are driven with an explicit
``now`` so the test does not wait for the wall clock.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from support.detector_support import (
    detector_settings,
    fit_model,
    fresh_databases,
    predictions,
    register_champion,
)

from detector.factory import build_detector
from toolkit.seed import seed_history
from vigil.features import FEATURE_COLUMNS, FeaturePipeline
from vigil.influx import InfluxClient

START = pd.Timestamp("2026-01-05T00:00:00Z")
HOURS = 3.0
SCORE_FROM = START + pd.Timedelta(hours=1)
NEWCOMER_FROM = START + pd.Timedelta(hours=2)


@pytest.fixture(scope="module")
def scenario(mlflow_settings, tmp_path_factory):
    yield from build_scenario(mlflow_settings, tmp_path_factory.mktemp("e2e"))


def build_scenario(base, run_dir):
    """Seed, train a champion on other hosts, run the detector over the seeded window."""
    client = InfluxClient(base.influx)
    raw_db, vigil_db, train_db = "det_e2e_raw", "det_e2e_vigil", "det_e2e_train"
    for db in (raw_db, vigil_db, train_db):
        client.drop_database(db)
        client.create_database(db)
    s = detector_settings(base, run_dir, raw_db, vigil_db, model_name="det-e2e", checkpoint_every=5)
    # the champion is trained on *other* hosts: every scored host is one it has never seen
    train = seed_history(
        client,
        s.influx,
        s.collection,
        start=START,
        hours=2,
        hosts=[f"train-{i}" for i in range(4)],
        seed=7,
        anomalies=False,
        progress=False,
        db=train_db,
    )
    _, train_features = FeaturePipeline().update_from_influx(client, train_db, train.start, train.end, 10)
    version = register_champion(s, fit_model(train_features))
    seeded = seed_history(
        client, s.influx, s.collection, start=START, hours=HOURS, hosts=6, seed=11, progress=False, db=raw_db
    )
    seed_history(
        client,
        s.influx,
        s.collection,
        start=NEWCOMER_FROM,
        hours=HOURS - 2,
        hosts=["newcomer"],
        seed=3,
        anomalies=False,
        progress=False,
        db=raw_db,
    )
    det = build_detector(s, start=SCORE_FROM)
    assert det.watcher.check_once() and det.champion.version == version
    features = []
    end_s = seeded.end.value / 1e9
    while det.watermark_ns is None or det.watermark_ns < seeded.end.value:
        det.run_once(now=end_s)
        if det.last_features is not None:
            features.append(det.last_features)
    det.checkpoint()
    yield {
        "client": client,
        "settings": s,
        "seeded": seeded,
        "detector": det,
        "version": version,
        "features": pd.concat(features, ignore_index=True),
        "pred": predictions(client, vigil_db),
    }
    for db in (raw_db, vigil_db, train_db):
        client.drop_database(db)


def test_training_and_serving_features_are_identical(scenario):
    """Batch extraction over the whole window == the detector's incremental, warm-started features."""
    client, seeded = scenario["client"], scenario["seeded"]
    _, batch = FeaturePipeline().update_from_influx(client, "det_e2e_raw", seeded.start, seeded.end, 10)
    batch = batch[(batch["time"] >= SCORE_FROM) & (batch["host"] != "newcomer")]
    served = scenario["features"]
    served = served[served["host"] != "newcomer"]
    key = ["host", "time"]
    batch, served = (f.sort_values(key).reset_index(drop=True) for f in (batch, served))
    assert len(served) == 6 * (HOURS - 1) * 360
    pd.testing.assert_frame_equal(batch[key], served[key])
    np.testing.assert_array_equal(
        batch[list(FEATURE_COLUMNS)].to_numpy(), served[list(FEATURE_COLUMNS)].to_numpy()
    )
    np.testing.assert_array_equal(batch["warmup"].to_numpy(), served["warmup"].to_numpy())


def test_every_host_interval_scored_exactly_once_by_each_source(scenario):
    pred = scenario["pred"]
    n_intervals = int((scenario["seeded"].end - SCORE_FROM).total_seconds() // 10)
    n_newcomer = int((scenario["seeded"].end - NEWCOMER_FROM).total_seconds() // 10)
    for source in ("batch", "online", "combined"):
        part = pred[pred["source"] == source]
        assert not part.duplicated(["host", "time"]).any()
        assert len(part) == 6 * n_intervals + n_newcomer, source
    combined = pred[pred["source"] == "combined"]
    assert set(combined["version"]) == {str(scenario["version"])}
    assert set(pred[pred["source"] == "batch"]["model"]) == {"det-e2e"}
    flagged = combined[combined["is_anomaly"] == 1]
    assert flagged["top1_feature"].isin(FEATURE_COLUMNS).all(), "an alarm names the feature behind it"


def test_seeded_anomalies_are_detected_without_an_alarm_flood(scenario):
    pred = scenario["pred"]
    combined = pred[(pred["source"] == "combined") & (pred["host"] != "newcomer")]
    labels = scenario["seeded"].labels
    labels = labels[(labels["start"] >= SCORE_FROM)]
    assert len(labels) >= 3
    inside = np.zeros(len(combined), dtype=bool)
    detected = 0
    for lab in labels.itertuples():
        in_window = (
            (combined["host"] == lab.host) & (combined["time"] >= lab.start) & (combined["time"] < lab.end)
        ).to_numpy()
        inside |= in_window
        detected += bool(combined["is_anomaly"].to_numpy()[in_window].any())
    recall = detected / len(labels)
    false_alarm_rate = combined["is_anomaly"].to_numpy()[~inside].mean()
    print(f"labels={len(labels)} recall={recall:.2f} false_alarm_rate={false_alarm_rate:.4f}")
    assert recall >= 0.6
    assert false_alarm_rate <= 0.01


def test_known_hosts_are_warm_started_and_a_new_host_warms_up_without_alarming(scenario):
    pred = scenario["pred"]
    combined = pred[pred["source"] == "combined"].sort_values("time")
    known = combined[combined["host"] != "newcomer"]
    assert (known["warmup"] == 0).all(), "history warm start: no warm-up for hosts with 1 h of history"
    new = combined[combined["host"] == "newcomer"]
    warm_limit = round(scenario["settings"].detector.warmup_s / scenario["settings"].features.interval_s)
    assert (new["warmup"].iloc[:warm_limit] == 1).all()
    assert (new["is_anomaly"].iloc[:warm_limit] == 0).all(), "in warm-up a host is scored but cannot alarm"
    assert (new["warmup"].iloc[warm_limit + 1 :] == 0).all()
    assert new["is_anomaly"].mean() <= 0.02, "a never-seen host does not flood alarms"
    health = scenario["detector"].health()
    assert health["mode"] == "champion" and health["hosts"] == 7


def test_online_model_is_warm_started_from_fleet_history(scenario):
    """The fleet-wide online model leaves its warm-up on history, not after ``warmup`` live rows:
    from the first scored interval, a known host's online predictions may alarm."""
    pred = scenario["pred"]
    online = pred[(pred["source"] == "online") & (pred["host"] != "newcomer")].sort_values("time")
    first = online[online["time"] == online["time"].min()]
    assert len(first) == 6 and (first["warmup"] == 0).all(), first[["host", "warmup"]]
    det = scenario["detector"]
    assert det.online.n_seen >= det.online.config.warmup


def test_fleet_warm_start_is_retried_until_history_exists(mlflow_settings, tmp_path, monkeypatch):
    """The demo starts the detector before it seeds history: the fleet warm start must not give
    up on its first, empty poll, but try again (every ONLINE_WARM_RETRY_S) and warm the online
    model once history is there."""
    import detector.service as service

    monkeypatch.setattr(service, "ONLINE_WARM_RETRY_S", 0.0)  # retry on the next poll, not in 30 s
    client = InfluxClient(mlflow_settings.influx)
    raw_db, vigil_db = "det_retry_raw", "det_retry_vigil"
    with fresh_databases(client, raw_db, vigil_db):
        s = detector_settings(
            mlflow_settings, tmp_path, raw_db, vigil_db, model_name="det-retry", detector_history_hours=2.0
        )
        begin = START + pd.Timedelta(hours=1)
        det = build_detector(s, start=begin)
        det.run_once(now=(begin + pd.Timedelta(minutes=1)).value / 1e9)
        assert det.online.n_seen == 0, "no history yet: nothing to learn"
        # history only (it ends where scoring begins): no host reports live, so only the fleet
        # warm start can teach the online model
        seed_history(
            client,
            s.influx,
            s.collection,
            start=START,
            hours=1.0,
            hosts=3,
            seed=5,
            anomalies=False,
            progress=False,
            db=raw_db,
        )
        det.run_once(now=(begin + pd.Timedelta(minutes=2)).value / 1e9)
        assert det.online.n_seen >= det.online.config.warmup, "warm-started on the history written meanwhile"
