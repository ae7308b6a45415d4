"""``vigil_model_events``: one InfluxDB point per registry decision (register, promote, reject,
rollback), which Grafana annotates. Written by :mod:`pipelines.registry` and by the gates of
:mod:`pipelines.gates` that record their own refusals."""

from __future__ import annotations

import time

import numpy as np

from vigil.influx import InfluxClient
from vigil.schema import MODEL_EVENTS
from vigil.settings import InfluxSettings, MlflowSettings


def write_event(
    influx_config: InfluxSettings,
    registry: MlflowSettings,
    event: str,
    version: int,
    *,
    previous_version: int | None = None,
    metric: float | None = None,
    previous_metric: float | None = None,
    forced: bool = False,
    reason: str = "",
    influx: InfluxClient | None = None,
) -> None:
    """One ``vigil_model_events`` point (register | promote | reject | rollback)."""
    client = influx or InfluxClient(influx_config)
    if influx_config.create_databases:
        client.create_database(influx_config.vigil_db)
    fields = {
        "version": version,
        "previous_version": previous_version,
        "metric": metric if metric is not None and np.isfinite(metric) else None,
        "previous_metric": previous_metric
        if previous_metric is not None and np.isfinite(previous_metric)
        else None,
        "forced": int(forced),
        "reason": reason,
    }
    point = MODEL_EVENTS.point({"model": registry.model_name, "event": event}, fields, time.time_ns())
    client.write_points(influx_config.vigil_db, [point])
