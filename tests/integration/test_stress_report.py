"""Detection reports built from real predictions and metrics written into a real InfluxDB."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import matplotlib.image
import pytest
import requests
from click.testing import CliRunner

from stress.cli import stress
from stress.report import Window
from stress.runner import (
    QUIET_INTERVALS,
    alarm_summary,
    build_report,
    format_table,
    quiet_since,
    rest_until_quiet,
    run_scenario,
)
from stress.scenarios import SCENARIO_NAMES, get_scenario
from vigil import schema
from vigil.influx import InfluxClient, quote_ident
from vigil.lineprotocol import Point
from vigil.processes import free_port
from vigil.settings import Settings

HOST = "stress-report-host"
S = 10**9
INTERVAL = 10


def _settings(settings: Settings, db: str, **extra) -> Settings:
    return settings.model_copy(
        update={
            "influx_vigil_db": db,
            "influx_raw_db": db,
            "hostname": HOST,
            "feature_interval_s": INTERVAL,
            **extra,
        }
    )


def _window_start() -> int:
    now = time.time_ns()
    return now - now % (INTERVAL * S) - 10 * 60 * S  # ten minutes ago, on an interval boundary


def _write_history(
    influx: InfluxClient, db: str, start_ns: int, alarms: dict[int, float], busy: range
) -> None:
    """Raw cpu/mem points and combined + online predictions every interval from 2 min before to 2 min after.

    ``alarms``: offset (s from window start) -> score of an alarmed interval. ``busy``: offsets where
    the CPU is loaded (so the plot has something to show).
    """
    points: list[Point] = []
    for offset in range(-120, 120, INTERVAL):
        t = start_ns + offset * S
        cpu_busy = 90.0 if offset in busy else 8.0
        points.append(
            Point(
                schema.RAW_CPU, {"host": HOST, "cpu": schema.CPU_TOTAL_TAG}, {"usage_idle": 100 - cpu_busy}, t
            )
        )
        points.append(Point(schema.RAW_MEM, {"host": HOST}, {"used_percent": 31.0}, t))
        alarm = offset in alarms
        score = alarms.get(offset, 0.2)
        for source in ("combined", "online"):
            fields = {"score": score, "threshold": 0.5, "is_anomaly": int(alarm), "warmup": 0}
            if alarm:
                fields |= {
                    "top1_feature": "cpu_busy_z",
                    "top1_contribution": 0.7,
                    "top2_feature": "load_per_cpu_z",
                    "top2_contribution": 0.2,
                }
            tags = {"host": HOST, "model": "vigil-anomaly", "version": "3", "source": source}
            points.append(schema.PREDICTIONS.point(tags, fields, t))
    # Another host's alarm in the window must not count for ours.
    points.append(
        schema.PREDICTIONS.point(
            {"host": "other-host", "model": "m", "version": "1", "source": "combined"},
            {"score": 5.0, "threshold": 0.5, "is_anomaly": 1},
            start_ns + 10 * S,
        )
    )
    influx.write_points(db, points)


def _report(settings: Settings, name: str, start_ns: int, out: Path):
    window = Window(start_ns, start_ns + 60 * S, grace_s=30, lookback_s=100)
    return build_report(
        settings.influx, settings.features, get_scenario(name), HOST, window, out, intensity=0.5
    )


def test_report_detected(settings: Settings, fresh_db: str, influx: InfluxClient, tmp_path: Path) -> None:
    start = _window_start()
    # A false alarm 60 s before, two alarms in the window (the later one the peak).
    _write_history(influx, fresh_db, start, alarms={-60: 0.8, 20: 0.9, 30: 0.95}, busy=range(0, 60))
    report = _report(_settings(settings, fresh_db), "cpu_spike", start, tmp_path)

    assert report.outcome == "detected" and report.passed
    assert report.time_to_detect_s == 30.0  # first alarmed interval starts at +20 s and ends at +30 s
    assert report.alarms_in_window == 2
    assert report.peak_score == 0.95 and report.threshold_at_peak == 0.5
    assert report.false_alarms == 1
    assert report.top_features[0] == {"feature": "cpu_busy_z", "alarms": 2, "total_contribution": 1.4}
    assert report.top_features[1]["feature"] == "load_per_cpu_z"
    assert report.predictions_in_window == 9  # intervals from +0 to +80 s (window + 30 s grace)
    assert report.own_metric_alarms == 2  # cpu_busy_z is one of cpu_spike's metrics
    # The same alarms judged for a memory scenario name none of its metrics: the tail of some
    # other load, which the suite's table shows as 0/2.
    other = _report(_settings(settings, fresh_db), "memory_leak", start, tmp_path / "memory")
    assert other.detected and other.own_metric_alarms == 0
    assert "0/2" in format_table([other])

    md = Path(report.files["markdown"]).read_text()
    assert "DETECTED — first alarm 30 s after the window started" in md
    assert "`cpu_busy_z`" in md and "![affected metrics" in md
    data = json.loads(Path(report.files["json"]).read_text())
    assert data["outcome"] == "detected" and data["time_to_detect_s"] == 30.0 and data["false_alarms"] == 1
    image = matplotlib.image.imread(report.files["plot"])
    # Panels: cpu_busy and load_per_cpu have data? only cpu_busy here (no system points) + the score panel.
    assert image.shape[0] > 300 and image.shape[1] > 600


def test_report_not_detected(settings: Settings, fresh_db: str, influx: InfluxClient, tmp_path: Path) -> None:
    start = _window_start()
    _write_history(influx, fresh_db, start, alarms={}, busy=range(0, 60))
    report = _report(_settings(settings, fresh_db), "cpu_spike", start, tmp_path)

    assert report.outcome == "missed" and not report.passed
    assert report.time_to_detect_s is None and report.first_alarm is None
    assert report.peak_score == 0.2 and report.false_alarms == 0 and report.top_features == []
    md = Path(report.files["markdown"]).read_text()
    assert "NOT DETECTED" in md and "no driving features" in md
    assert json.loads(Path(report.files["json"]).read_text())["detected"] is False
    assert Path(report.files["plot"]).stat().st_size > 10_000


def test_report_normal_period_alarm_is_a_false_alarm(
    settings: Settings, fresh_db: str, influx: InfluxClient, tmp_path: Path
) -> None:
    start = _window_start()
    _write_history(influx, fresh_db, start, alarms={40: 0.7}, busy=range(0, 0))
    s = _settings(settings, fresh_db)
    noisy = _report(s, "normal_busy_period", start, tmp_path / "noisy")
    assert noisy.outcome == "false_alarm" and not noisy.passed
    assert "FALSE ALARM" in Path(noisy.files["markdown"]).read_text()
    # The same data seen as a window 3 min later: no alarm inside, but the earlier one counts as false.
    later = _report(s, "normal_busy_period", start + 100 * S, tmp_path / "later")
    assert later.outcome == "quiet" and later.false_alarms == 1 and not later.passed


def test_report_without_predictions_says_so(settings: Settings, fresh_db: str, tmp_path: Path) -> None:
    report = _report(_settings(settings, fresh_db), "memory_leak", _window_start(), tmp_path)
    assert report.outcome == "no_data" and not report.passed
    assert "is the detector running" in Path(report.files["markdown"]).read_text()
    assert Path(report.files["plot"]).exists()


def test_run_scenario_sees_the_alarm_and_stops_the_load(
    settings: Settings, fresh_db: str, influx: InfluxClient, tmp_path: Path
) -> None:
    """End to end with a stand-in for the detector: a thread writing real predictions for the window."""
    s = _settings(settings, fresh_db, poll_interval_s=0.5, target_port=free_port())
    stop = threading.Event()

    def flood_arrived() -> bool:
        try:
            stats = requests.get(f"http://127.0.0.1:{s.stress.target_port}/stats", timeout=1).json()
        except requests.RequestException:
            return False
        return any(path.startswith("/api/") for path in stats["requests"])

    def fake_detector() -> None:
        """Scores the current interval every 0.3 s; alarms once the flood reaches the target app."""
        alarm = False
        while not stop.is_set():
            now = time.time_ns()
            t = now - now % (INTERVAL * S)
            alarm = alarm or flood_arrived()
            fields = {"score": 0.9 if alarm else 0.1, "threshold": 0.5, "is_anomaly": int(alarm)}
            if alarm:
                fields |= {"top1_feature": "net_rx_z", "top1_contribution": 0.8}
            tags = {"host": HOST, "model": "m", "version": "1", "source": "combined"}
            influx.write_points(fresh_db, [schema.PREDICTIONS.point(tags, fields, t)])
            stop.wait(0.3)

    thread = threading.Thread(target=fake_detector, daemon=True)
    thread.start()
    lines: list[str] = []
    t0 = time.monotonic()
    try:
        report = run_scenario(
            "http_flood",
            s,
            duration_s=40,
            intensity=0.02,
            grace_s=5,
            max_lag_s=5,
            stop_on_detect=True,
            report_dir=tmp_path / "run",
            echo=lines.append,
        )
    finally:
        stop.set()
        thread.join()
    took = time.monotonic() - t0

    assert report.outcome == "detected" and report.passed, lines
    assert report.duration_s < 15 and took < 35  # the 40 s load was ended by the alarm
    assert report.wall_clock_detect_s is not None and report.wall_clock_detect_s < 10
    assert report.top_features[0]["feature"] == "net_rx_z"
    assert report.load and report.load[0]["kind"] == "http" and report.load[0]["requests"] > 0
    assert any("load started" in ln for ln in lines)
    labels = influx.query_df(fresh_db, f"SELECT * FROM {quote_ident(schema.LABELS.name)}")
    assert len(labels) == 1 and labels["kind"].iloc[0] == "flood"
    assert labels["label_id"].iloc[0] == report.label_id
    assert labels["duration_s"].iloc[0] == pytest.approx(report.duration_s, abs=0.05)
    assert Path(report.files["markdown"]).exists() and Path(report.files["plot"]).exists()

    table = format_table([report])
    assert "http_flood" in table and "detected" in table


def test_cli_list_names_every_scenario() -> None:
    result = CliRunner().invoke(stress, ["list"])
    assert result.exit_code == 0
    for name in SCENARIO_NAMES:
        assert name in result.output
    assert "no alarm" in result.output


def test_cli_run_rejects_bad_intensity() -> None:
    result = CliRunner().invoke(stress, ["run", "cpu_spike", "--intensity", "3"])
    assert result.exit_code == 2 and "intensity must be in (0, 1]" in result.output


def test_the_suite_rests_until_the_host_is_quiet(
    settings: Settings, fresh_db: str, influx: InfluxClient, tmp_path: Path
) -> None:
    """The rest between scenarios ends once the newest intervals after the last load have no
    alarm; a host that keeps alarming ends it at the cap, and the next report says so."""
    start = _window_start()
    s = _settings(settings, fresh_db)
    since = start + 90 * S  # the last three intervals written begin at +90, +100 and +110 s
    _write_history(influx, fresh_db, start, alarms={90: 0.9}, busy=range(0, 0))
    assert (
        QUIET_INTERVALS == 2 and quiet_since(influx, s.influx, HOST, since) == start + 100 * S
    )  # +100, +110
    assert quiet_since(influx, s.influx, HOST, start + 110 * S) is None  # only one interval since then
    assert quiet_since(influx, s.influx, "no-such-host", since) is None  # no predictions is not "quiet"
    lines: list[str] = []
    rest = rest_until_quiet(s.influx, HOST, since, min_s=0.0, max_s=5.0, echo=lines.append)
    assert rest.quiet and rest.quiet_since_ns == start + 100 * S  # the next lookback starts there
    assert "quiet again" in lines[-1]

    influx.write_points(
        fresh_db,
        [
            schema.PREDICTIONS.point(
                {"host": HOST, "model": "vigil-anomaly", "version": "3", "source": "combined"},
                {
                    "score": 0.9,
                    "threshold": 0.5,
                    "is_anomaly": 1,
                    "top1_feature": "net_rx_vol",
                    "top1_contribution": 0.4,
                },
                start + 110 * S,
            )
        ],
    )
    assert quiet_since(influx, s.influx, HOST, since) is None  # the newest interval alarms
    # what keeps it alarming is named in the rest's progress lines
    assert (
        alarm_summary(influx, s.influx, HOST, start + 100 * S)
        == "; 1 alarmed interval(s) since, naming net_rx_vol x1"
    )
    assert alarm_summary(influx, s.influx, HOST, start + 120 * S) == ""
    began = time.monotonic()
    rest = rest_until_quiet(s.influx, HOST, since, min_s=0.0, max_s=1.0, echo=lines.append)
    rested, quiet = rest.seconds, rest.quiet
    assert (
        quiet is False
        and 1.0 <= rested < 1.0 + s.detector.poll_interval_s + 2
        and time.monotonic() - began < 10
    )
    assert "still alarming" in lines[-1]
    report = build_report(
        s.influx,
        s.features,
        get_scenario("cpu_spike"),
        HOST,
        Window(start, start + 60 * S, grace_s=30, lookback_s=100),
        tmp_path,
        intensity=1.0,
        rest_before=(rested, quiet),
    )
    assert report.quiet_before is False and "(not quiet)" in format_table([report])
    assert "NOT quiet" in Path(report.files["markdown"]).read_text()
