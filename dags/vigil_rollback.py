"""
### vigil_rollback — move the `champion` alias back

Manual only. Leave **version** empty to return to the previous champion, or give the
registry version to serve. The move is tagged in MLflow and written to InfluxDB as a
`rollback` model event; the detector picks the new champion up on its next reload.

`check_services → rollback`
"""

from __future__ import annotations

from typing import Any

from _common import START_DATE, check_services, default_args, settings, to_xcom
from airflow.sdk import Param, dag, get_current_context, task

DAG_ID = "vigil_rollback"


@dag(
    dag_id=DAG_ID,
    description="Move the champion alias back to the previous (or a chosen) model version.",
    doc_md=__doc__,
    schedule=None,
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=default_args(settings().airflow),
    params={
        "version": Param(
            None,
            type=["null", "integer"],
            minimum=1,
            title="Model version",
            description="Registry version to make champion. Empty: the previous champion.",
        ),
        "reason": Param(
            "manual rollback",
            type="string",
            title="Reason",
            description="Recorded with the rollback in MLflow and in the InfluxDB model event.",
        ),
    },
    tags=["vigil", "registry", "mlflow"],
)
def vigil_rollback() -> None:
    @task(task_id="check_services", doc_md="Ping InfluxDB and MLflow; fails naming what is unreachable.")
    def check() -> dict[str, str]:
        cfg = settings()
        return check_services(cfg.influx, cfg.mlflow)

    @task(
        doc_md="Move `champion` back to the previous champion (`pipelines.registry.rollback`), or, when a "
        "version is given, to that version (`pipelines.registry.promote` with force, recorded as forced)."
    )
    def rollback(_services: dict[str, str]) -> dict[str, Any]:
        from pipelines.registry import promote, rollback

        params = get_current_context()["params"]
        cfg = settings()
        if params["version"] is None:
            result = rollback(cfg.influx, cfg.mlflow, reason=params["reason"])
        else:
            result = promote(cfg, version=int(params["version"]), force=True)
        result = to_xcom(result)
        print(
            f"champion is now version {result['version']} (was {result['previous_version']}): {result['reason']}"
        )
        return result

    rollback(check())


vigil_rollback()
