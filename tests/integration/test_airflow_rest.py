"""The user's path through the REST API v2 and ``vigil retrain``, against a real ``airflow standalone``.

The stack (one Airflow for this module and the browser test) runs the real DAG files; its tasks
use the session's InfluxDB and MLflow with seeded history.
"""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

from toolkit.airflow_client import AirflowApiError, AirflowClient, TaskChange
from toolkit.stack.services import settings_env
from vigil.settings import PROJECT_ROOT, Settings

pytestmark = pytest.mark.slow

#: What the trigger form sends: every Param, as the form shows it (here with its defaults changed a little).
UI_FORM_CONF = {
    "lookback_hours": 6,
    "engine": "sklearn",
    "model_families": ["isolation_forest", "lof"],
    "grid_size": "small",
    "promotion_margin": 0.0,
    "backtest_hours": 6,
    # True: a fresh Airflow also starts the schedule's own run when the DAG is unpaused, and it
    # may train and promote first (max_active_runs=1 queues ours behind it); without
    # force_promote our run would then find a champion and rightly skip training.
    "force_promote": True,
    "dry_run": False,
}


def champion(settings: Settings) -> Any:
    from mlflow.exceptions import MlflowException

    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=settings.mlflow.uri, registry_uri=settings.mlflow.uri)
    try:
        return client.get_model_version_by_alias(settings.mlflow.model_name, "champion")
    except MlflowException:
        return None


def test_a_fleet_without_labels_retrains_through_the_rest_api(
    airflow_stack: tuple[Settings, AirflowClient],
) -> None:
    """Seed 24 h x 10 hosts, drop ``vigil_labels`` (a real Telegraf fleet), trigger vigil_retrain through
    the REST API: a champion is promoted, trained on a dataset without a single label, and MLflow holds
    its injected-event recall and false alarms per host-day (the served decision on its holdout)."""
    import pandas as pd

    from toolkit.seed import seed_history
    from vigil.influx import InfluxClient
    from vigil.schema import LABELS

    settings, client = airflow_stack
    assert client.import_errors() == []
    assert champion(settings) is None
    influx = InfluxClient(settings.influx)
    seed_history(influx, settings.influx, settings.collection, hours=24, hosts=10, seed=24, progress=False)
    influx.query(settings.influx.vigil_db, f'DROP MEASUREMENT "{LABELS.name}"', method="POST")
    client.unpause("vigil_retrain")
    run_id = client.trigger("vigil_retrain", {"lookback_hours": 24, "backtest_hours": 0})
    outcome = client.follow("vigil_retrain", run_id, timeout_s=1500)
    print("label-free retrain, per task seconds:", {k: round(v, 1) for k, v in outcome.durations.items()})
    assert outcome.state == "success", outcome.tasks
    found = champion(settings)
    assert found is not None, "no champion after the label-free retrain"
    from pipelines.common import mlflow_client

    run = mlflow_client(settings.mlflow).get_run(found.run_id)
    metrics, params = run.data.metrics, run.data.params
    for key in ("holdout_injected_event_recall", "holdout_false_alarms_per_host_day", "val_injected_recall"):
        assert key in metrics, key
    assert metrics["holdout_injected_events"] >= 20 and metrics["holdout_real_events"] == 0
    assert params["objective"] == "injected"
    dataset = pd.read_parquet(run.data.tags["vigil.dataset_path"])
    assert dataset["label"].sum() == 0 and (dataset["label_id"] == "").all()  # not one label to learn from
    assert dataset["host"].nunique() == 10
    print(
        f"label-free champion v{found.version}: injected events caught "
        f"{metrics['holdout_injected_event_recall']:.2f}, "
        f"{metrics['holdout_false_alarms_per_host_day']:.2f} false alarms per host-day"
    )


def test_rest_trigger_with_form_conf_trains_and_promotes_a_champion(
    airflow_stack: tuple[Settings, AirflowClient],
) -> None:
    settings, client = airflow_stack
    assert client.import_errors() == []
    before = champion(settings)
    client.unpause("vigil_retrain")
    run_id = client.trigger("vigil_retrain", UI_FORM_CONF)
    assert run_id in client.active_runs("vigil_retrain")  # queued or running: what the demo joins
    changes: list[TaskChange] = []
    outcome = client.follow("vigil_retrain", run_id, on_change=changes.append, timeout_s=900)
    print("per task seconds:", {k: round(v, 1) for k, v in outcome.durations.items()})
    assert outcome.state == "success", outcome.tasks
    assert outcome.tasks["promote"] == "success" and outcome.tasks["skip_training"] == "skipped"
    assert {c.task_id for c in changes if c.new == "success"} >= {
        "extract",
        "validate",
        "train_sklearn",
        "summary",
    }
    summary = client.xcom("vigil_retrain", run_id, "summary")
    found = champion(settings)
    assert found is not None and summary["champion_version"] == int(found.version)
    assert int(found.version) > int(before.version if before else 0)
    assert summary["promoted"] is True and summary["mlflow_run_url"].startswith(settings.mlflow.uri)
    run = client.get_run("vigil_retrain", run_id)
    assert run["conf"]["lookback_hours"] == 6 and run["run_type"] == "manual"


def test_rest_refuses_a_conf_outside_the_params_schema(airflow_stack: tuple[Settings, AirflowClient]) -> None:
    _, client = airflow_stack
    with pytest.raises(AirflowApiError) as err:
        client.trigger("vigil_retrain", {**UI_FORM_CONF, "engine": "tensorflow"})
    assert err.value.status == 400 and "tensorflow" in str(err.value)


def test_vigil_retrain_cli_follows_the_run_and_promotes_a_new_champion(
    airflow_stack: tuple[Settings, AirflowClient],
) -> None:
    settings, _ = airflow_stack
    before = champion(settings)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "toolkit.cli",
            "retrain",
            "--lookback-hours",
            "6",
            "--grid",
            "small",
            "--force-promote",
        ],
        env={**settings_env(settings), "PATH": "/usr/bin:/bin"},
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    print(proc.stdout[-4000:], proc.stderr[-2000:])
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout
    assert "triggered vigil_retrain run manual__" in out
    assert f"Airflow UI: {settings.airflow.base_url}/dags/vigil_retrain/runs/manual__" in out
    for task_id in (
        "check_services",
        "extract",
        "validate",
        "drift",
        "decide",
        "train_sklearn",
        "promote",
        "summary",
    ):
        assert f"{task_id}" in out and "-> success" in out, task_id
    assert ": success in " in out and '"promoted": true' in out
    after = champion(settings)
    assert after is not None and int(after.version) > int(before.version if before else 0)


def test_rollback_dag_restores_the_previous_champion(airflow_stack: tuple[Settings, AirflowClient]) -> None:
    """After the CLI's forced promotion the champion has a predecessor; vigil_rollback (no version) returns to it."""
    settings, client = airflow_stack
    current = champion(settings)
    previous = current.tags.get("vigil.previous_champion")
    assert previous, "the forced promotion recorded the champion it replaced"
    client.unpause("vigil_rollback")
    run_id = client.trigger("vigil_rollback", {"version": None, "reason": "test rollback"})
    outcome = client.follow("vigil_rollback", run_id, timeout_s=300)
    assert outcome.state == "success", outcome.tasks
    assert champion(settings).version == previous
    result = client.xcom("vigil_rollback", run_id, "rollback")
    assert result["version"] == int(previous) and result["previous_version"] == int(current.version)
