"""The ``vigil_stress_scenario`` DAG: loads, one task, Params that refuse bad input."""

from __future__ import annotations

import copy

import pytest
from airflow.sdk.exceptions import ParamValidationError

from stress.scenarios import SCENARIO_NAMES


@pytest.fixture(scope="module")
def dag(dagbag):  # the unit conftest's, parsed once per session
    bag = dagbag
    assert not [path for path in bag.import_errors if "stress" in path], bag.import_errors
    return bag.dags["vigil_stress_scenario"]


def test_stress_dag_shape_and_params(dag) -> None:
    assert dag.task_ids == ["run_scenario"]
    assert dag.max_active_runs == 1 and dag.schedule is None and dag.catchup is False
    task = dag.get_task("run_scenario")
    assert task.owner == "vigil" and task.retries == 0 and task.doc_md
    params = dag.params
    assert params.get_param("scenario").schema["enum"] == list(SCENARIO_NAMES)
    assert (params["scenario"], params["duration"], params["intensity"]) == ("cpu_spike", 60, 1.0)
    for name in ("scenario", "duration", "intensity"):
        assert params.get_param(name).description


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("scenario", "rm_rf", "not one of"),
        ("duration", 0, "minimum"),
        ("intensity", 2, "maximum"),
        ("intensity", 0, "less than or equal to the minimum|exclusiveMinimum"),
    ],
)
def test_stress_dag_refuses_bad_params(dag, name: str, value, message: str) -> None:
    with pytest.raises(ParamValidationError, match=message):
        copy.deepcopy(dag.params)[name] = value
