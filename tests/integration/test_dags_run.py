"""The DAGs run end to end in-process (``dag.test``) against the session's real InfluxDB and MLflow.

Order inside the module matters and is explicit through fixtures: ``first_run`` trains the
first champion on seeded history; the no-drift run and the drift monitor compare against it.
Each test points the DAG's tasks at its own databases and model name through ``VIGIL_*``
variables (the only way DAG tasks get settings), so nothing leaks between tests.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from support import airflow_support

from toolkit.stack.services import settings_env
from vigil.influx import InfluxClient
from vigil.processes import free_port
from vigil.settings import Settings

pytestmark = pytest.mark.slow

SEED_HOURS, SEED_HOSTS = 6, 5


class EnvPatch:
    """Set ``VIGIL_*`` variables for the DAG tasks and restore the environment afterwards."""

    def __init__(self) -> None:
        self._saved: dict[str, str | None] = {}

    def set(self, **values: str) -> None:
        for key, value in values.items():
            self._saved.setdefault(key, os.environ.get(key))
            os.environ[key] = value

    def restore(self) -> None:
        for key, value in self._saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(scope="module")
def run_settings(mlflow_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Settings of this module's runs: own databases, model name, experiment and run folder."""
    return mlflow_settings.model_copy(
        update={
            "run_dir": tmp_path_factory.mktemp("dagrun"),
            "influx_raw_db": "dagrun_raw",
            "influx_vigil_db": "dagrun_vigil",
            "model_name": "vigil-dagtest",
            "mlflow_experiment": "vigil-dagtest",
            "airflow_task_retries": 1,
            "airflow_retry_delay_s": 1.0,
        }
    )


@pytest.fixture(scope="module")
def env(run_settings: Settings) -> Iterator[EnvPatch]:
    patch = EnvPatch()
    patch.set(**settings_env(run_settings), GX_ANALYTICS_ENABLED="false")
    yield patch
    patch.restore()


@pytest.fixture(scope="module")
def dags(env: EnvPatch) -> dict[str, Any]:
    """The DAGs parsed with this module's environment (default_args read the retry settings)."""
    from airflow.dag_processing.dagbag import BundleDagBag

    airflow_support.migrate_db()
    bag = BundleDagBag(dag_folder=str(airflow_support.DAGS_FOLDER), bundle_path=airflow_support.DAGS_FOLDER)
    assert bag.import_errors == {}
    return bag.dags


@pytest.fixture(scope="module")
def seeded(run_settings: Settings) -> Iterator[InfluxClient]:
    """SEED_HOURS x SEED_HOSTS of labelled history ending now, in the module's raw database."""
    from toolkit.seed import seed_history

    client = InfluxClient(run_settings.influx)
    for db in (run_settings.influx.raw_db, run_settings.influx.vigil_db):
        client.create_database(db)
    seed_history(
        client,
        run_settings.influx,
        run_settings.collection,
        hours=SEED_HOURS,
        hosts=SEED_HOSTS,
        progress=False,
    )
    yield client
    for db in (run_settings.influx.raw_db, run_settings.influx.vigil_db):
        client.drop_database(db)


def run_dag(dag: Any, conf: dict[str, Any]) -> tuple[Any, dict[str, Any], float]:
    """``dag.test`` with ``conf``; returns the run, {task_id: task instance}, seconds."""
    began = time.perf_counter()
    dag_run = dag.test(run_conf=conf)
    seconds = time.perf_counter() - began
    tis = {ti.task_id: ti for ti in dag_run.get_task_instances()}
    print(f"{dag.dag_id}: {dag_run.state} in {seconds:.0f}s")
    for ti in sorted(tis.values(), key=lambda t: t.start_date or datetime.max.replace(tzinfo=UTC)):
        took = (ti.end_date - ti.start_date).total_seconds() if ti.start_date and ti.end_date else None
        print(
            f"  {ti.task_id:<16} {ti.state!s:<16} try {ti.try_number}  {took if took is None else round(took, 1)}s"
        )
    return dag_run, tis, seconds


