"""The NAB profile of the online model: what it changes, and that its record threshold
alarms less than the fleet default on a stable series while still catching a clear spike."""

from __future__ import annotations

import random
from dataclasses import fields

from pipelines.nab.runner import RunnerConfig, detect, nab_online_config
from vigil.online import OnlineConfig

#: the only fields the NAB profile may override (docs/nab.md, "Defaults used")
NAB_OVERRIDES = {"extreme_features", "hst_member", "threshold_mode", "calibration_window"}


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
