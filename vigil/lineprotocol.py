"""InfluxDB line protocol: escaping, serialising and strict parsing.

Escaping follows what InfluxDB 1.x really stores (checked against 1.6.7 by
``tests/integration/test_influx_client.py``): commas, spaces and equals signs are escaped
with a backslash in tags; a backslash itself is stored literally and cannot be
escaped, so a key or value where a backslash would swallow the next delimiter
(trailing backslash, backslash before ``,``/``=``/space) or that holds a
newline is refused with :class:`LineProtocolError` rather than written wrong.

>>> Point("cpu", {"host": "a b"}, {"usage": 1.5, "n": 3}, 10).to_line()
'cpu,host=a\\\\ b usage=1.5,n=3i 10'
>>> parse_line('cpu,host=a\\\\ b usage=1.5,n=3i 10').tags
{'host': 'a b'}
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from vigil.errors import VigilError

FieldValue = float | int | str | bool


class LineProtocolError(VigilError, ValueError):
    """A point that cannot be written, or a line that is not valid line protocol."""


def _check_identifier(text: str, what: str) -> None:
    if not text:
        raise LineProtocolError(f"{what} must not be empty")
    if "\n" in text or "\r" in text:
        raise LineProtocolError(f"{what} {text!r} contains a newline, which line protocol cannot carry")
    for i, ch in enumerate(text):
        if ch == "\\" and (i == len(text) - 1 or text[i + 1] in ", ="):
            raise LineProtocolError(
                f"{what} {text!r} has a backslash before a delimiter or at its end, which InfluxDB 1.x cannot store"
            )


def escape_measurement(name: str) -> str:
    _check_identifier(name, "measurement")
    return name.replace(",", "\\,").replace(" ", "\\ ")


def escape_key(text: str, what: str = "tag") -> str:
    """Escape a tag key, tag value or field key."""
    _check_identifier(text, what)
    return text.replace(",", "\\,").replace("=", "\\=").replace(" ", "\\ ")


def format_field_value(value: FieldValue) -> str:
    """Render a field value as Telegraf does: ints with ``i``, floats in shortest form."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value}i"
    if isinstance(value, float):
        if not math.isfinite(value):
            raise LineProtocolError(f"field value {value!r} is not finite")
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    raise LineProtocolError(f"unsupported field value type {type(value).__name__}")


@dataclass(frozen=True)
class Point:
    """One point: measurement, tags, typed fields, timestamp in nanoseconds."""

    measurement: str
    tags: dict[str, str]
    fields: dict[str, FieldValue]
    time_ns: int | None = None

    def to_line(self) -> str:
        """Serialise; NaN/inf fields are dropped (as Telegraf does), a point with no field left is refused."""
        fields = {k: v for k, v in self.fields.items() if not (isinstance(v, float) and not math.isfinite(v))}
        if not fields:
            raise LineProtocolError(f"point of {self.measurement!r} has no finite field to write")
        head = escape_measurement(self.measurement)
        for key in sorted(self.tags):
            value = self.tags[key]
            if value == "":
                continue
            head += f",{escape_key(key, 'tag key')}={escape_key(str(value), 'tag value')}"
        body = ",".join(f"{escape_key(k, 'field key')}={format_field_value(v)}" for k, v in fields.items())
        line = f"{head} {body}"
        return line if self.time_ns is None else f"{line} {int(self.time_ns)}"


# ------------------------------------------------------------------------------------------------
# parsing


@dataclass
class ParsedLine:
    """A parsed line; ``field_types`` uses the wire types integer/float/string/boolean."""

    measurement: str
    tags: dict[str, str]
    fields: dict[str, FieldValue]
    field_types: dict[str, str] = field(default_factory=dict)
    time_ns: int | None = None


def _scan(line: str, pos: int, stops: str) -> tuple[str, int]:
    """Read until an unescaped character of ``stops``; unescape ``\\,``, ``\\=``, ``\\ ``."""
    out: list[str] = []
    n = len(line)
    while pos < n:
        ch = line[pos]
        if ch == "\\" and pos + 1 < n and line[pos + 1] in ", =":
            out.append(line[pos + 1])
            pos += 2
            continue
        if ch in stops:
            break
        out.append(ch)
        pos += 1
    return "".join(out), pos