def xcom(dag_run: Any, task_id: str, key: str = "return_value") -> Any:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = session.scalars(
            XComModel.get_many(run_id=dag_run.run_id, dag_ids=dag_run.dag_id, task_ids=task_id, key=key)
        ).first()
        return None if row is None else XComModel.deserialize_value(row)


def champion_version(settings: Settings) -> int | None:
    from mlflow.exceptions import MlflowException

    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=settings.mlflow.uri, registry_uri=settings.mlflow.uri)
    try:
        return int(client.get_model_version_by_alias(settings.mlflow.model_name, "champion").version)
    except MlflowException:
        return None


def model_versions(settings: Settings, name: str) -> list[Any]:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=settings.mlflow.uri, registry_uri=settings.mlflow.uri)
    return list(client.search_model_versions(f"name='{name}'"))


@pytest.fixture(scope="module")
def first_run(dags: dict[str, Any], seeded: InfluxClient, run_settings: Settings) -> dict[str, Any]:
    """vigil_retrain on the seeded history with no champion yet: it must train and promote."""
    assert champion_version(run_settings) is None
    dag_run, tis, seconds = run_dag(
        dags["vigil_retrain"], {"lookback_hours": SEED_HOURS, "grid_size": "small", "engine": "sklearn"}
    )
    return {"run": dag_run, "tis": tis, "summary": xcom(dag_run, "summary"), "seconds": seconds}


def test_seeded_history_promotes_a_champion(first_run: dict[str, Any], run_settings: Settings) -> None:
    tis, summary = first_run["tis"], first_run["summary"]
    assert first_run["run"].state == "success"
    for task_id in (
        "extract",
        "validate",
        "drift",
        "decide",
        "train_sklearn",
        "evaluate",
        "register",
        "promote",
    ):
        assert tis[task_id].state == "success", task_id
    assert tis["train_spark"].state == "skipped" and tis["skip_training"].state == "skipped"
    assert summary["trained"] is True and summary["reason"] == "no champion yet"
    assert summary["promoted"] is True
    assert summary["champion_version"] == champion_version(run_settings)
    metrics = summary["champion_metrics"]  # the served decision on the holdout, label-free
    assert "holdout_false_alarms_per_host_day" in metrics and "holdout_injected_event_recall" in metrics
    assert summary["mlflow_run_url"].startswith(run_settings.mlflow.uri + "/#/experiments/")
    assert summary["mlflow_run_url"].endswith("?workflowType=machine_learning")  # runs, not GenAI
    assert summary["mlflow_model_url"].endswith("?workflowType=machine_learning")
    assert summary["challenger"]["run_id"] in summary["mlflow_run_url"]


def test_no_drift_and_not_forced_skips_training_and_says_why(
    first_run: dict[str, Any], dags: dict[str, Any], run_settings: Settings
) -> None:
    champion_before = champion_version(run_settings)
    dag_run, tis, _ = run_dag(dags["vigil_retrain"], {"lookback_hours": SEED_HOURS})
    assert dag_run.state == "success"
    assert tis["drift"].state == "success" and xcom(dag_run, "drift")["drifted"] is False
    assert tis["skip_training"].state == "success"
    for task_id in ("train_sklearn", "train_spark", "evaluate", "register", "promote"):
        assert tis[task_id].state == "skipped", task_id
    reason = xcom(dag_run, "skip_training")["reason"]
    assert reason.startswith("skipped: no drift") and f"champion v{champion_before}" in reason
    summary = xcom(dag_run, "summary")
    assert summary["trained"] is False and summary["reason"] == reason
    assert summary["champion_version"] == champion_before == champion_version(run_settings)


