"""
### vigil_drift_monitor — hourly drift check of the latest window against the champion's data

`check_services → extract → drift → drift_found → emit_drift_event`

`drift` runs the per-feature KS tests (and Evidently report) on the last `lookback_hours`
and writes per-feature results and a summary point to InfluxDB (`vigil_drift`,
`vigil_drift_summary`) for Grafana. When the window drifted, `emit_drift_event` updates
the **`vigil_drift_detected` Asset**, which schedules `vigil_retrain`: drift starts a
retrain with nobody watching. Without drift, `drift_found` short-circuits and no event is sent.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from _common import (
    DRIFT_ASSET,
    START_DATE,
    artifact_dir,
    champion_info,
    check_services,
    default_args,
    settings,
    to_xcom,
)
from airflow.sdk import Param, dag, get_current_context, task

DAG_ID = "vigil_drift_monitor"


@dag(
    dag_id=DAG_ID,
    description="Hourly drift check; writes drift to InfluxDB and emits a drift Asset event.",
    doc_md=__doc__,
    schedule="@hourly",
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=default_args(settings().airflow),
    params={
        "lookback_hours": Param(
            1,
            type="integer",
            minimum=1,
            maximum=24 * 7,
            title="Lookback (hours)",
            description="Width of the current window compared with the champion's training data.",
        ),
    },
    tags=["vigil", "drift", "monitoring"],
)
def vigil_drift_monitor() -> None:
    @task(
        task_id="check_services",
        doc_md="Ping InfluxDB and MLflow; fails with a message naming what is unreachable.",
    )
    def check() -> dict[str, str]:
        cfg = settings()
        return check_services(cfg.influx, cfg.mlflow)

    @task(doc_md="Extract the latest `lookback_hours` window into a feature parquet.")
    def extract(_services: dict[str, str]) -> dict[str, Any]:
        from pipelines.extract import extract as run_extract

        ctx = get_current_context()
        cfg = settings()
        out = artifact_dir(cfg, DAG_ID, ctx["dag_run"].run_id)
        return to_xcom(
            run_extract(cfg, lookback=timedelta(hours=ctx["params"]["lookback_hours"]), out_dir=out)
        )

    @task(doc_md="KS per feature against the champion's reference data; results written to InfluxDB.")
    def drift(dataset: dict[str, Any]) -> dict[str, Any]:
        from pipelines.drift import drift as run_drift

        cfg = settings()
        if champion_info(cfg.mlflow) is None:
            print("no champion yet: nothing to compare with (vigil_retrain trains the first one)")
            return {"drifted": False, "share": None, "reference_version": None, "note": "no champion yet"}
        out = artifact_dir(cfg, DAG_ID, get_current_context()["dag_run"].run_id) / "drift"
        result = to_xcom(run_drift(cfg, dataset["path"], out_dir=out))
        result["drifted_features"] = [f["feature"] for f in result.pop("features", []) if f.get("drifted")]
        return result

    @task.short_circuit(doc_md="Continue to `emit_drift_event` only when the window drifted.")
    def drift_found(result: dict[str, Any]) -> bool:
        print(f"drifted={result.get('drifted')} share={result.get('share')}")
        return bool(result.get("drifted"))

    @task(
        outlets=[DRIFT_ASSET], doc_md="Emit a `vigil_drift_detected` Asset event (schedules vigil_retrain)."
    )
    def emit_drift_event(result: dict[str, Any]) -> dict[str, Any]:
        extra = {k: result.get(k) for k in ("share", "reference_version", "drifted_features")}
        get_current_context()["outlet_events"][DRIFT_ASSET].extra = to_xcom(extra)
        return extra

    result = drift(extract(check()))
    drift_found(result) >> emit_drift_event(result)


vigil_drift_monitor()
