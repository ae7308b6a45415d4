"""Capture: raw points + predictions of an incident's window from InfluxDB into the bundle's files."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pandas as pd

from detector.incidents.model import BUNDLE_FILES, EVENTS, META, PLOT, REPORT, Incident, write_json_atomic
from detector.incidents.plot import plot
from detector.incidents.report import render_report
from vigil import schema
from vigil.features.source import QUERY_GROUPS
from vigil.influx import InfluxClient, InfluxError, InfluxUnavailable, quote_ident, tag_in, time_range
from vigil.settings import InfluxSettings

#: Vigil's own measurements are never captured as raw input.
_VIGIL_NAMES = frozenset(m.name for m in schema.VIGIL_MEASUREMENTS)
#: Raw measurements the features read (always captured, even if SHOW MEASUREMENTS fails).
_FEATURE_MEASUREMENTS = sorted({k[0] for k in QUERY_GROUPS})


def field_types(client: InfluxClient, db: str, measurement: str) -> dict[str, str]:
    series = client.query(db, f"SHOW FIELD KEYS FROM {quote_ident(measurement)}")
    return {row[0]: row[1] for s in series for row in s.get("values", [])}


def _typed(value: Any, kind: str | None) -> Any:
    if kind in ("integer", "unsigned") and isinstance(value, (int, float)) and not isinstance(value, bool):
        return int(value)
    if kind == "float" and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return value


def read_raw_events(
    client: InfluxClient, db: str, hosts: list[str], start_ns: int, end_ns: int, limit: int
) -> tuple[list[dict[str, Any]], dict[str, dict[str, str]], bool]:
    """Raw points of ``hosts`` in ``[start, end)`` as events, the field types, and whether cut at ``limit``."""
    try:
        measurements = [m for m in client.measurements(db) if m not in _VIGIL_NAMES]
    except InfluxUnavailable:
        raise
    except InfluxError:
        measurements = list(_FEATURE_MEASUREMENTS)
    events: list[dict[str, Any]] = []
    types: dict[str, dict[str, str]] = {}
    where = f"{time_range(start_ns, end_ns)} AND {tag_in(schema.HOST_TAG, hosts)}"
    for m in measurements:
        kinds = field_types(client, db, m)
        q = f"SELECT * FROM {quote_ident(m)} WHERE {where} GROUP BY *"
        for s in client.query(db, q, epoch="ns"):
            tags = {k: v for k, v in (s.get("tags") or {}).items() if v not in (None, "")}
            cols = s["columns"]
            for row in s.get("values", []):
                fields = {
                    c: _typed(v, kinds.get(c))
                    for c, v in zip(cols[1:], row[1:], strict=True)
                    if v is not None
                }
                if fields:
                    events.append({"measurement": m, "tags": tags, "fields": fields, "time_ns": int(row[0])})
                    for c in fields:
                        if c in kinds:
                            types.setdefault(m, {})[c] = kinds[c]
    events.sort(key=lambda e: (e["time_ns"], e["measurement"], sorted(e["tags"].items())))
    truncated = len(events) > limit
    return events[:limit], types, truncated


def read_predictions(
    client: InfluxClient, db: str, hosts: list[str], start_ns: int, end_ns: int
) -> pd.DataFrame:
    q = (
        f"SELECT * FROM {quote_ident(schema.PREDICTIONS.name)} WHERE {time_range(start_ns, end_ns)} "
        f'AND {tag_in(schema.HOST_TAG, hosts)} GROUP BY "host", "source", "model", "version"'
    )
    try:
        return client.query_df(db, q)
    except InfluxUnavailable:
        raise
    except InfluxError:
        return pd.DataFrame()  # no predictions database yet


def _prediction_events(frame: pd.DataFrame) -> list[dict[str, Any]]:
    if frame.empty:
        return []
    tag_keys = [k for k in ("host", "model", "version", "source") if k in frame.columns]
    field_keys = [c for c in schema.PREDICTIONS.fields if c in frame.columns]
    out = []
    for rec in frame.to_dict("records"):
        fields = {}
        for k in field_keys:
            v = rec[k]
            if v is None or (isinstance(v, float) and v != v):
                continue
            fields[k] = v.item() if hasattr(v, "item") else v
        out.append(
            {
                "kind": "prediction",
                "measurement": schema.PREDICTIONS.name,
                "tags": {k: str(rec[k]) for k in tag_keys if rec[k] is not None},
                "fields": fields,
                "time_ns": int(pd.Timestamp(rec["time"]).value),
            }
        )
    return out


def capture(
    incident: Incident, influx: InfluxSettings, client: InfluxClient, folder: Path, max_events: int
) -> Incident:
    """Read the window from InfluxDB and write events.jsonl, report.md, the PNG, then meta.json."""
    hosts = sorted(h for h, ep in incident.hosts.items() if ep.captured)
    events, types, truncated = read_raw_events(
        client, influx.raw_db, hosts, incident.start_ns, incident.end_ns, max_events
    )
    preds = read_predictions(client, influx.vigil_db, hosts, incident.start_ns, incident.end_ns)
    pred_events = _prediction_events(preds)
    tmp = folder / (EVENTS + ".tmp")
    with tmp.open("w") as fh:
        for e in events + pred_events:
            fh.write(json.dumps(e, allow_nan=False) + "\n")
    os.replace(tmp, folder / EVENTS)
    incident.events, incident.predictions = len(events), len(pred_events)
    incident.field_types, incident.truncated = types, truncated
    plot(incident, events, preds, folder / PLOT)
    incident.status = "complete"
    incident.files = {name: str(folder / name) for name in BUNDLE_FILES}
    (folder / REPORT).write_text(render_report(incident, folder))
    write_json_atomic(folder / META, incident.to_meta())
    return incident