def test_drift_monitor_emits_an_asset_event_on_shifted_data(
    first_run: dict[str, Any], dags: dict[str, Any], run_settings: Settings, env: EnvPatch
) -> None:
    """Two hours whose second hour comes from other host profiles: every host's levels jump."""
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    from toolkit.seed import seed_history

    shifted_db = "dagrun_shifted"
    client = InfluxClient(run_settings.influx)
    client.create_database(shifted_db)
    now = datetime.now(UTC).replace(microsecond=0)
    for seed, start in ((1, now - timedelta(hours=2)), (977, now - timedelta(hours=1))):
        seed_history(
            client,
            run_settings.influx,
            run_settings.collection,
            start=start,
            hours=1,
            hosts=SEED_HOSTS,
            seed=seed,
            anomalies=False,
            progress=False,
            db=shifted_db,
        )
    env.set(VIGIL_INFLUX__RAW_DB=shifted_db)
    try:
        dag_run, tis, _ = run_dag(dags["vigil_drift_monitor"], {"lookback_hours": 2})
    finally:
        env.set(VIGIL_INFLUX__RAW_DB=run_settings.influx.raw_db)
        client.drop_database(shifted_db)
    assert dag_run.state == "success"
    result = xcom(dag_run, "drift")
    assert result["drifted"] is True and result["drifted_features"], result
    assert tis["emit_drift_event"].state == "success"
    with create_session() as session:
        events = session.scalars(
            select(AssetEvent)
            .join(AssetModel, AssetEvent.asset_id == AssetModel.id)
            .where(AssetModel.name == "vigil_drift_detected", AssetEvent.source_run_id == dag_run.run_id)
        ).all()
        assert len(events) == 1
        assert events[0].extra["share"] == result["share"]
    # the drift results are in InfluxDB for Grafana
    rows = client.query(run_settings.influx.vigil_db, 'SELECT * FROM "vigil_drift_summary"')
    assert rows and rows[0]["values"]


def test_bad_data_fails_at_validate_without_retry_and_promotes_nothing(
    dags: dict[str, Any], run_settings: Settings, env: EnvPatch
) -> None:
    """One host for one hour: too few rows (and too few labels) for the expectations."""
    from toolkit.seed import seed_history

    bad_db, bad_model = "dagrun_bad", "vigil-dagtest-bad"
    client = InfluxClient(run_settings.influx)
    client.create_database(bad_db)
    seed_history(
        client,
        run_settings.influx,
        run_settings.collection,
        hours=1,
        hosts=1,
        anomalies=False,
        progress=False,
        db=bad_db,
    )
    env.set(VIGIL_INFLUX__RAW_DB=bad_db, VIGIL_MLFLOW__MODEL_NAME=bad_model)
    try:
        dag_run, tis, _ = run_dag(dags["vigil_retrain"], {"lookback_hours": 2, "force_promote": True})
    finally:
        env.set(
            VIGIL_INFLUX__RAW_DB=run_settings.influx.raw_db,
            VIGIL_MLFLOW__MODEL_NAME=run_settings.mlflow.model_name,
        )
        client.drop_database(bad_db)
    assert dag_run.state == "failed"
    assert tis["extract"].state == "success"
    assert tis["validate"].state == "failed" and tis["validate"].try_number == 1  # not retried
    for task_id in ("drift", "decide", "train_sklearn", "evaluate", "register", "promote", "summary"):
        assert tis[task_id].state == "upstream_failed", task_id
    assert model_versions(run_settings, bad_model) == []
    safe_run_id = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in dag_run.run_id)
    report = Path(run_settings.run_dir) / "artifacts" / "vigil_retrain" / safe_run_id / "validation.json"
    assert report.exists(), "the full validation result is saved as JSON"
    failed = {
        r["expectation_config"]["type"] for r in json.loads(report.read_text())["results"] if not r["success"]
    }
    assert "expect_table_row_count_to_be_between" in failed  # 360 rows < the suite's minimum


def test_unreachable_influxdb_fails_the_first_task_naming_it(
    dags: dict[str, Any], run_settings: Settings, env: EnvPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    dead_port = free_port()
    env.set(VIGIL_INFLUX__PORT=str(dead_port))
    try:
        dag_run, tis, _ = run_dag(dags["vigil_retrain"], {})
    finally:
        env.set(VIGIL_INFLUX__PORT=str(run_settings.influx.port))
    assert dag_run.state == "failed"
    assert tis["check_services"].state == "failed"
    assert tis["check_services"].try_number == 2  # an infrastructure error is retried (retries=1 here)
    assert tis["extract"].state == "upstream_failed"
    out = capfd.readouterr()
    assert f"InfluxDB at http://127.0.0.1:{dead_port} is unreachable" in out.out + out.err
