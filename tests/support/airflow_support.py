"""Airflow for tests: a throw-away AIRFLOW_HOME, configured before anything imports ``airflow``.

Why at import time: Airflow reads its configuration (home, DAGs folder, database) once,
when ``airflow`` is first imported; pytest imports the test modules that import this one
during collection, before any test runs, so the environment is in place in time.
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from vigil.settings import PROJECT_ROOT

AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="vigil-airflow-test-"))
DAGS_FOLDER = PROJECT_ROOT / "dags"
atexit.register(shutil.rmtree, AIRFLOW_HOME, ignore_errors=True)

AIRFLOW_ENV = {
    "AIRFLOW_HOME": str(AIRFLOW_HOME),
    "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{AIRFLOW_HOME / 'airflow.db'}",
    "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(AIRFLOW_HOME / "logs"),
    "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
}
os.environ.update(AIRFLOW_ENV)


def migrate_db() -> None:
    """``airflow db migrate`` in the throw-away home (~10-25 s), once per session."""
    if (AIRFLOW_HOME / ".migrated").exists():
        return
    airflow = Path(sys.executable).parent / "airflow"
    proc = subprocess.run(
        [str(airflow), "db", "migrate"],
        env={**os.environ, **AIRFLOW_ENV},
        capture_output=True,
        text=True,
        timeout=300,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"airflow db migrate failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    (AIRFLOW_HOME / ".migrated").touch()