def _parse_value(raw: str, line: str) -> tuple[FieldValue, str]:
    if raw.startswith('"'):
        if len(raw) < 2 or not raw.endswith('"'):
            raise LineProtocolError(f"unterminated string field in {line!r}")
        return raw[1:-1].replace('\\"', '"').replace("\\\\", "\\"), "string"
    if raw in ("t", "T", "true", "True", "TRUE"):
        return True, "boolean"
    if raw in ("f", "F", "false", "False", "FALSE"):
        return False, "boolean"
    if raw.endswith("i"):
        try:
            return int(raw[:-1]), "integer"
        except ValueError as exc:
            raise LineProtocolError(f"invalid integer {raw!r} in {line!r}") from exc
    if raw.endswith("u"):
        try:
            return int(raw[:-1]), "unsigned"
        except ValueError as exc:
            raise LineProtocolError(f"invalid unsigned {raw!r} in {line!r}") from exc
    try:
        value = float(raw)
    except ValueError as exc:
        raise LineProtocolError(f"invalid field value {raw!r} in {line!r}") from exc
    if not math.isfinite(value) or raw.lower() in ("nan", "inf", "+inf", "-inf", "infinity"):
        raise LineProtocolError(f"non-finite field value {raw!r} in {line!r}")
    return value, "float"


def parse_line(line: str) -> ParsedLine:
    """Strictly parse one line of line protocol (raises :class:`LineProtocolError`)."""
    line = line.rstrip("\n")
    if not line or line.startswith("#"):
        raise LineProtocolError("empty line or comment")
    measurement, pos = _scan(line, 0, ", ")
    if not measurement:
        raise LineProtocolError(f"missing measurement in {line!r}")
    tags: dict[str, str] = {}
    while pos < len(line) and line[pos] == ",":
        key, pos = _scan(line, pos + 1, "=, ")
        if pos >= len(line) or line[pos] != "=" or not key:
            raise LineProtocolError(f"invalid tag in {line!r}")
        value, pos = _scan(line, pos + 1, ", =")
        if not value or (pos < len(line) and line[pos] == "="):
            raise LineProtocolError(f"invalid tag value for {key!r} in {line!r}")
        tags[key] = value
    if pos >= len(line) or line[pos] != " ":
        raise LineProtocolError(f"missing fields in {line!r}")
    pos += 1
    fields: dict[str, FieldValue] = {}
    types: dict[str, str] = {}
    n = len(line)
    while True:
        key, pos = _scan(line, pos, "=, ")
        if pos >= n or line[pos] != "=" or not key:
            raise LineProtocolError(f"invalid field {key!r} in {line!r}")
        pos += 1
        start = pos
        if pos < n and line[pos] == '"':
            pos += 1
            while pos < n and line[pos] != '"':
                pos += 2 if line[pos] == "\\" else 1
            if pos >= n:
                raise LineProtocolError(f"unterminated string field in {line!r}")
            pos += 1
        else:
            while pos < n and line[pos] not in ", ":
                pos += 1
        value, kind = _parse_value(line[start:pos], line)
        fields[key], types[key] = value, kind
        if pos < n and line[pos] == ",":
            pos += 1
            continue
        break
    time_ns: int | None = None
    rest = line[pos:].strip()
    if rest:
        if pos < n and line[pos] != " ":
            raise LineProtocolError(f"unexpected {line[pos]!r} after fields in {line!r}")
        try:
            time_ns = int(rest)
        except ValueError as exc:
            raise LineProtocolError(f"invalid timestamp {rest!r} in {line!r}") from exc
    return ParsedLine(measurement, tags, fields, types, time_ns)


def parse_lines(text: str) -> list[ParsedLine]:
    """Parse many lines, skipping blanks and ``#`` comments; the first bad line raises."""
    return [parse_line(x) for x in text.splitlines() if x.strip() and not x.lstrip().startswith("#")]


def coerce_point(measurement: str, tags: dict[str, Any], fields: dict[str, Any], time_ns: int) -> Point:
    """A point from loosely typed Python values (numpy scalars become int/float)."""
    clean: dict[str, FieldValue] = {}
    for key, value in fields.items():
        if value is None:
            continue
        if hasattr(value, "item"):
            value = value.item()
        clean[key] = value
    return Point(measurement, {k: str(v) for k, v in tags.items() if v is not None}, clean, time_ns)
