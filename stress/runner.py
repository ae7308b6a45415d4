"""Run one scenario (or the suite) against any Vigil deployment described by a ``Settings``.

``run_scenario``: write the ground-truth window to ``vigil_labels``, run the load
as child processes, poll the detector's combined predictions for this host while
the load runs and for a grace period after, then write the report (Markdown,
JSON, PNG). Ctrl-C or SIGTERM stop the load at once, shorten the label to what
really ran, and still write the report.

Which host: the collector tags points with ``settings.collection.hostname`` or the machine's
name, and the loads run on this machine, so that is the host whose predictions
are read and whose window is labelled.
"""

from __future__ import annotations

import contextlib
import json
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from stress.load import LoadRun, ensure_target, make_tmp_dir, sigterm_as_interrupt
from stress.report import (
    DetectionReport,
    Window,
    analyse,
    combined_of,
    fetch_metrics,
    fetch_predictions,
    preload_plotting,
    top_features,
    write_report,
)
from stress.scenarios import SCENARIO_NAMES, Scenario, check_run_args, get_scenario, plan_loads
from vigil import schema
from vigil.influx import InfluxClient, InfluxError
from vigil.settings import Settings

Echo = Callable[[str], None]

#: Suite order: the false-positive check first, on a quiet machine, then the anomalies.
SUITE_ORDER: tuple[str, ...] = ("normal_busy_period",) + tuple(
    n for n in SCENARIO_NAMES if n != "normal_busy_period"
)


def monitored_host(settings: Settings) -> str:
    """The host tag the collector writes for this machine."""
    return settings.collection.hostname or socket.gethostname()


def default_grace_s(settings: Settings) -> float:
    """Alarms this long after the load still count: three intervals, at least 30 s."""
    return max(30.0, 3.0 * settings.features.interval_s)


def default_max_lag_s(settings: Settings) -> float:
    """How long to wait past the grace for the detector's predictions to arrive."""
    return settings.features.interval_s + settings.detector.allowed_lateness_s + 2 * settings.detector.poll_interval_s


@dataclass
class _Watch:
    """What the runner's polls have seen so far."""

    detected_at_s: float | None = None  # seconds since the window start when first seen
    covered_until_ns: int | None = None


