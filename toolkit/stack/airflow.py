"""Run Airflow 3 as ``airflow standalone``: SQLite, LocalExecutor, all state in the run folder.

Why these environment variables (see shared/STACK_NOTES.md): standalone starts its
components as ``airflow …`` by name, so the venv's ``bin`` must come first on PATH;
it binds 0.0.0.0:8080 unless told otherwise; and Airflow 3 tasks call back into
the API server's execution API, whose URL defaults to ``localhost:8080`` — so a
non-default port must be spelled out there too.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import requests

from vigil.settings import PROJECT_ROOT, AirflowSettings

#: Where SimpleAuthManager writes the generated admin password (relative to AIRFLOW_HOME).
PASSWORD_FILE = "simple_auth_manager_passwords.json.generated"


def venv_bin() -> Path:
    """The ``bin`` folder of the interpreter running Vigil (the venv's)."""
    return Path(sys.executable).parent


def airflow_local_url(airflow: AirflowSettings) -> str:
    return f"http://{airflow.bind_host}:{airflow.port}"


def airflow_env(airflow: AirflowSettings) -> dict[str, str]:
    """The environment ``airflow standalone`` (and its children) need."""
    home = airflow.home_dir.resolve()
    url = airflow_local_url(airflow)
    return {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__PARALLELISM": str(airflow.parallelism),
        "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_ROOT / "dags"),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{url}/execution/",
        "AIRFLOW__API__HOST": airflow.bind_host,
        "AIRFLOW__API__PORT": str(airflow.port),
        "AIRFLOW__API__BASE_URL": url,
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
        "PATH": f"{venv_bin()}{os.pathsep}{os.environ.get('PATH', '')}",
    }


def airflow_command(airflow: AirflowSettings) -> list[str]:
    airflow.home_dir.mkdir(parents=True, exist_ok=True)
    return [str(venv_bin() / "airflow"), "standalone"]


def airflow_healthy(airflow: AirflowSettings) -> bool:
    """``GET /api/v2/version`` answers without authentication once the API server is up."""
    try:
        resp = requests.get(f"{airflow_local_url(airflow)}/api/v2/version", timeout=2)
        return resp.status_code == 200 and "version" in resp.json()
    except (requests.RequestException, ValueError):
        return False


def password_file(airflow: AirflowSettings) -> Path:
    return airflow.home_dir.resolve() / PASSWORD_FILE
