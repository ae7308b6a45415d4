"""vigil_stress_scenario: run one stress scenario from the Airflow UI (Params: scenario, duration, intensity).

Thin on purpose: the task calls :func:`stress.runner.run_for_airflow`, which labels
the window, runs the load on the Airflow worker's machine (the monitored host in
the local stack), waits for the detector and writes the report; the task returns a
small summary (outcome, time to detect, report files) as its XCom.
"""

from __future__ import annotations

from _common import OWNER, START_DATE, settings
from airflow.sdk import Param, dag, task

from stress.scenarios import SCENARIO_NAMES


@dag(
    dag_id="vigil_stress_scenario",
    description="Run one stress scenario against the live detector and write its detection report.",
    schedule=None,
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,  # two loads at once would make both ground-truth windows wrong
    # No retries: a retry would run the load again and write a second ground-truth window.
    default_args={"owner": OWNER, "retries": 0},
    tags=["vigil", "stress"],
    params={
        "scenario": Param(
            "cpu_spike", type="string", enum=list(SCENARIO_NAMES), description="Scenario to run."
        ),
        "duration": Param(60, type="number", minimum=1, maximum=600, description="Seconds of load."),
        "intensity": Param(
            1.0, type="number", exclusiveMinimum=0, maximum=1, description="0 < intensity <= 1."
        ),
    },
    doc_md=__doc__,
)
def vigil_stress_scenario():
    @task(
        doc_md="Label the window, run the load, wait for the detector, write the report; returns a summary."
    )
    def run_scenario(params: dict | None = None) -> dict:
        from stress.runner import run_for_airflow

        if not params:
            raise ValueError("no params: trigger the DAG with scenario, duration and intensity")
        return run_for_airflow(
            settings(), params["scenario"], float(params["duration"]), float(params["intensity"])
        )

    run_scenario()


vigil_stress_scenario()
