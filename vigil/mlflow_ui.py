"""Addresses of MLflow's UI, as Vigil prints and links them: one place that builds them.

Why every address carries ``?workflowType=machine_learning``: MLflow 3's UI (3.17.2 here) opens
an experiment on its GenAI overview (traces, "Detect Issues") unless the address says
otherwise; with this query it shows Runs, Models and the registry, which is what Vigil's
training runs are. (The experiment tag ``mlflow.experimentKind=custom_model_development``, set
by :func:`pipelines.mlflow_logging.tag_experiment`, does not change that on its own: verified
with headless Chromium.) The UI reads the query on any of its routes.

>>> experiment_url("http://127.0.0.1:5000/", "3")
'http://127.0.0.1:5000/#/experiments/3?workflowType=machine_learning'
>>> run_url("http://127.0.0.1:5000", "3", "abc")
'http://127.0.0.1:5000/#/experiments/3/runs/abc?workflowType=machine_learning'
>>> model_version_url("http://127.0.0.1:5000", "vigil anomaly", 7)
'http://127.0.0.1:5000/#/models/vigil%20anomaly/versions/7?workflowType=machine_learning'
>>> compare_runs_url("http://127.0.0.1:5000", "3", ["a", "b"])
'http://127.0.0.1:5000/#/compare-runs?runs=%5B%22a%22%2C%22b%22%5D&experiments=%5B%223%22%5D&workflowType=machine_learning'
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from urllib.parse import quote, urlencode

#: The query MLflow 3's UI reads to show the classic machine-learning views (Runs, Models).
WORKFLOW_PARAM, WORKFLOW_VALUE = "workflowType", "machine_learning"
WORKFLOW_QUERY = f"{WORKFLOW_PARAM}={WORKFLOW_VALUE}"


def _base(tracking_uri: str) -> str:
    return tracking_uri.rstrip("/")


def home_url(tracking_uri: str) -> str:
    """The experiments list."""
    return f"{_base(tracking_uri)}/#/experiments?{WORKFLOW_QUERY}"


def experiment_url(tracking_uri: str, experiment_id: str | int) -> str:
    """An experiment, opened on its training runs."""
    return f"{_base(tracking_uri)}/#/experiments/{quote(str(experiment_id), safe='')}?{WORKFLOW_QUERY}"


def run_url(tracking_uri: str, experiment_id: str | int, run_id: str) -> str:
    """One run's page."""
    eid, rid = quote(str(experiment_id), safe=""), quote(run_id, safe="")
    return f"{_base(tracking_uri)}/#/experiments/{eid}/runs/{rid}?{WORKFLOW_QUERY}"


def model_version_url(tracking_uri: str, name: str, version: str | int) -> str:
    """A registered model version's page."""
    return (
        f"{_base(tracking_uri)}/#/models/{quote(name, safe='')}/versions/{quote(str(version), safe='')}"
        f"?{WORKFLOW_QUERY}"
    )


def compare_runs_url(tracking_uri: str, experiment_id: str | int, run_ids: Sequence[str]) -> str:
    """MLflow's compare view of ``run_ids`` (e.g. a grid's child runs): params and metrics side by side."""
    query = urlencode(
        {
            "runs": json.dumps(list(run_ids), separators=(",", ":")),
            "experiments": json.dumps([str(experiment_id)], separators=(",", ":")),
            WORKFLOW_PARAM: WORKFLOW_VALUE,
        },
        quote_via=quote,
    )
    return f"{_base(tracking_uri)}/#/compare-runs?{query}"
