"""The served judgement's figures (pipelines/served.py) on a hand-made combined frame, and the
promotion gate's rules on hand-made figures (no services: the replay itself is tested in
tests/integration/test_pipeline_labelfree.py)."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from pipelines.served import TTD_SLACK, served_gate, served_metrics

T0 = pd.Timestamp("2026-01-01T00:00:00Z")


def _combined(alarms: dict[str, list[int]], n: int = 60) -> pd.DataFrame:
    rows = []
    for host, flagged in alarms.items():
        for i in range(n):
            rows.append(
                {
                    "host": host,
                    "time": T0 + pd.Timedelta(seconds=10 * i),
                    "score": 0.5,
                    "threshold": 1.0,
                    "is_anomaly": int(i in flagged),
                    "warmup": 0,
                }
            )
    return pd.DataFrame(rows)


def _w(host: str, a: int, b: int, source: str = "injected") -> dict:
    return {
        "event_id": f"{host}-{a}",
        "host": host,
        "kind": "k",
        "source": source,
        "start": T0 + pd.Timedelta(seconds=10 * a),
        "end": T0 + pd.Timedelta(seconds=10 * b),
    }


def test_events_false_alarms_time_to_detect_and_false_positive_windows() -> None:
    combined = _combined({"a": [12, 13, 40, 41, 42], "b": [5, 30]})
    injected = pd.DataFrame([_w("a", 10, 20), _w("b", 50, 55)])
    real = pd.DataFrame([_w("b", 28, 32, "seed")])
    normal = pd.DataFrame([_w("b", 4, 6, "operator")])
    m = served_metrics(combined, injected, real, normal, 10, grace_s=30)
    assert m["injected_events"] == 2 and m["injected_event_recall"] == 0.5  # a caught at 12, b missed
    assert m["real_events"] == 1 and m["real_event_recall"] == 1.0
    assert m["event_recall"] == pytest.approx(2 / 3)
    assert m["median_ttd_s"] == pytest.approx(30.0)  # 20 s to (a)'s and (b)'s first alarm + its interval
    assert m["false_alarms"] == 2  # a's run 40-42, and b at 5 (inside a false-positive window: still false)
    assert m["fp_window_alarms"] == 1
    untouched = 120 - (10 + 3) - (5 + 3) - (4 + 3)  # rows outside event windows and their grace
    assert m["host_days"] == pytest.approx(untouched * 10 / 86400)
    assert m["false_alarms_per_host_day"] == pytest.approx(2 / m["host_days"])


def test_warmup_rows_are_not_judged_and_no_event_means_no_recall() -> None:
    combined = _combined({"a": [3]})
    combined.loc[combined["time"] < T0 + pd.Timedelta(seconds=50), "warmup"] = 1
    empty = pd.DataFrame(columns=["event_id", "host", "kind", "source", "start", "end"])
    m = served_metrics(combined, empty, empty, empty, 10)
    assert m["false_alarms"] == 0 and m["rows"] == 55 and math.isnan(m["event_recall"])


FIG = {
    "event_recall": 0.9,
    "real_event_recall": float("nan"),
    "false_alarms_per_host_day": 0.5,
    "median_ttd_s": 20.0,
    "events": 40.0,
}


@pytest.mark.parametrize(
    ("change", "passed", "why"),
    [
        ({}, True, "served decision"),
        ({"event_recall": 0.85}, False, "catches fewer"),
        ({"false_alarms_per_host_day": 0.9}, True, "served decision"),  # within the budget of 1
        ({"false_alarms_per_host_day": 1.2}, False, "pages more"),
        ({"median_ttd_s": TTD_SLACK * 20.0 + 11}, False, "detects slower"),
        ({"false_alarms_per_host_day": float("nan")}, False, "pages more"),
    ],
)
def test_the_gate_compares_catching_paging_and_speed(change: dict, passed: bool, why: str) -> None:
    verdict = served_gate({**FIG, **change}, FIG, budget=1.0, margin=0.0, interval_s=10)
    assert verdict.passed is passed and verdict.reason.startswith(why), verdict.reason


def test_the_gate_lets_a_champion_that_pages_a_lot_be_replaced_by_one_that_pages_less() -> None:
    noisy = {**FIG, "false_alarms_per_host_day": 5.0}
    assert served_gate(
        {**FIG, "false_alarms_per_host_day": 4.0}, noisy, budget=1.0, margin=0.0, interval_s=10
    ).passed
    assert not served_gate({**FIG, "event_recall": 0.95}, FIG, budget=1.0, margin=0.1, interval_s=10).passed
    labelled = {**FIG, "real_event_recall": 1.0}
    assert not served_gate(
        {**labelled, "real_event_recall": 0.5}, labelled, budget=1.0, margin=0.0, interval_s=10
    ).passed


def test_operators_false_positives_outrank_injected_events_in_the_gate() -> None:
    champion = {**FIG, "fp_windows_raised": 3.0}
    quieter = {**FIG, "event_recall": 0.5, "fp_windows_raised": 0.0}  # deafer, but heeds the operators
    verdict = served_gate(quieter, champion, budget=1.0, margin=0.0, interval_s=10)
    assert verdict.passed and "operators' false positives" in verdict.reason
    louder = {**FIG, "fp_windows_raised": 4.0}
    assert served_gate(louder, champion, budget=1.0, margin=0.0, interval_s=10).reason.startswith(
        "raises more"
    )
    labelled = {**quieter, "real_event_recall": 0.0}
    assert not served_gate(
        labelled, {**champion, "real_event_recall": 1.0}, budget=1.0, margin=0.0, interval_s=10
    ).passed


def test_when_the_path_says_which_rows_page_a_false_alarm_is_a_page() -> None:
    combined = _combined({"a": [40, 41, 42, 50, 51]})
    empty = pd.DataFrame(columns=["event_id", "host", "kind", "source", "start", "end"])
    assert served_metrics(combined, empty, empty, empty, 10)["false_alarms"] == 2  # two runs of flags
    combined["alarm"] = 0
    combined.loc[
        (combined["host"] == "a") & (combined["time"] == T0 + pd.Timedelta(seconds=400)), "alarm"
    ] = 1
    assert served_metrics(combined, empty, empty, empty, 10)["false_alarms"] == 1  # one incident, one page
