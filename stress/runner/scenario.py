"""One scenario run: label its window, run the load, watch the detector, write the report."""

from __future__ import annotations

import contextlib
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from stress.load import LoadRun, ensure_target, make_tmp_dir, sigterm_as_interrupt
from stress.report import DetectionReport, Window
from stress.runner.reporting import build_report
from stress.runner.watch import (
    Echo,
    _Detected,
    _poll,
    _wait_for_predictions,
    _Watch,
    default_grace_s,
    default_max_lag_s,
    monitored_host,
)
from stress.scenarios import Scenario, check_run_args, get_scenario, plan_loads
from vigil import schema
from vigil.influx import InfluxClient, InfluxError
from vigil.settings import Settings


def _label_point(scenario: Scenario, host: str, label_id: str, start_ns: int, end_ns: int):
    return schema.LABELS.point(
        {"host": host, "kind": scenario.kind, "source": "stress", "label_id": label_id},
        {
            "end_ns": end_ns,
            "duration_s": (end_ns - start_ns) / 1e9,
            "severity": scenario.severity,
            "description": f"stress scenario {scenario.name}",
        },
        start_ns,
    )


def run_scenario(
    name: str,
    settings: Settings,
    *,
    duration_s: float | None = None,
    intensity: float | None = None,
    grace_s: float | None = None,
    lookback_s: float = 120.0,
    max_lag_s: float | None = None,
    wait_for_detection: bool = True,
    stop_on_detect: bool = False,
    not_before_ns: int | None = None,
    target_url: str | None = None,
    report_dir: Path | None = None,
    echo: Echo = print,
    progress_every_s: float = 10.0,
    rest_before: tuple[float, bool] | None = None,
) -> DetectionReport:
    """Run scenario ``name`` and return its report (files written to ``report_dir``).

    ``stop_on_detect`` ends the load as soon as an alarm is seen (the suite uses it to keep
    the demo short; the label then ends there too). ``not_before_ns`` clips the lookback so a
    suite does not count the previous scenario's tail as a false alarm; ``rest_before`` is the
    suite's rest before this run (seconds, whether the host was quiet at its end), for the
    report. Raises KeyboardInterrupt after writing the report if the run was interrupted.
    """
    scenario = get_scenario(name)
    duration, level = check_run_args(scenario, duration_s, intensity)
    grace = default_grace_s(settings.features) if grace_s is None else float(grace_s)
    max_lag = (
        default_max_lag_s(settings.features, settings.detector) if max_lag_s is None else float(max_lag_s)
    )
    host = monitored_host(settings.collection)
    client = InfluxClient(settings.influx)
    if settings.influx.create_databases:
        client.create_database(settings.influx.vigil_db)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out_dir = report_dir or settings.run_dir / "reports" / f"{stamp}-{scenario.name}"
    label_id = f"{scenario.name}-{stamp}" if scenario.anomalous else None
    watch = _Watch()
    interrupted = False
    load_summaries: list[dict[str, Any]] = []
    load_errors: list[str] = []
    start_ns = end_ns = time.time_ns()
    began = time.monotonic()
    tmp_dir = make_tmp_dir(settings.stress)
    echo(f"[{scenario.name}] host {host}, {duration:g} s at intensity {level:g}: {scenario.description}")

    with sigterm_as_interrupt():
        try:
            target_cm = (
                ensure_target(settings.stress, target_url)
                if scenario.needs_target
                else contextlib.nullcontext("")
            )
            with target_cm as url:
                specs = plan_loads(scenario, duration, level, target_url=url or "", tmp_dir=tmp_dir)
                start_ns = time.time_ns()
                began = time.monotonic()
                detect_end_ns = start_ns + int((duration + grace) * 1e9)
                if label_id:  # normal periods are not anomalies: they get no label
                    client.write_points(
                        settings.influx.vigil_db,
                        [_label_point(scenario, host, label_id, start_ns, start_ns + int(duration * 1e9))],
                    )
                with LoadRun(specs, tmp_dir, out_dir / "logs") as run:
                    echo(f"[{scenario.name}] load started: {run.describe()}")
                    last_poll = last_echo = 0.0

                    def tick(elapsed: float) -> None:
                        nonlocal last_poll, last_echo
                        if wait_for_detection and elapsed - last_poll >= settings.detector.poll_interval_s:
                            last_poll = elapsed
                            _poll(
                                client,
                                settings.influx,
                                settings.features,
                                host,
                                start_ns,
                                detect_end_ns,
                                began,
                                watch,
                            )
                            if stop_on_detect and watch.detected_at_s is not None:
                                raise _Detected
                        if elapsed - last_echo >= progress_every_s:
                            last_echo = elapsed
                            seen = "alarm seen" if watch.detected_at_s is not None else "no alarm yet"
                            echo(
                                f"[{scenario.name}] load {elapsed:.0f}/{duration:g} s, {len(run.alive())} running, {seen}"
                            )

                    with contextlib.suppress(_Detected):
                        run.wait(duration + 10.0, on_tick=tick, tick_s=0.5)
                    run.stop()
                    end_ns = time.time_ns()
                    load_summaries = run.summaries()
                    load_errors = run.errors()
        except KeyboardInterrupt:
            interrupted = True
            end_ns = time.time_ns()
            echo(f"[{scenario.name}] interrupted: load stopped, writing the report")
        finally:
            if label_id and end_ns > start_ns:
                with contextlib.suppress(InfluxError):
                    client.write_points(
                        settings.influx.vigil_db, [_label_point(scenario, host, label_id, start_ns, end_ns)]
                    )
        echo(f"[{scenario.name}] load ended after {(end_ns - start_ns) / 1e9:.1f} s")

        window = Window(start_ns, end_ns, grace, lookback_s)
        if not_before_ns is not None:
            window = Window(
                start_ns, end_ns, grace, max(0.0, min(lookback_s, (start_ns - not_before_ns) / 1e9))
            )
        if wait_for_detection and not interrupted:
            try:
                _wait_for_predictions(client, settings, scenario, host, window, began, watch, max_lag, echo)
            except KeyboardInterrupt:
                interrupted = True

    report = build_report(
        settings.influx,
        settings.features,
        scenario,
        host,
        window,
        out_dir,
        intensity=level,
        planned_duration_s=duration,
        label_id=label_id,
        wall_clock_detect_s=watch.detected_at_s,
        load=load_summaries,
        load_errors=load_errors,
        interrupted=interrupted,
        client=client,
        rest_before=rest_before,
    )
    echo(f"[{scenario.name}] {report.outcome}: report {report.files['markdown']}")
    if interrupted:
        raise KeyboardInterrupt
    return report
