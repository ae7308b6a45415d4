"""Live tests: the stress suite on its own real InfluxDB and MLflow (no Airflow, no Grafana history).

The live stack itself (collector, detector, target app) is started by the test through the stack
manager, as ``vigil demo`` does.
"""

from __future__ import annotations

from support.servers import (  # noqa: F401  (pytest finds fixtures by name in the conftest)
    influx_server,
    mlflow_server,
    mlflow_settings,
    services_dir,
    settings,
)
