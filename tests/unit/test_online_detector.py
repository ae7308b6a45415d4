"""vigil.online: the contract the detector service codes against."""

from __future__ import annotations

import random

import pandas as pd
import pytest

from vigil.online import AlarmCooldown, OnlineConfig, OnlineDetector, OnlineScore

FEATURES = ["cpu_z", "mem_z", "net_vol"]


def normal_rows(n: int, seed: int = 0) -> list[dict[str, float]]:
    rng = random.Random(seed)
    return [{f: rng.gauss(0.0, 1.0) for f in FEATURES} for _ in range(n)]


def trained(n: int = 800, **config) -> OnlineDetector:
    det = OnlineDetector(FEATURES, OnlineConfig(warmup=300, window_size=100, **config))
    for x in normal_rows(n):
        det.process(x)
    return det


SPIKE = {"cpu_z": 25.0, "mem_z": 0.0, "net_vol": 0.1}


def test_score_is_pure_and_flags_a_spike_with_its_top_feature():
    det = trained()
    before = det.to_bytes()
    r = det.score(SPIKE)
    assert isinstance(r, OnlineScore)
    assert r.is_anomaly and r.score > r.threshold
    assert r.contributions[0][0] == "cpu_z"
    assert det.n_seen == 800 and det.to_bytes() == before  # nothing changed


def test_normal_point_is_not_flagged():
    det = trained()
    r = det.score({"cpu_z": 0.0, "mem_z": 0.0, "net_vol": 0.0})
    assert not r.is_anomaly


def test_does_not_learn_from_flagged_points():
    det = trained()
    learned = det.n_learned
    r = det.process(SPIKE)
    assert r.is_anomaly
    assert det.n_seen == 801 and det.n_learned == learned  # seen, not learned
    ok = det.process({"cpu_z": 0.1, "mem_z": 0.0, "net_vol": 0.0})
    assert not ok.is_anomaly and det.n_learned == learned + 1


def test_a_lasting_shift_is_learned_after_max_unlearned_run():
    det = trained(max_unlearned_run=5, cooldown=0)
    learned = det.n_learned
    shifted = [{"cpu_z": 25.0 + 0.1 * i, "mem_z": 0.0, "net_vol": 0.0} for i in range(20)]
    results = [det.process(x) for x in shifted]
    assert results[0].is_anomaly
    assert det.n_learned > learned  # after 5 flagged points in a row it learns anyway


def test_threshold_adapts_to_the_recent_score_distribution():
    det = OnlineDetector(
        FEATURES,
        OnlineConfig(warmup=50, window_size=50, calibration="none", min_threshold=0.0, threshold_window=200),
    )
    for x in normal_rows(400):
        det.process(x)
    calm = det.threshold
    rng = random.Random(3)
    for _ in range(300):  # a noisier regime: scores rise, so must the threshold
        det.process({f: rng.gauss(0.0, 4.0) for f in FEATURES})
    assert det.threshold > calm
    assert det.threshold == det.score(normal_rows(1)[0]).threshold


def test_warmup_never_flags():
    det = OnlineDetector(FEATURES, OnlineConfig(warmup=100, window_size=20))
    results = [det.process(x) for x in normal_rows(60)] + [det.process(SPIKE)]
    assert all(r.warmup and not r.is_anomaly for r in results)


def test_to_bytes_round_trip_gives_identical_scores():
    det = trained()
    clone = OnlineDetector.from_bytes(det.to_bytes())
    rows = normal_rows(300, seed=9) + [SPIKE]
    assert [det.process(x) for x in rows] == [clone.process(x) for x in rows]


def test_from_bytes_rejects_foreign_payloads():
    import pickle

    with pytest.raises(ValueError, match="checkpoint"):
        OnlineDetector.from_bytes(pickle.dumps({"version": 999}))


def test_process_frame_columns_follow_the_predictions_schema():
    from vigil.schema import PREDICTIONS

    frame = pd.DataFrame(normal_rows(400) + [SPIKE], index=range(10, 411))
    frame["other"] = "ignored"
    out = OnlineDetector(FEATURES, OnlineConfig(warmup=300, window_size=100)).process_frame(frame)
    assert list(out.index) == list(frame.index)
    assert set(out.columns) - {"raw_score"} <= set(PREDICTIONS.fields)
    assert out["is_anomaly"].iloc[-1] == 1 and out["top1_feature"].iloc[-1] == "cpu_z"
    assert out["warmup"].iloc[0] == 1 and out["warmup"].iloc[-1] == 0


