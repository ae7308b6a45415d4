"""``vigil_model_events``: one InfluxDB point per registry decision (register, promote, reject,
rollback), which Grafana annotates. Written by :mod:`pipelines.registry` and by the gates of
:mod:`pipelines.gates` that record their own refusals."""

from __future__ import annotations

import time

import numpy as np

from vigil.influx import InfluxClient
from vigil.schema import MODEL_EVENTS
from vigil.settings import Settings


def write_event(
    settings: Settings,
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
    client = influx or InfluxClient(settings.influx)
    if settings.influx.create_databases:
        client.create_database(settings.influx.vigil_db)
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
    point = MODEL_EVENTS.point({"model": settings.mlflow.model_name, "event": event}, fields, time.time_ns())
    client.write_points(settings.influx.vigil_db, [point])
