"""The NAB profile of the online model: what it changes, and that its record threshold
alarms less than the fleet default on a stable series while still catching a clear spike."""

from __future__ import annotations

import random
from dataclasses import fields

import numpy as np

from pipelines.nab.runner import RunnerConfig, detect, nab_online_config
from vigil.online import OnlineConfig, OnlineDetector

#: the only fields the NAB profile may override (docs/nab.md, "Defaults used")
NAB_OVERRIDES = {
    "extreme_features",
    "hst_record_margin",
    "hst_gate",
    "threshold_mode",
    "calibration_window",
}


def test_nab_profile_overrides_only_the_documented_fields():
    nab, fleet = nab_online_config(), OnlineConfig()
    changed = {f.name for f in fields(OnlineConfig) if getattr(nab, f.name) != getattr(fleet, f.name)}
    assert changed == NAB_OVERRIDES
    assert set(nab.extreme_features) <= set(RunnerConfig().model_features)


def test_record_profile_alarms_less_than_the_fleet_default_and_catches_a_spike():
    rng = random.Random(7)
    values = [50.0 + rng.gauss(0.0, 3.0) for _ in range(3000)]
    values[2800] = 120.0  # a clear spike late in the series
    probation = 450
    nab = detect(values, probation, "online", RunnerConfig())
    fleet_cfg = RunnerConfig(
        online=OnlineConfig(extreme_suffix="slow_value_z"),
        model_features=("fast_value_z", "mid_value_z", "slow_value_z"),
    )
    fleet = detect(values, probation, "online", fleet_cfg)
    assert nab["is_anomaly"].iloc[2800] == 1 and nab["anomaly_score"].iloc[2800] > 0.5
    # pure noise otherwise: the spike is the one alarm the series deserves; the rolling
    # quantile keeps alarming on noise, records (new maxima of the whole history) rarely do
    nab_alarms = int(nab["is_anomaly"].iloc[probation:].sum())
    fleet_alarms = int(fleet["is_anomaly"].iloc[probation:].sum())
    assert 1 <= nab_alarms < fleet_alarms


def test_hst_is_a_gated_member_of_the_nab_score():
    nab = nab_online_config()
    assert nab.hst_member and nab.hst_record_margin > 0 and 0 < nab.hst_gate < 1
    rng = random.Random(3)
    names = ["a", "b"]
    cfg = OnlineConfig(
        extreme_features=("a",),
        hst_record_margin=0.03,
        hst_gate=0.95,
        threshold_mode="record",
        calibration_window=1_000_000,
        warmup=50,
        calibration_min_history=20,
        window_size=50,
    )
    det = OnlineDetector(names, cfg)
    for _ in range(400):
        det.process({"a": rng.gauss(0, 1), "b": rng.gauss(0, 1)})
    # "b" far out, "a" ordinary: HST may be novel, but the gate keeps it out of the score
    quiet_a = {"a": 0.0, "b": 25.0}
    members = det._member_scores(quiet_a, det.score(quiet_a).raw_score, 0.0)
    assert members[0] == 0.0 and len(members) == 2
    # "a" elevated: HST counts, ranked on raw / (1 + margin)
    hot_a = {"a": 6.0, "b": 25.0}
    raw = det.score(hot_a).raw_score
    members = det._member_scores(hot_a, raw, 0.0)
    assert members[0] == det._ranks.rank(raw / 1.03)
    assert det._member_ranks["a"].rank(6.0) >= 0.95  # the gate was open


def test_nab_profile_batch_scores_equal_per_row_scores():
    rng = np.random.default_rng(5)
    names = list(RunnerConfig().model_features)
    det = OnlineDetector(names, nab_online_config())
    for _ in range(600):
        det.process(dict(zip(names, rng.normal(size=len(names)).tolist(), strict=True)))
    x = rng.normal(size=(50, len(names))) * 3
    batch = det.score_many(x)
    for i, row in enumerate(x):
        assert batch.score[i] == det.score(dict(zip(names, row.tolist(), strict=True))).score