def test_bad_input_is_refused_clearly():
    with pytest.raises(ValueError, match="at least one feature"):
        OnlineDetector([])
    with pytest.raises(ValueError, match="duplicate"):
        OnlineDetector(["a", "a"])
    with pytest.raises(ValueError, match="threshold_quantile"):
        OnlineConfig(threshold_quantile=1.5)
    with pytest.raises(ValueError, match="lacks feature"):
        OnlineDetector(FEATURES).process_frame(pd.DataFrame({"cpu_z": [1.0]}))


def test_missing_and_nan_features_are_scored_not_crashed():
    det = trained()
    r = det.process({"cpu_z": float("nan"), "mem_z": 0.2})  # net_vol missing, cpu_z NaN
    assert 0.0 <= r.score <= 1.0 and not r.is_anomaly


def test_alarm_cooldown_is_per_key():
    cd = AlarmCooldown(rows=3)
    assert [cd.step("a", True) for _ in range(5)] == [True, False, False, False, True]
    assert cd.step("b", True) is True
    with pytest.raises(ValueError):
        AlarmCooldown(-1)


def record_detector(**config) -> OnlineDetector:
    cfg = OnlineConfig(
        warmup=100,
        window_size=50,
        extreme_features=("cpu_z", "net_vol"),
        hst_member=False,
        threshold_mode="record",
        calibration_window=100_000,
        **config,
    )
    return OnlineDetector(FEATURES, cfg)


def test_record_threshold_flags_only_points_beyond_the_whole_history():
    det = record_detector()
    rows = normal_rows(1500, seed=4)
    flags = [det.process(x).is_anomaly for x in rows]
    history_max = max(abs(x["cpu_z"]) for x in rows[100:])
    n = det.n_seen - 100  # calibration history: every row after warm-up
    assert det.threshold == pytest.approx(n / (n + 1))
    # records in an i.i.d. stream are rare (about ln n per member): fewer than the same members
    # flag under a rolling 0.995 quantile, which keeps flagging ~0.5 % of points for ever
    quantile = OnlineDetector(
        FEATURES, OnlineConfig(**{**det.config.to_dict(), "threshold_mode": "quantile"})
    )
    quantile_flags = [quantile.process(x).is_anomaly for x in rows]
    assert 0 < sum(flags[200:]) < sum(quantile_flags[200:])
    assert sum(flags[800:]) <= sum(flags[200:800])  # and rarer as the history grows
    assert not det.score({"cpu_z": 0.99 * history_max, "mem_z": 0.0, "net_vol": 0.0}).is_anomaly
    assert det.score({"cpu_z": 1.5 * history_max, "mem_z": 0.0, "net_vol": 0.0}).is_anomaly


def test_named_extreme_members_are_ranked_separately():
    det = record_detector()
    for x in normal_rows(600, seed=5):
        det.process(x)
    # net_vol alone beyond its own history flags, though |net_vol| < |cpu_z| elsewhere
    peak_vol = {"cpu_z": 0.0, "mem_z": 0.0, "net_vol": 6.0}
    only_mem = {"cpu_z": 0.0, "mem_z": 9.0, "net_vol": 0.0}  # not a member: HST is off
    assert det.score(peak_vol).is_anomaly and not det.score(only_mem).is_anomaly


def test_record_mode_options_are_checked():
    with pytest.raises(ValueError, match="record"):
        OnlineConfig(threshold_mode="record", calibration="none")
    with pytest.raises(ValueError, match="threshold_mode"):
        OnlineConfig(threshold_mode="sometimes")
    with pytest.raises(ValueError, match="extreme_features"):
        OnlineDetector(FEATURES, OnlineConfig(extreme_features=("disk_z",)))


def test_a_checkpoint_without_named_members_still_loads():
    det = trained()
    del det.__dict__["_member_ranks"]  # as pickled by the version before named members
    clone = OnlineDetector.from_bytes(det.to_bytes())
    assert clone.score(SPIKE) == trained().score(SPIKE)
