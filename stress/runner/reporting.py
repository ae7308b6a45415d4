"""The report of a window: predictions and metrics read back from InfluxDB, analysed, written."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from stress.report import DetectionReport, Window, analyse, fetch_metrics, fetch_predictions, write_report
from stress.scenarios import Scenario
from vigil.influx import InfluxClient
from vigil.settings import FeatureSettings, InfluxSettings


def build_report(
    influx: InfluxSettings,
    features: FeatureSettings,
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
    client = client or InfluxClient(influx)
    interval_ns = int(features.interval_s * 1e9)
    predictions = fetch_predictions(
        client,
        influx.vigil_db,
        host,
        window.view_start_ns,
        window.view_end_ns,
        with_model_scores=True,
    )
    metrics = fetch_metrics(
        client,
        influx.raw_db,
        host,
        window.view_start_ns - interval_ns,
        window.view_end_ns,
        features.interval_s,
    )
    report = analyse(
        scenario=scenario.name,
        description=scenario.description,
        anomalous=scenario.anomalous,
        host=host,
        intensity=intensity,
        planned_duration_s=planned_duration_s or (window.end_ns - window.start_ns) / 1e9,
        window=window,
        interval_s=features.interval_s,
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
