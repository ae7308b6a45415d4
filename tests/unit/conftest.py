"""Unit tests: no server. No server fixture is offered here, so asking for one is a collection error.

What unit tests share is in-process only: the DAG folder parsed once per session (parsing imports
every DAG and its tasks' modules, a few seconds each time).
"""

from __future__ import annotations

import pytest
from support import airflow_support  # sets AIRFLOW_HOME before anything imports airflow


@pytest.fixture(scope="session")
def dagbag():
    """The DAG folder as the dag-processor loads it (it puts the folder on sys.path for ``_common``)."""
    from airflow.dag_processing.dagbag import BundleDagBag

    return BundleDagBag(dag_folder=str(airflow_support.DAGS_FOLDER), bundle_path=airflow_support.DAGS_FOLDER)
