"""validate: a Great Expectations 1.x suite, built in code, that a dataset must pass before training.

Checks (each one expectation, so a failure names exactly what is wrong):

* columns: exactly :data:`pipelines.common.DATASET_COLUMNS`; types: features float64, label and
  warmup int64, host strings, time timestamps;
* nulls: host and time never null, each feature at most ``max_null_rate`` null;
* ranges: every feature (z, zmean and the standardised vol) within the baseline's cap
  (±``BaselineConfig.z_cap``), label and warmup in {0, 1};
* row count between ``min_rows`` and ``max_rows``;
* freshness: newest row no older than ``max_age`` before ``now``;
* label rate (mean of label) within ``label_rate_bounds`` — **only where there are labels**: a
  window without any labelled anomaly is what a real fleet looks like and trains label-free
  (``docs/pipelines.md#labels-optional``), so the check is skipped and the report says so; where
  labels exist, too many of them means the "anomalies" are the normal and is still an error;
* no duplicated (host, time).

A failure raises :class:`DataValidationError` listing each failed expectation with its observed
value; the full GX result is written as JSON either way (and logged to MLflow when a run exists).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from pipelines.common import (
    DATASET_COLUMNS,
    LABEL_COLUMN,
    LABEL_SOURCE_COLUMN,
    PipelineError,
    default_out_dir,
    parse_time,
    read_dataset,
    write_json,
)
from vigil.errors import BadDataError
from vigil.features import FEATURE_COLUMNS, BaselineConfig
from vigil.settings import MlflowSettings, Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ValidationConfig:
    min_rows: int = 1000
    max_rows: int = 50_000_000
    max_null_rate: float = 0.01
    max_age: timedelta = timedelta(days=2)
    label_rate_bounds: tuple[float, float] = (0.0005, 0.2)


@dataclass
class FailedExpectation:
    expectation: str
    column: str | None
    observed: Any
    details: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        where = f" on {self.column!r}" if self.column else ""
        extra = ", ".join(f"{k}={v}" for k, v in self.details.items())
        return f"{self.expectation}{where}: observed {self.observed!r}" + (f" ({extra})" if extra else "")


@dataclass
class ValidationReport:
    success: bool
    dataset: str
    evaluated: int
    failures: list[FailedExpectation]
    json_path: Path
    skipped: list[str] = field(default_factory=list)  # expectations left out, and why


class DataValidationError(PipelineError, BadDataError):
    """The dataset failed its expectations; ``report`` holds every failure."""

    def __init__(self, report: ValidationReport) -> None:
        lines = "\n".join(f"  - {f.describe()}" for f in report.failures)
        super().__init__(
            f"{report.dataset}: {len(report.failures)} of {report.evaluated} expectations failed "
            f"(full result: {report.json_path}):\n{lines}"
        )
        self.report = report


def build_expectations(config: ValidationConfig, now: pd.Timestamp, labelled: bool = True) -> list[Any]:
    """The suite's expectations (built in code: reviewed like code, versioned with it).

    ``labelled=False`` (no row has ``label=1``) leaves out the label-rate expectation.
    """
    import great_expectations as gx

    E = gx.expectations
    cap = BaselineConfig().z_cap
    exps: list[Any] = [
        E.ExpectTableColumnsToMatchSet(column_set=list(DATASET_COLUMNS), exact_match=True),
        E.ExpectTableRowCountToBeBetween(min_value=config.min_rows, max_value=config.max_rows),
        E.ExpectCompoundColumnsToBeUnique(column_list=["host", "time"]),
        E.ExpectColumnValuesToNotBeNull(column="host"),
        E.ExpectColumnValuesToNotBeNull(column="time"),
        E.ExpectColumnValuesToBeOfType(column="host", type_="str"),
        E.ExpectColumnValuesToBeOfType(column="time", type_="Timestamp"),  # tz-aware pandas timestamps
        E.ExpectColumnMaxToBeBetween(column="time", min_value=now - pd.Timedelta(config.max_age)),
        E.ExpectColumnValuesToBeOfType(column=LABEL_COLUMN, type_="int64"),
        E.ExpectColumnValuesToBeInSet(column=LABEL_COLUMN, value_set=[0, 1]),
        E.ExpectColumnValuesToBeOfType(column="warmup", type_="int64"),
        E.ExpectColumnValuesToBeInSet(column="warmup", value_set=[0, 1]),
        E.ExpectColumnValuesToBeOfType(column=LABEL_SOURCE_COLUMN, type_="str"),
    ]
    if labelled:
        exps.append(
            E.ExpectColumnMeanToBeBetween(
                column=LABEL_COLUMN,
                min_value=config.label_rate_bounds[0],
                max_value=config.label_rate_bounds[1],
            )
        )
    for col in FEATURE_COLUMNS:
        exps += [
            E.ExpectColumnValuesToBeOfType(column=col, type_="float64"),
            E.ExpectColumnValuesToNotBeNull(column=col, mostly=1.0 - config.max_null_rate),
            E.ExpectColumnValuesToBeBetween(column=col, min_value=-cap, max_value=cap),
        ]
    return exps


def _failure(result: Any) -> FailedExpectation:
    cfg = result.expectation_config
    res = result.result or {}
    observed = res.get("observed_value")
    details: dict[str, Any] = {}
    for key in ("unexpected_count", "unexpected_percent", "partial_unexpected_list"):
        if res.get(key) not in (None, [], 0):
            details[key] = res[key] if key != "partial_unexpected_list" else res[key][:5]
    if observed is None and "unexpected_percent" in res:
        observed = f"{res.get('unexpected_count')} unexpected rows ({res['unexpected_percent']:.2f}%)"
    if res.get("details"):
        details["details"] = res["details"]
    if result.exception_info and result.exception_info.get("raised_exception"):
        details["exception"] = result.exception_info.get("exception_message")
    kwargs = cfg.kwargs or {}
    column = kwargs.get("column") or (",".join(kwargs["column_list"]) if kwargs.get("column_list") else None)
    return FailedExpectation(cfg.type, column, observed, details)


def validate(
    settings: Settings,
    dataset_path: str | Path,
    *,
    config: ValidationConfig | None = None,
    now: object | None = None,
    out_path: Path | None = None,
    run_id: str | None = None,
    raise_on_failure: bool = True,
) -> ValidationReport:
    """Run the suite on ``dataset_path``; save the GX result JSON; raise on failure (by default).

    ``run_id`` (or an active MLflow run) receives the JSON as an artifact and a
    ``validation_success`` metric.
    """
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx

    config = config or ValidationConfig()
    now_ts = parse_time(now) if now is not None else pd.Timestamp.now(tz="UTC")
    frame = read_dataset(dataset_path)
    ctx = gx.get_context(mode="ephemeral")
    asset = ctx.data_sources.add_pandas("vigil").add_dataframe_asset("features")
    batch = asset.add_batch_definition_whole_dataframe("all")
    suite = ctx.suites.add(gx.ExpectationSuite(name="vigil_features"))
    labelled = LABEL_COLUMN in frame.columns and bool(
        (pd.to_numeric(frame[LABEL_COLUMN], errors="coerce") == 1).any()
    )
    skipped = (
        [] if labelled else ["expect_column_mean_to_be_between on 'label': no labelled anomaly (label-free)"]
    )
    for exp in build_expectations(config, now_ts, labelled):
        suite.add_expectation(exp)
    definition = ctx.validation_definitions.add(
        gx.ValidationDefinition(name="vigil_features", data=batch, suite=suite)
    )
    log.info("validate: %d expectations on %s (%d rows)", len(suite.expectations), dataset_path, len(frame))
    result = definition.run(batch_parameters={"dataframe": frame})
    failures = [_failure(r) for r in result.results if not r.success]
    json_path = Path(out_path or default_out_dir(settings) / "validation" / f"{Path(dataset_path).stem}.json")
    write_json(json_path, result.to_json_dict())
    report = ValidationReport(
        bool(result.success), str(dataset_path), len(result.results), failures, json_path, skipped
    )
    for why in skipped:
        log.info("validate: skipped %s", why)
    _log_to_mlflow(settings.mlflow, report, run_id)
    if not report.success:
        log.warning("validate: %d failed expectation(s)", len(failures))
        if raise_on_failure:
            raise DataValidationError(report)
    return report


def _log_to_mlflow(registry: MlflowSettings, report: ValidationReport, run_id: str | None) -> None:
    import mlflow

    active = mlflow.active_run()
    if run_id is None and active is None:
        return
    if run_id is None:
        mlflow.log_artifact(str(report.json_path), artifact_path="validation")
        mlflow.log_metric("validation_success", float(report.success))
        mlflow.set_tag("vigil.validation", "passed" if report.success else "failed")
        return
    from pipelines.common import mlflow_client

    client = mlflow_client(registry)
    client.log_artifact(run_id, str(report.json_path), artifact_path="validation")
    client.log_metric(run_id, "validation_success", float(report.success))
    client.set_tag(run_id, "vigil.validation", "passed" if report.success else "failed")


def report_from_json(path: str | Path) -> bool:
    """Whether a saved GX result JSON passed (what ``register`` records as the validation status)."""
    import json

    return bool(json.loads(Path(path).read_text()).get("success"))
