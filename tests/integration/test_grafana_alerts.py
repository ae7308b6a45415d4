"""Replayed over the seeded history, each alert rule fires on its incident and stays quiet elsewhere.

The evaluation is Grafana's (see toolkit.grafana.alerting): the rule's own query, expanded
for each evaluation time, run on the real InfluxDB, then reduce + threshold + ``for``.
"""

from __future__ import annotations

import pandas as pd
import pytest

from toolkit.grafana.alerting import ALERTING, NODATA, evaluate_rule, firing_now, simulate_rule
from toolkit.grafana.provisioning import datasource_databases, load_alert_rules
from vigil.influx import InfluxClient

RULES = {r.uid: r for r in load_alert_rules()}
MIN = pd.Timedelta(minutes=1)


@pytest.fixture(scope="module")
def timelines(grafana_history, grafana_settings):
    """Every rule evaluated each minute from 20 minutes into the history to its end."""
    client = InfluxClient(grafana_settings.influx)
    dbs = datasource_databases(grafana_settings.influx)
    start = grafana_history.start + 20 * MIN
    return {uid: simulate_rule(client, dbs, rule, start, grafana_history.end) for uid, rule in RULES.items()}


def _periods(timeline):
    return [(p.labels, p.start, p.end) for p in timeline.firing]


def _inside(periods, lo, hi) -> bool:
    return all(lo <= start and end <= hi for _, start, end in periods)


def test_anomaly_rate_fires_per_host_on_the_labelled_windows_only(timelines, grafana_history) -> None:
    periods = _periods(timelines["vigil-anomaly-rate"])
    assert periods, "never fired"
    for host, lo, hi in grafana_history.labels:
        mine = [p for p in periods if p[0].get("host") == host]
        assert mine, f"did not fire for {host} ({lo}..{hi})"
        # fires once the 5-minute rate crosses 15 % (+1 m pending) and clears within the 5-minute window after
        assert _inside(mine, lo + MIN, hi + 5 * MIN), (host, mine)
        assert any(start <= hi for _, start, _ in mine), "fired too late"
    assert len(periods) == len(grafana_history.labels), periods


def test_detector_stale_fires_during_the_outage_only(timelines, grafana_history) -> None:
    lo, hi = grafana_history.detector_down
    periods = _periods(timelines["vigil-detector-stale"])
    assert len(periods) == 1, periods
    _, start, end = periods[0]
    assert lo + 2 * MIN <= start <= lo + 4 * MIN  # 3-minute moving average of predictions/minute
    assert hi - MIN <= end <= hi + MIN


def test_collector_silent_fires_for_the_silent_host_only(timelines, grafana_history) -> None:
    host, lo, hi = grafana_history.silent
    periods = _periods(timelines["vigil-collector-silent"])
    assert [p[0] for p in periods] == [{"host": host}], periods
    _, start, end = periods[0]
    assert lo + 2 * MIN <= start <= lo + 4 * MIN
    assert hi - MIN <= end <= hi + MIN


def test_detector_errors_fire_on_the_burst_not_on_the_counter_reset(timelines, grafana_history) -> None:
    lo, hi = grafana_history.error_burst
    periods = _periods(timelines["vigil-detector-errors"])
    assert len(periods) == 1, periods
    assert periods[0][0] == {"instance": "detector-0"}
    assert _inside(periods, lo, hi + 10 * MIN)
    # the restart after the outage resets the cumulative counter: no alert there
    down_lo, down_hi = grafana_history.detector_down
    assert not any(down_lo <= s <= down_hi + 10 * MIN for _, s, _ in periods)


def test_drift_fires_from_the_drifted_check_until_the_next_clean_one(timelines, grafana_history) -> None:
    periods = _periods(timelines["vigil-drift-detected"])
    assert len(periods) == 1, periods
    _, start, end = periods[0]
    assert grafana_history.drift_at <= start < grafana_history.drift_at + MIN
    assert grafana_history.next_drift_check - MIN <= end < grafana_history.next_drift_check


def test_normal_stretch_is_quiet_for_every_rule(timelines, grafana_history) -> None:
    """The first 40 minutes after the warm-up hold no incident: no rule is Pending or Alerting there."""
    lo = grafana_history.start + 20 * MIN
    hi = grafana_history.start + 55 * MIN
    for uid, tl in timelines.items():
        for ev, states in zip(tl.evaluations, tl.states, strict=True):
            if lo <= ev.at <= hi:
                assert all(st not in (ALERTING, "Pending") for st in states.values()), (uid, ev.at, states)


def test_no_data_maps_to_the_rules_no_data_state(grafana_settings) -> None:
    """Before any data exists: stale/silent rules alert (noDataState Alerting), the others stay OK."""
    client = InfluxClient(grafana_settings.influx)
    dbs = datasource_databases(grafana_settings.influx)
    long_ago = pd.Timestamp("2001-01-01T00:00:00Z")
    for uid, rule in RULES.items():
        ev = evaluate_rule(client, dbs, rule, long_ago)
        assert [i.state for i in ev.instances] == [NODATA]
        now = firing_now(client, dbs, rule, long_ago)
        fired = any(st == ALERTING for st in now.states[-1].values())
        assert fired == (rule.rule["noDataState"] == "Alerting"), uid
