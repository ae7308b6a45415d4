"""The suite: every scenario one after the other, resting between them; ``suite.md`` / ``suite.json``."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path

from stress.report import DetectionReport, preload_plotting
from stress.runner.rest import MAX_REST_S, QUIET_INTERVALS, rest_until_quiet
from stress.runner.scenario import run_scenario
from stress.runner.table import format_table
from stress.runner.watch import Echo, monitored_host
from stress.scenarios import SCENARIO_NAMES, get_scenario
from vigil.settings import Settings

#: Suite order: the false-positive check first, on a quiet machine, then the anomalies.
SUITE_ORDER: tuple[str, ...] = ("normal_busy_period",) + tuple(
    n for n in SCENARIO_NAMES if n != "normal_busy_period"
)


def run_suite(
    settings: Settings,
    *,
    names: tuple[str, ...] | None = None,
    duration_s: float | None = None,
    intensity: float | None = None,
    settle_s: float = 30.0,
    max_rest_s: float = MAX_REST_S,
    stop_on_detect: bool = True,
    grace_s: float | None = None,
    max_lag_s: float | None = None,
    out_dir: Path | None = None,
    echo: Echo = print,
) -> list[DetectionReport]:
    """Every scenario in :data:`SUITE_ORDER` (or ``names``), one after the other, resting between
    them at least ``settle_s`` and until the host is quiet (:func:`rest_until_quiet`); writes
    ``suite.md`` and ``suite.json`` next to the per-scenario reports."""
    order = tuple(names) if names else SUITE_ORDER
    for n in order:
        get_scenario(n)  # unknown names fail before anything runs
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    root = out_dir or settings.run_dir / "reports" / f"suite-{stamp}"
    host = monitored_host(settings.collection)
    reports: list[DetectionReport] = []
    # The first scenario also starts on a quiet host: a host just out of warm-up may be alarming
    # on something real, and loading the plotting code reads the disk (seen: a disk-read burst as
    # the demo's suite began). If this call loaded it, only intervals begun after count.
    loaded_now = preload_plotting()
    since = time.time_ns() - (
        0 if loaded_now else int((QUIET_INTERVALS + 1) * settings.features.interval_s * 1e9)
    )
    echo(f"waiting until {host} is quiet before the first scenario")
    rest = rest_until_quiet(settings.influx, host, since, min_s=0.0, max_s=max_rest_s, echo=echo)
    not_before = rest.quiet_since_ns
    for i, n in enumerate(order, 1):
        echo(f"=== scenario {i}/{len(order)}: {n}")
        scenario = get_scenario(n)
        report = run_scenario(
            n,
            settings,
            duration_s=min(duration_s, scenario.max_duration_s) if duration_s else None,
            intensity=intensity,
            grace_s=grace_s,
            max_lag_s=max_lag_s,
            stop_on_detect=stop_on_detect and scenario.anomalous,
            not_before_ns=not_before,
            report_dir=root / n,
            echo=echo,
            rest_before=(rest.seconds, rest.quiet),
        )
        reports.append(report)
        if i < len(order):
            echo(
                f"resting at least {settle_s:g} s, until {host} is quiet, so the next scenario's alarms are its own"
            )
            rest = rest_until_quiet(
                settings.influx, host, time.time_ns(), min_s=settle_s, max_s=max_rest_s, echo=echo
            )
            not_before = rest.quiet_since_ns  # the previous load's tail is not the next one's false alarm
    root.mkdir(parents=True, exist_ok=True)
    (root / "suite.md").write_text("# Stress suite\n\n" + format_table(reports, markdown=True) + "\n")
    (root / "suite.json").write_text(json.dumps([r.to_dict() for r in reports], indent=2, default=str))
    echo(f"suite report: {root / 'suite.md'}")
    return reports
