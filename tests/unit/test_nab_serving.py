"""``vigil evaluate nab`` runs the detector's own serving path with the detector's own settings:
no NAB-only profile, and a setting of the live detector changes what NAB sees."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipelines.nab.runner import detect, series_clock
from vigil.serving.path import ServingConfig
from vigil.settings import Settings


def _series(n: int = 4000, seed: int = 7) -> tuple[list[str], np.ndarray]:
    rng = np.random.default_rng(seed)
    stamps = pd.date_range("2014-02-01", periods=n, freq="5min").strftime("%Y-%m-%d %H:%M:%S").tolist()
    return stamps, 50.0 + rng.normal(0.0, 3.0, n)


def test_a_clear_spike_pages_and_noise_pages_at_about_the_designed_rate():
    """30 days of Gaussian noise at 5 minutes: chance pages (new records, rare levels) stay near the
    designed rate (``rarity_per_day`` = 0.3 a day, plus records, which get rarer as the window
    fills), and a clear spike on day 25 pages."""
    stamps, values = _series(n=8640)
    values[7200] = 80.0
    out = detect(stamps, values, ServingConfig())
    assert out["alarm"].iloc[7200] == 1 and out["anomaly_score"].iloc[7200] > 0.5
    after_day_2 = out["alarm"].to_numpy()[576:]
    per_day = (after_day_2.sum() - 1) / 28.0
    assert per_day <= 0.4, f"{per_day:.2f} chance pages a day on pure noise"


def test_one_incident_pages_once_and_the_grouping_mutes_what_follows():
    """Consecutive flagged rows are one incident (one page); a new incident within
    ``alarm_group_s`` of a page is muted too (its rows score 0 for NAB: not a new page)."""
    stamps, values = _series()
    values[3500:3504] = [120.0, 125.0, 130.0, 135.0]  # one incident: four records in a row
    values[3510] = 160.0  # another record, 30 minutes later
    grouped = detect(stamps, values, ServingConfig(alarm_group_s=3600.0))
    ungrouped = detect(stamps, values, ServingConfig(alarm_group_s=0.0))
    assert grouped["alarm"].iloc[3500:3504].tolist() == [1, 0, 0, 0]
    assert (grouped["anomaly_score"].iloc[3501:3504] == 0).all()
    assert grouped["alarm"].iloc[3510] == 0 and grouped["anomaly_score"].iloc[3510] == 0
    assert ungrouped["alarm"].iloc[3500:3504].tolist() == [1, 0, 0, 0]
    assert ungrouped["alarm"].iloc[3510] == 1


def test_what_the_decision_refuses_scores_zero_for_nab():
    """A nightly burst that grows a little every night is a new record each night, but usual for
    its hour from the fourth night on (rule 5): the detector does not flag it, so NAB must not
    count it either (anomaly_score 0, not the record's severity)."""
    stamps, values = _series(n=288 * 10)
    for day in range(10):
        at = day * 288 + 24  # 02:00
        values[at : at + 4] = 150.0 * (1.0 + 0.03 * day)
    out = detect(stamps, values, ServingConfig())
    refused = (out["score"] > 1.0) & (out["is_anomaly"] == 0)
    assert refused.iloc[288 * 4 :].any(), "the growing burst is a record the season rule vetoes"
    assert (out.loc[refused, "anomaly_score"] == 0).all()
    flagged = out["is_anomaly"] == 1
    assert (out.loc[flagged & (out["alarm"] == 1), "anomaly_score"] > 0.5).all()


def test_the_nab_run_takes_the_detectors_settings(monkeypatch: pytest.MonkeyPatch):
    """ServingConfig.from_settings is what `vigil evaluate nab` and the detector both build on."""
    monkeypatch.setenv("VIGIL_DETECTOR__ALARM_GROUP_S", "0")
    monkeypatch.setenv("VIGIL_FEATURES__INTERVAL_S", "5")
    cfg = ServingConfig.from_settings(Settings(_env_file=None))
    assert cfg.alarm_group_s == 0.0 and cfg.interval_s == 5.0


def test_repeated_and_backward_stamps_keep_file_order():
    clock = series_clock(
        ["2014-03-09 01:55:00", "2014-03-09 01:55:00", "2014-03-09 01:50:00", "2014-03-09 02:00:00"]
    )
    assert clock.is_monotonic_increasing and clock.is_unique
    assert (np.diff(clock.asi8) > 0).all()
