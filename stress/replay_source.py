"""Where a replay's raw points come from: a window of the raw InfluxDB database, or an incident bundle.

Both sources return :class:`vigil.lineprotocol.Point` objects with *typed* fields, sorted in one
canonical order (time, measurement, tags), so a replay of the same input is the same sequence
whatever order the server or the bundle listed it in. Types matter: InfluxDB's JSON answers
print the float ``5.0`` as ``5``; re-written without the schema's type it would become a
different field type in the scratch database (a type conflict for the detector), so the
Influx source asks ``SHOW FIELD KEYS`` for each field's real type.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from vigil import schema
from vigil.errors import VigilError
from vigil.influx import InfluxClient, quote_ident, tag_in, time_range
from vigil.lineprotocol import FieldValue, Point

#: Files an incident bundle must hold for a replay.
BUNDLE_FILES = ("meta.json", "events.jsonl")

#: Vigil's own measurements are never replayed as raw input.
VIGIL_NAMES = frozenset(m.name for m in schema.VIGIL_MEASUREMENTS)


class ReplayInputError(VigilError, ValueError):
    """The replay's input is missing, malformed or empty; nothing has been written."""


def sort_key(p: Point) -> tuple[int, str, tuple[tuple[str, str], ...]]:
    return (int(p.time_ns or 0), p.measurement, tuple(sorted(p.tags.items())))


def _typed(value: Any, kind: str | None) -> FieldValue:
    """A field value with the type the source stored it with (JSON loses int/float)."""
    if kind == "integer" or kind == "unsigned":
        return int(value)
    if kind == "float":
        return float(value)
    if kind == "boolean":
        return bool(value)
    if kind == "string":
        return str(value)
    if isinstance(value, (bool, int, float, str)):
        return value
    raise ReplayInputError(f"unsupported field value {value!r}")


def field_types(client: InfluxClient, db: str, measurement: str) -> dict[str, str]:
    """``field -> integer|float|string|boolean`` from ``SHOW FIELD KEYS``."""
    series = client.query(db, f"SHOW FIELD KEYS FROM {quote_ident(measurement)}")
    return {row[0]: row[1] for s in series for row in s.get("values", [])}


def read_influx_window(
    client: InfluxClient,
    db: str,
    start: pd.Timestamp,
    end: pd.Timestamp,
    hosts: Sequence[str] | None = None,
    chunk: timedelta = timedelta(hours=1),
) -> list[Point]:
    """Every raw point in ``[start, end)`` (of ``hosts`` if given), canonical order.

    Read measurement by measurement and hour by hour (``GROUP BY *`` so tags come back as
    tags, not as columns indistinguishable from fields), to keep each answer small.
    """
    if end <= start:
        raise ReplayInputError(f"empty window: --to ({end}) must be after --from ({start})")
    points: list[Point] = []
    for measurement in client.measurements(db):
        if measurement in VIGIL_NAMES:
            continue
        types = field_types(client, db, measurement)
        for lo, hi in _chunks(start, end, chunk):
            where = time_range(lo, hi) + (f" AND {tag_in(schema.HOST_TAG, list(hosts))}" if hosts else "")
            q = f"SELECT * FROM {quote_ident(measurement)} WHERE {where} GROUP BY *"
            for s in client.query(db, q, epoch="ns"):
                tags = {k: v for k, v in (s.get("tags") or {}).items() if v not in (None, "")}
                columns = s["columns"]
                for row in s.get("values", []):
                    fields = {
                        col: _typed(val, types.get(col))
                        for col, val in zip(columns[1:], row[1:], strict=True)
                        if val is not None
                    }
                    if fields:
                        points.append(Point(measurement, tags, fields, int(row[0])))
    points.sort(key=sort_key)
    return points


def _chunks(
    start: pd.Timestamp, end: pd.Timestamp, chunk: timedelta
) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
    edges = [start]
    while edges[-1] < end:
        edges.append(min(edges[-1] + chunk, end))
    return list(zip(edges[:-1], edges[1:], strict=True))


def check_bundle(bundle: Path) -> dict[str, Any]:
    """Validate a bundle folder's layout and return its ``meta.json``; raise naming what is wrong."""
    if not bundle.is_dir():
        raise ReplayInputError(f"incident bundle {bundle} is not a folder")
    missing = [name for name in BUNDLE_FILES if not (bundle / name).is_file()]
    if missing:
        raise ReplayInputError(
            f"incident bundle {bundle} is missing {', '.join(missing)} (a bundle holds {', '.join(BUNDLE_FILES)})"
        )
    try:
        meta = json.loads((bundle / "meta.json").read_text())
    except ValueError as exc:
        raise ReplayInputError(f"{bundle / 'meta.json'} is not valid JSON: {exc}") from exc
    if not isinstance(meta, dict):
        raise ReplayInputError(f"{bundle / 'meta.json'} must hold a JSON object")
    return meta


def read_bundle(
    bundle: Path,
    start: pd.Timestamp | None = None,
    end: pd.Timestamp | None = None,
    hosts: Sequence[str] | None = None,
) -> list[Point]:
    """The raw points of an incident bundle's ``events.jsonl``, canonical order.

    Each line is ``{"measurement", "tags", "fields", "time_ns"}``. Lines with a ``kind`` other
    than ``raw`` (predictions a bundle may carry) and Vigil's own measurements are skipped.
    Field types: ``meta.json``'s optional ``field_types`` (``{measurement: {field: type}}``)
    wins; otherwise JSON's own (``5`` is an integer, ``5.0`` a float).
    """
    meta = check_bundle(bundle)
    declared: dict[str, dict[str, str]] = meta.get("field_types") or {}
    wanted = set(hosts) if hosts else None
    lo = None if start is None else int(start.value)
    hi = None if end is None else int(end.value)
    points: list[Point] = []
    path = bundle / "events.jsonl"
    with path.open() as fh:
        for number, text in enumerate(fh, start=1):
            if not text.strip():
                continue
            try:
                event = json.loads(text)
                if event.get("kind", "raw") != "raw" or event["measurement"] in VIGIL_NAMES:
                    continue
                measurement, tags, fields = event["measurement"], event["tags"], event["fields"]
                time_ns = int(event["time_ns"])
                if (
                    not isinstance(measurement, str)
                    or not isinstance(tags, dict)
                    or not isinstance(fields, dict)
                ):
                    raise TypeError("measurement must be a string, tags and fields objects")
                if not fields:
                    raise ValueError("no fields")
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                raise ReplayInputError(
                    f"{path}:{number}: not a raw point ({exc.__class__.__name__}: {exc})"
                ) from exc
            if wanted is not None and tags.get(schema.HOST_TAG) not in wanted:
                continue
            if (lo is not None and time_ns < lo) or (hi is not None and time_ns >= hi):
                continue
            types = declared.get(measurement, {})
            typed = {k: _typed(v, types.get(k)) for k, v in fields.items() if v is not None}
            points.append(
                Point(
                    measurement, {k: str(v) for k, v in tags.items() if v not in (None, "")}, typed, time_ns
                )
            )
    points.sort(key=sort_key)
    return points
