"""The DAG files load, and each DAG has the owner, tags, retry policy, docs and shape it promises."""

from __future__ import annotations

import copy

import pytest
from airflow.dag_processing.dagbag import DagBag
from airflow.sdk.exceptions import ParamValidationError

from vigil.settings import Settings

DAG_IDS = {"vigil_retrain", "vigil_drift_monitor", "vigil_rollback"}


def test_dagbag_loads_without_import_errors(dagbag: DagBag) -> None:
    assert dagbag.import_errors == {}
    assert DAG_IDS <= set(dagbag.dag_ids)
    for dag in dagbag.dags.values():  # every DAG in the folder, ours and the stress helper's
        assert dag.tags and dag.doc_md, dag.dag_id


@pytest.mark.parametrize("dag_id", sorted(DAG_IDS))
def test_every_dag_has_owner_tags_retries_and_docs(dagbag: DagBag, dag_id: str) -> None:
    dag = dagbag.dags[dag_id]
    defaults = Settings(_env_file=None)
    assert "vigil" in dag.tags and len(dag.tags) >= 2
    assert dag.doc_md and dag_id in dag.doc_md
    assert dag.description
    assert dag.catchup is False
    for t in dag.tasks:
        assert t.owner == "vigil", t.task_id
        assert t.doc_md, f"{dag_id}.{t.task_id} has no doc_md"
        assert t.retries == defaults.airflow.task_retries, t.task_id
        assert t.retry_exponential_backoff, t.task_id
        assert t.retry_delay.total_seconds() == defaults.airflow.retry_delay_s


def _edges(dag) -> set[tuple[str, str]]:
    return {(t.task_id, d) for t in dag.tasks for d in t.downstream_task_ids}


def test_retrain_structure(dagbag: DagBag) -> None:
    dag = dagbag.dags["vigil_retrain"]
    assert set(dag.task_ids) == {
        "check_services",
        "extract",
        "validate",
        "drift",
        "decide",
        "skip_training",
        "train_sklearn",
        "train_spark",
        "evaluate",
        "register",
        "promote",
        "summary",
    }
    edges = _edges(dag)
    for edge in [
        ("check_services", "extract"),
        ("extract", "validate"),
        ("validate", "drift"),
        ("drift", "decide"),
        ("decide", "skip_training"),
        ("decide", "train_sklearn"),
        ("decide", "train_spark"),
        ("train_sklearn", "evaluate"),
        ("train_spark", "evaluate"),
        ("evaluate", "register"),
        ("register", "promote"),
        ("promote", "summary"),
        ("skip_training", "summary"),
    ]:
        assert edge in edges, edge
    # The two trainers are siblings (run in parallel), not chained.
    assert ("train_sklearn", "train_spark") not in edges and ("train_spark", "train_sklearn") not in edges
    assert (
        dag.get_task("decide").task_type.endswith("BranchDecoratedOperator")
        or "Branch" in type(dag.get_task("decide")).__name__
    )
    assert dag.get_task("evaluate").trigger_rule == "none_failed_min_one_success"
    # only the trainers feed evaluate: on the skip path it is skipped, not run with nothing to evaluate
    assert dag.get_task("evaluate").upstream_task_ids == {"train_sklearn", "train_spark"}
    assert dag.get_task("summary").trigger_rule == "none_failed"


def test_retrain_schedule_is_daily_or_drift_asset(dagbag: DagBag) -> None:
    from airflow.sdk import AssetOrTimeSchedule

    dag = dagbag.dags["vigil_retrain"]
    assert isinstance(dag.timetable, AssetOrTimeSchedule)
    assert "vigil_drift_detected" in str(dag.timetable.asset_condition)
    assert dag.timetable.timetable.expression == "0 3 * * *"
    # unpausing (``vigil retrain`` does) must not fire a catch-up retrain of today's 03:00
    assert dag.start_date is None and dag.timetable.timetable.run_immediately is False


