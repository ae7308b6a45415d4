"""Prediction frames to ``vigil_predictions`` line protocol, fast.

Why not ``PREDICTIONS.point(...)`` per row: at 10,000 hosts x 3 sources per interval the
per-point validation costs more than scoring. The frame's columns are checked against
:data:`vigil.schema.PREDICTIONS` once, then lines are formatted with the same escaping
rules as :class:`vigil.lineprotocol.Point` (a test holds the two equal).
"""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd

from vigil import schema
from vigil.lineprotocol import LineProtocolError, escape_key, escape_measurement, format_field_value

_FIELDS = schema.PREDICTIONS.fields
_MEASUREMENT = escape_measurement(schema.PREDICTIONS.name)


def prediction_lines(
    frame: pd.DataFrame,
    *,
    model: str,
    version: str,
    source: str,
    on_error: Callable[[str, int], None] | None = None,
) -> list[str]:
    """One line per row of ``frame`` (columns host, time + PREDICTIONS fields); time = interval start.

    A host name that line protocol cannot carry (newline, trailing backslash) is skipped and
    counted as ``unwritable_host``; non-finite field values are dropped like Point does.
    """
    if frame.empty:
        return []
    fields = [c for c in _FIELDS if c in frame.columns]
    missing = [f for f in schema.PREDICTIONS.required_fields if f not in fields]
    if missing:
        raise ValueError(f"prediction frame lacks required field(s) {missing}")
    common = {"model": model, "version": version, "source": source}
    tag_tail = {k: f"{k}={escape_key(str(v), 'tag value')}" for k, v in common.items() if v not in (None, "")}
    hosts = frame["host"].astype(str).to_numpy()
    times = pd.to_datetime(frame["time"], utc=True, cache=False).astype("int64").to_numpy()
    columns = {}
    for f in fields:
        kind = _FIELDS[f]
        values = frame[f].tolist()  # Python scalars: much faster to format than numpy ones
        if kind == schema.INT:
            columns[f] = [None if v is None or v != v else f"{f}={int(v)}i" for v in values]
        elif kind == schema.FLOAT:
            columns[f] = [f"{f}={float(v)!r}" if v is not None and v - v == 0 else None for v in values]
        else:
            columns[f] = [
                None
                if v is None or v == "" or (isinstance(v, float) and v != v)
                else f"{f}={format_field_value(str(v))}"
                for v in values
            ]
    # tags in sorted key order, as Point.to_line writes them; "host" has a fixed place among them
    keys = sorted(["host", *tag_tail])
    before = "".join(f",{tag_tail[k]}" for k in keys[: keys.index("host")])
    after = "".join(f",{tag_tail[k]}" for k in keys[keys.index("host") + 1 :])
    heads: dict[str, str | None] = {}
    for host in dict.fromkeys(hosts.tolist()):
        try:
            heads[host] = f"{_MEASUREMENT}{before},host={escape_key(host, 'tag value')}{after}"
        except LineProtocolError:
            heads[host] = None
    row_heads = [heads[h] for h in hosts.tolist()]
    # rows as tuples (zip in C) with the missing fields filtered out (filter in C), instead of
    # indexing every column per row in Python: 0.25 s instead of 0.30 s for 30,000 lines (the
    # rest is formatting the values)
    rows = zip(*columns.values(), strict=True)
    bodies = map(",".join, map(lambda row: filter(None, row), rows))  # noqa: C417
    lines = [
        f"{head} {body} {t}"
        for head, body, t in zip(row_heads, bodies, times.tolist(), strict=True)
        if head is not None
    ]
    bad = len(row_heads) - len(lines)
    if bad and on_error:
        on_error("unwritable_host", bad)
    return lines
