"""Integration tests: the real servers of ``tests/support/servers.py``, one of each per session."""

from __future__ import annotations

from support.servers import (  # noqa: F401  (pytest finds fixtures by name in the conftest)
    airflow_stack,
    fresh_db,
    grafana_history,
    grafana_settings,
    influx,
    influx_server,
    mlflow_server,
    mlflow_settings,
    services_dir,
    settings,
)
from support.stack_cli import run_dir  # noqa: F401  (the stack tests' run folder, services stopped after)