def test_retrain_params_form(dagbag: DagBag) -> None:
    params = dagbag.dags["vigil_retrain"].params
    expected = {
        "lookback_hours": 24,
        "engine": "sklearn",
        "grid_size": "small",
        "promotion_margin": 0.0,
        "backtest_hours": 6,
        "force_promote": False,
        "dry_run": False,
    }
    for name, default in expected.items():
        assert params[name] == default, name
    for name in params:
        assert params.get_param(name).description, f"param {name} has no description"
    schemas = {name: params.get_param(name).schema for name in params}
    assert schemas["engine"]["enum"] == ["sklearn", "spark", "both"]
    assert schemas["grid_size"]["enum"] == ["small", "full"]
    families = schemas["model_families"]
    assert families["type"] == "array" and {"isolation_forest", "lof"} <= set(families["examples"])
    # A bad value is refused by the Params' schema (this is what the trigger form and REST API enforce).
    with pytest.raises(ParamValidationError, match="not one of"):
        copy.deepcopy(params)["engine"] = "tensorflow"


def test_drift_monitor_structure(dagbag: DagBag) -> None:
    dag = dagbag.dags["vigil_drift_monitor"]
    assert _edges(dag) == {
        ("check_services", "extract"),
        ("extract", "drift"),
        ("drift", "drift_found"),
        ("drift", "emit_drift_event"),
        ("drift_found", "emit_drift_event"),
    }
    assert [a.name for a in dag.get_task("emit_drift_event").outlets] == ["vigil_drift_detected"]
    assert dag.timetable.expression == "0 * * * *"


def test_rollback_is_manual_with_version_param(dagbag: DagBag) -> None:
    dag = dagbag.dags["vigil_rollback"]
    assert type(dag.timetable).__name__ == "NullTimetable"  # schedule=None: manual only
    assert dag.params["version"] is None
    assert dag.params.get_param("version").description
    assert _edges(dag) == {("check_services", "rollback")}


def test_retrain_decision_paths() -> None:
    from _common import retrain_decision

    base = {
        "drifted": False,
        "drift_share": 0.0,
        "forced": False,
        "champion_version": 3,
        "run_type": "manual",
    }
    assert retrain_decision(**base) == (
        False,
        "skipped: no drift (0% of features drifted), champion v3 exists, force_promote not set and the run "
        "is manual, not scheduled",
    )
    assert retrain_decision(**{**base, "champion_version": None}) == (True, "no champion yet")
    assert retrain_decision(**{**base, "forced": True}) == (True, "force_promote is set")
    assert retrain_decision(**{**base, "drifted": True, "drift_share": 0.25}) == (
        True,
        "drift found (25% of features)",
    )
    assert retrain_decision(**{**base, "run_type": "scheduled"})[0] is True
    assert retrain_decision(**{**base, "run_type": "asset_triggered"})[0] is True


def test_form_families_are_the_pipelines_families(dagbag: DagBag) -> None:
    from pipelines.search import SKLEARN_FAMILIES

    schema = dagbag.dags["vigil_retrain"].params.get_param("model_families").schema
    assert sorted(schema["examples"]) == sorted(SKLEARN_FAMILIES)


def test_bad_data_fails_at_once_and_infrastructure_errors_are_retried(dagbag: DagBag) -> None:
    """The DAGs skip retries by the error's type (vigil.errors.BadDataError), not by its name."""
    from _common import no_retry_on_bad_data
    from airflow.sdk.exceptions import AirflowFailException

    from pipelines.inject import InjectionError
    from vigil.errors import BadDataError

    def failing(exc: Exception):
        @no_retry_on_bad_data
        def task() -> None:
            raise exc

        return task

    for bad in (InjectionError("window too short"), BadDataError("bad rows")):
        with pytest.raises(AirflowFailException, match=type(bad).__name__):
            failing(bad)()
    with pytest.raises(ConnectionError):  # retried by Airflow: propagates unchanged
        failing(ConnectionError("refused"))()
