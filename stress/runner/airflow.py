"""What the ``vigil_stress_scenario`` DAG calls."""

from __future__ import annotations

from typing import Any

from stress.runner.scenario import run_scenario
from vigil.settings import Settings


def run_for_airflow(settings: Settings, scenario: str, duration_s: float, intensity: float) -> dict[str, Any]:
    """What the ``vigil_stress_scenario`` DAG's task calls: one run with the settings the DAG built
    from the task's environment, returning a small JSON-able summary (the full report is in the
    files it names)."""
    report = run_scenario(scenario, settings, duration_s=duration_s, intensity=intensity)
    keys = (
        "scenario",
        "host",
        "detected",
        "time_to_detect_s",
        "peak_score",
        "false_alarms",
        "window_start",
        "window_end",
    )
    summary = {k: getattr(report, k) for k in keys}
    return {**summary, "outcome": report.outcome, "passed": report.passed, "files": report.files}