def _poll(
    client: InfluxClient,
    settings: Settings,
    host: str,
    start_ns: int,
    detect_end_ns: int,
    began: float,
    watch: _Watch,
) -> None:
    """One poll of the combined predictions since the window start; updates ``watch``."""
    interval_ns = int(settings.features.interval_s * 1e9)
    try:
        frame = combined_of(
            fetch_predictions(
                client, settings.influx.vigil_db, host, start_ns - interval_ns, detect_end_ns + 3600 * 10**9
            )
        )
    except InfluxError:
        return  # InfluxDB hiccup: the next poll tries again, the final report re-reads everything
    if frame.empty:
        return
    t_ns = frame["time"].astype("int64")
    watch.covered_until_ns = int(t_ns.max())
    hits = frame[(frame["is_anomaly"] == 1) & (t_ns + interval_ns > start_ns) & (t_ns < detect_end_ns)]
    if not hits.empty and watch.detected_at_s is None:
        watch.detected_at_s = time.monotonic() - began


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
    grace = default_grace_s(settings) if grace_s is None else float(grace_s)
    max_lag = default_max_lag_s(settings) if max_lag_s is None else float(max_lag_s)
    host = monitored_host(settings)
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
    tmp_dir = make_tmp_dir(settings)
    echo(f"[{scenario.name}] host {host}, {duration:g} s at intensity {level:g}: {scenario.description}")

    with sigterm_as_interrupt():
        try:
            target_cm = (
                ensure_target(settings, target_url) if scenario.needs_target else contextlib.nullcontext("")
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
                            _poll(client, settings, host, start_ns, detect_end_ns, began, watch)
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
        settings,
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


def build_report(
    settings: Settings,
    scenario: Scenario,
    host: str,
    window: Window,
    out_dir: Path,
    *,
    intensity: float,
    planned_duration_s: float | None = None,
    label_id: str | None = None,
    wall_clock_detect_s: float | None = None,
    load: list[dict[str, Any]] | None = None,
    load_errors: list[str] | None = None,
    interrupted: bool = False,
    client: InfluxClient | None = None,
    rest_before: tuple[float, bool] | None = None,
) -> DetectionReport:
    """Read predictions and metrics of ``window`` from InfluxDB and write the report files.

    Usable on its own to rebuild the report of any past window (labels say where they are).
    """
    client = client or InfluxClient(settings.influx)
    interval_ns = int(settings.features.interval_s * 1e9)
    predictions = fetch_predictions(
        client,
        settings.influx.vigil_db,
        host,
        window.view_start_ns,
        window.view_end_ns,
        with_model_scores=True,
    )
    metrics = fetch_metrics(
        client,
        settings.influx.raw_db,
        host,
        window.view_start_ns - interval_ns,
        window.view_end_ns,
        settings.features.interval_s,
    )
    report = analyse(
        scenario=scenario.name,
        description=scenario.description,
        anomalous=scenario.anomalous,
        host=host,
        intensity=intensity,
        planned_duration_s=planned_duration_s or (window.end_ns - window.start_ns) / 1e9,
        window=window,
        interval_s=settings.features.interval_s,
        predictions=predictions,
        label_id=label_id,
        wall_clock_detect_s=wall_clock_detect_s,
        load=load,
        load_errors=load_errors,
        interrupted=interrupted,
        metrics=scenario.metrics,
        rest_before=rest_before,
    )
    return write_report(out_dir, report, window, predictions, metrics, scenario.metrics)


class _Detected(Exception):
    """Raised inside the load wait to end it early (``stop_on_detect``)."""


def _wait_for_predictions(
    client: InfluxClient,
    settings: Settings,
    scenario: Scenario,
    host: str,
    window: Window,
    began: float,
    watch: _Watch,
    max_lag_s: float,
    echo: Echo,
) -> None:
    """Poll until the predictions cover the grace period (or, for an anomaly, an alarm is seen
    and the predictions reach the window's end), giving up ``max_lag_s`` after the grace."""
    interval_ns = int(settings.features.interval_s * 1e9)
    give_up = time.time() + (window.detect_end_ns - time.time_ns()) / 1e9 + max_lag_s
    last_echo = 0.0
    while True:
        _poll(client, settings, host, window.start_ns, window.detect_end_ns, began, watch)
        covered = watch.covered_until_ns
        if covered is not None and covered + interval_ns >= window.detect_end_ns:
            return
        if (
            scenario.anomalous
            and watch.detected_at_s is not None
            and covered is not None
            and covered + interval_ns >= window.end_ns
        ):
            return
        if time.time() >= give_up:
            seen = pd.Timestamp(covered, unit="ns", tz="UTC").isoformat() if covered else "nothing"
            echo(f"[{scenario.name}] stopped waiting: predictions cover until {seen}")
            return
        if time.monotonic() - last_echo >= 10:
            last_echo = time.monotonic()
            left = give_up - time.time()
            state = "alarm seen" if watch.detected_at_s is not None else "no alarm yet"
            echo(f"[{scenario.name}] waiting for the detector ({state}, at most {left:.0f} s more)")
        time.sleep(min(settings.detector.poll_interval_s, max(0.2, give_up - time.time())))


# --- the suite -------------------------------------------------------------------------------------------


#: The suite's rest ends when this many of the detector's newest intervals, all begun after the
#: previous load ended, have no alarm: the next scenario then starts from a quiet host, and
#: its alarms are its own (the features' short window keeps a load's trace for a minute).
QUIET_INTERVALS = 2
#: ...but a rest never lasts longer than this; a scenario that starts on a host still alarming
#: says so in its report (``quiet_before``).
MAX_REST_S = 150.0


def _combined_since(
    client: InfluxClient, settings: Settings, host: str, since_ns: int
) -> pd.DataFrame | None:
    """The detector's combined predictions of ``host`` from ``since_ns`` on (None if unreadable)."""
    try:
        return combined_of(
            fetch_predictions(client, settings.influx.vigil_db, host, since_ns, time.time_ns() + 60 * 10**9)
        )
    except InfluxError:
        return None


def quiet_since(client: InfluxClient, settings: Settings, host: str, since_ns: int) -> int | None:
    """Start (ns) of the oldest of the detector's last :data:`QUIET_INTERVALS` combined intervals
    of ``host`` begun at or after ``since_ns``, if those exist and none alarms; else None."""
    frame = _combined_since(client, settings, host, since_ns)
    if frame is None:
        return None
    recent = frame.tail(QUIET_INTERVALS)
    if len(recent) < QUIET_INTERVALS or (recent["is_anomaly"] == 1).any():
        return None
    return int(recent["time"].astype("int64").iloc[0])


@dataclass(frozen=True)
class Rest:
    """How a rest between two scenarios ended."""

    seconds: float
    quiet: bool
    quiet_since_ns: int  # where the host's quiet began (the rest's end if it never was quiet)


def rest_until_quiet(
    settings: Settings,
    host: str,
    since_ns: int,
    *,
    min_s: float,
    max_s: float = MAX_REST_S,
    echo: Echo = print,
    client: InfluxClient | None = None,
) -> Rest:
    """Rest at least ``min_s``, then until the host is quiet (:func:`quiet_since`), at most ``max_s``.

    Why not a fixed rest: how long a load's trace keeps a host alarming depends on the load; a
    fixed 10 s let a scenario be "detected" on the previous one's tail (seen: memory_leak
    flagged on ``cpu_busy_vol`` 3 s in). The next scenario's lookback for false alarms starts
    where the quiet began, so the previous tail is not counted against it.
    """
    client = client or InfluxClient(settings.influx)
    began = time.monotonic()
    last_echo = began
    time.sleep(min_s)
    while True:
        rested = time.monotonic() - began
        since = quiet_since(client, settings, host, since_ns)
        if since is not None:
            echo(f"rested {rested:.0f} s: the detector sees {host} quiet again")
            return Rest(rested, True, since)
        if rested >= max_s:
            echo(f"rested {rested:.0f} s: {host} still alarming (or not scored yet), starting anyway")
            return Rest(rested, False, time.time_ns())
        if time.monotonic() - last_echo >= 10:
            last_echo = time.monotonic()
            echo(
                f"resting until {host} is quiet again ({rested:.0f}/{max_s:g} s)"
                + alarm_summary(client, settings, host, since_ns)
            )
        time.sleep(min(1.0, max(0.2, max_s - rested)))  # a cheap query; 1 s keeps the rest tight


def alarm_summary(client: InfluxClient, settings: Settings, host: str, since_ns: int) -> str:
    """``"; 3 alarms since, naming net_rx_vol x3, ..."`` for a rest's progress line ("" if none).

    Why: a rest that never ends must say what keeps the host alarming, in the log people read
    (the suite's reports only look at each scenario's own window)."""
    frame = _combined_since(client, settings, host, since_ns)
    if frame is None:
        return ""
    alarms = frame[frame["is_anomaly"] == 1] if not frame.empty else frame
    if alarms.empty:
        return ""
    named = ", ".join(f"{f['feature']} x{f['alarms']}" for f in top_features(alarms))
    return f"; {len(alarms)} alarmed interval(s) since, naming {named or 'no feature'}"


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
    host = monitored_host(settings)
    reports: list[DetectionReport] = []
    # The first scenario also starts on a quiet host: a host just out of warm-up may be alarming
    # on something real, and loading the plotting code reads the disk (seen: a disk-read burst as
    # the demo's suite began). If this call loaded it, only intervals begun after count.
    loaded_now = preload_plotting()
    since = time.time_ns() - (
        0 if loaded_now else int((QUIET_INTERVALS + 1) * settings.features.interval_s * 1e9)
    )
    echo(f"waiting until {host} is quiet before the first scenario")
    rest = rest_until_quiet(settings, host, since, min_s=0.0, max_s=max_rest_s, echo=echo)
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
                settings, host, time.time_ns(), min_s=settle_s, max_s=max_rest_s, echo=echo
            )
            not_before = rest.quiet_since_ns  # the previous load's tail is not the next one's false alarm
    root.mkdir(parents=True, exist_ok=True)
    (root / "suite.md").write_text("# Stress suite\n\n" + format_table(reports, markdown=True) + "\n")
    (root / "suite.json").write_text(json.dumps([r.to_dict() for r in reports], indent=2, default=str))
    echo(f"suite report: {root / 'suite.md'}")
    return reports


