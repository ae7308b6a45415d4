"""
### vigil_retrain — retrain, evaluate, register and (maybe) promote the anomaly model

Runs **daily**, **by hand** (the trigger form below), and **whenever `vigil_drift_monitor`
reports drift** (it is scheduled on the `vigil_drift_detected` Asset too).

`check_services → extract → validate → drift → decide → train_sklearn ∥ train_spark → evaluate → register → promote → summary`

`decide` retrains when drift was found, when `force_promote` is set, when there is no
champion, or on a scheduled / drift-triggered run; otherwise it goes to `skip_training`,
which records why. Each task calls one function of `pipelines/`; artifacts (dataset path
and hash, MLflow run ids, model version) travel between tasks as XCom.

Labels are optional: on a fleet without any, the grid is judged on anomalies injected into a copy
of the validation period at an alarm budget (`VIGIL_TRAINING__ALARM_BUDGET_PER_HOST_DAY`), and `evaluate`
and `promote` judge the decision the detector would serve (champion, online model, host
calibration, combined rule) on the holdout: events caught, false alarms per host-day, time to detect.

A validation failure fails the run at `validate` with the failed expectations and is
**not retried**; infrastructure errors (InfluxDB, MLflow, Spark unreachable) are retried
with exponential backoff. `summary` returns champion version, metrics and MLflow run URL.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from _common import (
    DRIFT_ASSET,
    artifact_dir,
    champion_info,
    check_services,
    default_args,
    grid_overrides,
    mlflow_run_url,
    no_retry_on_bad_data,
    retrain_decision,
    settings,
    to_xcom,
)
from _common import (
    experiment_id as _experiment_id,
)
from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable, Param, dag, get_current_context, task
from airflow.sdk.exceptions import AirflowSkipException

DAG_ID = "vigil_retrain"
ENGINES = ("sklearn", "spark", "both")
MODEL_FAMILIES = {
    "isolation_forest": "Isolation Forest (scikit-learn)",
    "lof": "Local Outlier Factor, novelty mode (scikit-learn)",
    "gaussian_mixture": "Gaussian Mixture likelihood (scikit-learn)",
}

PARAMS = {
    "lookback_hours": Param(
        24,
        type="integer",
        minimum=1,
        maximum=24 * 30,
        title="Lookback (hours)",
        description="How many hours of history, ending now, to extract and train on.",
    ),
    "engine": Param(
        "sklearn",
        type="string",
        enum=list(ENGINES),
        values_display={"sklearn": "scikit-learn", "spark": "Spark", "both": "Both, in parallel"},
        title="Training engine",
        description="scikit-learn grid search locally, the same grid distributed on Spark "
        "(plus an MLlib model), or both in parallel; the best holdout model wins.",
    ),
    "model_families": Param(
        list(MODEL_FAMILIES),
        type="array",
        examples=list(MODEL_FAMILIES),
        values_display=MODEL_FAMILIES,
        minItems=1,
        title="Model families",
        description="scikit-learn detector families to grid-search (pick one or more); the Spark engine "
        "searches the same families on executors and adds an MLlib KMeans model.",
    ),
    "grid_size": Param(
        "small",
        type="string",
        enum=["small", "full"],
        title="Grid size",
        description="small: a few cells per family (minutes); full: the documented grid (slower).",
    ),
    "promotion_margin": Param(
        0.0,
        type="number",
        minimum=0,
        maximum=1,
        title="Promotion margin",
        description="How much the challenger's served decision must beat the champion's by in events caught "
        "(injected and labelled) on the same holdout (0: at least as many).",
    ),
    "backtest_hours": Param(
        6,
        type="integer",
        minimum=0,
        maximum=24 * 30,
        title="Backtest gate (hours)",
        description="Before promoting over an existing champion, replay the last N hours of history through "
        "the served decision with challenger and champion (injected anomalies, labels where there are any) and "
        "refuse a challenger that pages more than both the champion and the alarm budget, or catches more than "
        "VIGIL_TRAINING__BACKTEST_TOLERANCE fewer events. 0 turns the gate off.",
    ),
    "force_promote": Param(
        False,
        type="boolean",
        title="Force promote",
        description="Retrain even without drift and promote the challenger even if it does not win "
        "(recorded as forced in MLflow and InfluxDB).",
    ),
    "dry_run": Param(
        False,
        type="boolean",
        title="Dry run",
        description="Extract, validate, check drift, train and evaluate, but register and promote nothing.",
    ),
}


def _ctx() -> tuple[Any, dict[str, Any], str]:
    """(dag_run, params, run_id) of the running task."""
    ctx = get_current_context()
    return ctx["dag_run"], ctx["params"], ctx["dag_run"].run_id


@dag(
    dag_id=DAG_ID,
    description="Retrain the anomaly model: extract, validate, drift, grid-search, evaluate, register, promote.",
    doc_md=__doc__,
    schedule=AssetOrTimeSchedule(
        timetable=CronTriggerTimetable("0 3 * * *", timezone="UTC", run_immediately=False),
        assets=[DRIFT_ASSET],
    ),
    # No start_date: with CronTriggerTimetable(run_immediately=False) unpausing the DAG (as `vigil retrain`
    # does) waits for the next 03:00 instead of firing a catch-up retrain of the last one.
    catchup=False,
    max_active_runs=1,
    default_args=default_args(settings().airflow),
    params=PARAMS,
    tags=["vigil", "training", "mlflow"],
    render_template_as_native_obj=True,
)
def vigil_retrain() -> None:
    @task(
        task_id="check_services",
        doc_md="Ping InfluxDB and MLflow. Fails (after retries) with a message naming what is "
        "unreachable, before any work is done.",
    )
    def check() -> dict[str, str]:
        cfg = settings()
        return check_services(cfg.influx, cfg.mlflow)

    @task(
        doc_md="Extract `lookback_hours` of raw metrics from InfluxDB into a feature parquet with a content hash."
    )
    def extract(_services: dict[str, str]) -> dict[str, Any]:
        from pipelines.extract import extract as run_extract

        _, params, run_id = _ctx()
        cfg = settings()
        out = artifact_dir(cfg, DAG_ID, run_id)
        return to_xcom(run_extract(cfg, lookback=timedelta(hours=params["lookback_hours"]), out_dir=out))

    @task(
        doc_md="Great Expectations suite on the extracted dataset. A failure lists each failed "
        "expectation and fails the run **without retry** (infrastructure errors are retried).",
    )
    @no_retry_on_bad_data
    def validate(dataset: dict[str, Any]) -> dict[str, Any]:
        from pipelines.validate import validate as run_validate

        _, _, run_id = _ctx()
        cfg = settings()
        out = artifact_dir(cfg, DAG_ID, run_id) / "validation.json"
        return to_xcom(run_validate(cfg, dataset["path"], out_path=out))

    @task(
        doc_md="KS test per feature (Holm-corrected) and Evidently report against the champion's training "
        "data; results written to InfluxDB. Without a champion there is no reference: recorded, not an error."
    )
    def drift(dataset: dict[str, Any], _validated: dict[str, Any]) -> dict[str, Any]:
        from pipelines.drift import drift as run_drift

        _, _, run_id = _ctx()
        cfg = settings()
        if champion_info(cfg.mlflow) is None:
            return {"drifted": None, "share": None, "reference_version": None, "note": "no champion yet"}
        return to_xcom(run_drift(cfg, dataset["path"], out_dir=artifact_dir(cfg, DAG_ID, run_id) / "drift"))

    @task.branch(
        doc_md="Retrain when drift was found, force_promote is set, there is no champion, or the run is "
        "scheduled / drift-triggered; otherwise go to `skip_training`. Picks the engine(s) to train."
    )
    def decide(drift_result: dict[str, Any]) -> list[str]:
        dag_run, params, _ = _ctx()
        retrain, reason = retrain_decision(
            drifted=bool(drift_result.get("drifted")),
            drift_share=drift_result.get("share"),
            forced=bool(params["force_promote"]),
            champion_version=drift_result.get("reference_version"),
            run_type=dag_run.run_type,
        )
        print(f"decision: {'retrain' if retrain else 'skip'} - {reason}")
        get_current_context()["ti"].xcom_push(key="reason", value=reason)
        if not retrain:
            return ["skip_training"]
        engine = params["engine"]
        return [f"train_{e}" for e in (("sklearn", "spark") if engine == "both" else (engine,))]

    @task(doc_md="Record why training was skipped (no drift, champion present, not forced, manual run).")
    def skip_training() -> dict[str, Any]:
        reason = get_current_context()["ti"].xcom_pull(task_ids="decide", key="reason")
        print(f"training skipped: {reason}")
        return {"skipped": True, "reason": reason}

    def _train(engine: str, dataset: dict[str, Any]) -> dict[str, Any]:
        from pipelines.train import train

        _, params, _ = _ctx()
        families = tuple(params["model_families"])
        overrides = grid_overrides(params["grid_size"], list(families))
        result = to_xcom(
            train(settings(), dataset["path"], engine=engine, families=families, grid_overrides=overrides)
        )
        result.pop("results", None)  # per-cell table: in MLflow, too big for XCom
        return result

    @task(
        doc_md="scikit-learn grid search (every cell an MLflow child run); logs the best as a pyfunc model. "
        "A window too short to inject anomalies into fails at once, without retry."
    )
    @no_retry_on_bad_data
    def train_sklearn(dataset: dict[str, Any]) -> dict[str, Any]:
        return _train("sklearn", dataset)

    @task(
        doc_md="The same grid distributed over Spark executors plus a tuned MLlib KMeans "
        "(master: `VIGIL_TRAINING__SPARK_MASTER`); logs the best as a pyfunc model."
    )
    @no_retry_on_bad_data
    def train_spark(dataset: dict[str, Any]) -> dict[str, Any]:
        return _train("spark", dataset)

    @task(
        doc_md="Replay the holdout through the decision the detector would serve with each trained candidate "
        "(injected anomalies, labels where there are any): events caught, false alarms per host-day, median "
        "time to detect, logged to its MLflow run with a PNG; keeps the best (within the alarm budget first, "
        "then most events caught, then fewest false alarms).",
        trigger_rule="none_failed_min_one_success",
    )
    def evaluate(sk: dict[str, Any] | None, sp: dict[str, Any] | None) -> dict[str, Any]:
        # Only the trainers are upstream (the dataset path comes with their results), so this runs
        # exactly when at least one trainer ran and none failed.
        from pipelines.evaluate import PRIMARY_METRIC
        from pipelines.evaluate import evaluate as run_evaluate
        from pipelines.served import rank_key

        cfg = settings()
        candidates = []
        for trained in (c for c in (sk, sp) if c):
            ev = to_xcom(
                run_evaluate(cfg, trained["model_uri"], trained["dataset_path"], run_id=trained["run_id"])
            )
            candidates.append({**trained, "holdout": ev["metrics"], "png_path": ev["png_path"]})
            m = ev["metrics"]
            print(
                f"{trained['engine']}: {trained['best_cell']} served decision: events caught "
                f"{m.get('holdout_event_recall')} (injected {m.get('holdout_injected_event_recall')}, labelled "
                f"{m.get('holdout_real_event_recall')}), false alarms per host-day "
                f"{m.get('holdout_false_alarms_per_host_day')}, median time to detect {m.get('holdout_median_ttd_s')} s"
            )

        def key(c: dict[str, Any]) -> tuple[float, float, float]:
            served = {
                k.removeprefix("holdout_"): (v if v is not None else float("nan"))
                for k, v in c["holdout"].items()
            }
            return rank_key(served, cfg.training.alarm_budget_per_host_day)

        best = max(candidates, key=key)
        return {
            "best": best,
            "primary_metric": PRIMARY_METRIC,
            "candidates": [c["run_id"] for c in candidates],
        }

    @task(
        doc_md="Register the best candidate in the MLflow registry (alias `challenger`) with its tags. Skipped on dry_run."
    )
    def register(evaluation: dict[str, Any]) -> dict[str, Any]:
        from pipelines.registry import register as run_register

        _, params, _ = _ctx()
        if params["dry_run"]:
            raise AirflowSkipException("dry_run: nothing registered")
        cfg = settings()
        return to_xcom(
            run_register(cfg.influx, cfg.mlflow, evaluation["best"]["run_id"], validation_passed=True)
        )

    @task(
        doc_md="Move alias `champion` to the challenger if the decision served with it beats the champion's "
        "replayed on the same holdout (no more false alarms per host-day than both the champion and the budget, "
        "at least as many events caught + `promotion_margin`, not much slower) and it passes the robustness gate "
        "and the backtest gate over the last `backtest_hours` — or with `force_promote`; writes a model event."
    )
    def promote(registered: dict[str, Any], evaluation: dict[str, Any]) -> dict[str, Any]:
        from pipelines.registry import promote as run_promote

        _, params, _ = _ctx()
        cfg = settings().model_copy(update={"promotion_margin": float(params["promotion_margin"])})
        hours = int(params.get("backtest_hours") or 0)
        window = None
        if hours > 0:
            import pandas as pd

            end = pd.Timestamp.now(tz="UTC").floor("s")
            window = (end - pd.Timedelta(hours=hours), end)
        return to_xcom(
            run_promote(
                cfg,
                version=registered["version"],
                dataset_path=evaluation["best"]["dataset_path"],
                force=bool(params["force_promote"]),
                backtest_window=window,
            )
        )

    @task(
        doc_md="The run's summary: decision, champion version, holdout metrics, MLflow run URL. Returned as XCom "
        "and logged.",
        trigger_rule="none_failed",
    )
    def summary(
        drift_result: dict[str, Any],
        skipped: dict[str, Any] | None,
        evaluation: dict[str, Any] | None,
        promotion: dict[str, Any] | None,
    ) -> dict[str, Any]:
        _, params, _ = _ctx()
        cfg = settings()
        champion = champion_info(cfg.mlflow) or {}
        best = (evaluation or {}).get("best") or {}
        reason = get_current_context()["ti"].xcom_pull(task_ids="decide", key="reason")
        result = {
            "trained": skipped is None,
            "reason": reason,
            "dry_run": bool(params["dry_run"]),
            "drift": {k: drift_result.get(k) for k in ("drifted", "share", "reference_version")},
            "challenger": {k: best.get(k) for k in ("engine", "best_cell", "run_id", "holdout")}
            if best
            else None,
            "promoted": bool((promotion or {}).get("promoted")),
            "promotion_reason": (promotion or {}).get("reason"),
            "champion_version": champion.get("version"),
            "champion_metrics": champion.get("metrics"),
            "mlflow_run_url": mlflow_run_url(
                cfg.mlflow, _experiment_id(cfg.mlflow, best.get("run_id")), best.get("run_id")
            )
            or champion.get("run_url"),
            "mlflow_model_url": champion.get("model_url"),
        }
        print("run summary:\n" + "\n".join(f"  {k}: {v}" for k, v in result.items()))
        return result

    services = check()
    dataset = extract(services)
    validated = validate(dataset)
    drift_result = drift(dataset, validated)
    branch = decide(drift_result)
    skipped = skip_training()
    sk, sp = train_sklearn(dataset), train_spark(dataset)
    branch >> [skipped, sk, sp]
    evaluation = evaluate(sk, sp)
    promotion = promote(register(evaluation), evaluation)
    summary(drift_result, skipped, evaluation, promotion)


vigil_retrain()