SUITE_COLUMNS = (
    "scenario",
    "expected",
    "outcome",
    "pass",
    "time to detect s",
    "peak score",
    "false alarms",
    "alarmed after load",
    "top feature",
    "own-metric alarms",
    "rest before s",
)


def table_rows(reports: list[DetectionReport]) -> list[tuple[str, ...]]:
    rows = []
    for r in reports:
        ttd = f"{r.time_to_detect_s:g}" if r.time_to_detect_s is not None and r.anomalous else "—"
        peak = f"{r.peak_score:.3g}" if r.peak_score is not None else "—"
        top = r.top_features[0]["feature"] if r.top_features else "—"
        expected = "alarm" if r.anomalous else "no alarm"
        own = f"{r.own_metric_alarms}/{r.alarms_in_window}" if r.alarms_in_window else "—"
        rest = (
            "—"
            if r.rest_before_s is None
            else f"{r.rest_before_s:g}" + ("" if r.quiet_before else " (not quiet)")
        )
        rows.append(
            (
                r.scenario,
                expected,
                r.outcome,
                "yes" if r.passed else "NO",
                ttd,
                peak,
                str(r.false_alarms),
                f"{r.alarmed_after_end}/{len(r.after_end)}" if r.after_end else "—",
                top,
                own,
                rest,
            )
        )
    return rows


def format_table(reports: list[DetectionReport], markdown: bool = False) -> str:
    rows = table_rows(reports)
    if markdown:
        out = ["| " + " | ".join(SUITE_COLUMNS) + " |", "|" + " --- |" * len(SUITE_COLUMNS)]
        out += ["| " + " | ".join(row) + " |" for row in rows]
        return "\n".join(out)
    widths = [
        max(len(c), *(len(r[i]) for r in rows)) if rows else len(c) for i, c in enumerate(SUITE_COLUMNS)
    ]
    line = "  ".join(c.ljust(w) for c, w in zip(SUITE_COLUMNS, widths, strict=True))
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(out)


# --- Airflow --------------------------------------------------------------------------------------------


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
