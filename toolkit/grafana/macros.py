"""Grafana's macro and template-variable expansion for InfluxQL queries.

Why a re-implementation: the dashboards and alert rules are only worth something if the
query InfluxDB finally sees is valid, and that query is produced by Grafana, not written
by us. The rules below follow Grafana's InfluxDB data source:

* backend (``pkg/tsdb/influxdb/models/query.go``, ``Query.Build``): ``$timeFilter`` →
  ``time >= <from>ms and time <= <to>ms`` (epoch milliseconds); ``$interval`` and
  ``$__interval`` → the interval formatted by ``gtime.FormatInterval`` (``10s``, ``1m``);
  ``$__interval_ms`` → the interval in milliseconds;
* frontend template service (runs first): dashboard variables as ``$host``, ``${host}``,
  ``${host:raw}``/``${host:regex}`` and ``[[host]]``, escaped by the data source's
  ``interpolateQueryExpr`` (multi-value / include-all variables are regex-escaped and
  joined as ``(a|b)``; a single value is regex-escaped only where it sits inside a
  ``=~ /…/`` or ``!~ /…/`` regex; numbers are left alone); ``$__from``/``$__to`` (epoch
  ms) and ``$__range*``. ``$__timeFilter`` (the SQL data sources' spelling) is accepted
  and expanded like ``$timeFilter`` so a query copied from there does not reach InfluxDB
  half-expanded.
* the panel interval (``rangeUtil.calculateInterval``): ``(to - from) / maxDataPoints``
  rounded with Grafana's ``roundInterval`` table, never below the data source's
  ``timeInterval`` (10 s = the Telegraf interval). Alert queries get ``intervalMs``
  (default 1000 ms) from their model instead.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pandas as pd

#: Grafana's default minimum interval for our data sources (jsonData.timeInterval).
DEFAULT_MIN_INTERVAL_MS = 10_000
#: What a panel asks for when it has no maxDataPoints: roughly its width in pixels.
DEFAULT_MAX_DATA_POINTS = 1000

_REGEX_SPECIALS = re.compile(r"[\\^$*+?.()|\[\]{}/]")
# Grafana's regex that finds "=~ /.../" or "!~ /.../" in a query (datasource.ts).
_REGEX_IN_QUERY = re.compile(r"(\s*(=|!)~\s*)/((?![*+?])(?:[^\r\n\[/\\]|\\.|\[(?:[^\r\n\]\\]|\\.)*\])+)/")
# $name, ${name}, ${name:format}, [[name]] — the template service's variable syntax.
_VARIABLE = re.compile(r"\$(\w+)|\[\[(\w+?)(?::(\w+))?\]\]|\$\{(\w+)(?::([^}]+))?\}")

# Grafana's roundInterval (packages/grafana-data/src/datetime/rangeutil.ts): (upper bound, result) in ms.
_ROUND_TABLE: tuple[tuple[int, int], ...] = (
    (10, 1),
    (15, 10),
    (35, 20),
    (75, 50),
    (150, 100),
    (350, 200),
    (750, 500),
    (1_500, 1_000),
    (3_500, 2_000),
    (7_500, 5_000),
    (12_500, 10_000),
    (17_500, 15_000),
    (25_000, 20_000),
    (45_000, 30_000),
    (90_000, 60_000),
    (210_000, 120_000),
    (450_000, 300_000),
    (750_000, 600_000),
    (1_050_000, 900_000),
    (1_500_000, 1_200_000),
    (2_700_000, 1_800_000),
    (5_400_000, 3_600_000),
    (9_000_000, 7_200_000),
    (16_200_000, 10_800_000),
    (24_300_000, 21_600_000),
    (64_800_000, 43_200_000),
    (129_600_000, 86_400_000),
    (604_800_000, 86_400_000),
    (1_814_400_000, 604_800_000),
    (3_628_800_000, 2_592_000_000),
)


@dataclass(frozen=True)
class TimeRange:
    """A dashboard or alert time range (UTC)."""

    start: pd.Timestamp
    end: pd.Timestamp

    @classmethod
    def of(cls, start: object, end: object) -> TimeRange:
        lo, hi = _utc(start), _utc(end)
        if hi <= lo:
            raise ValueError(f"time range must end after it starts: {lo} .. {hi}")
        return cls(lo, hi)

    @property
    def from_ms(self) -> int:
        return int(self.start.value // 1_000_000)

    @property
    def to_ms(self) -> int:
        return int(self.end.value // 1_000_000)


@dataclass(frozen=True)
class Variable:
    """A dashboard template variable's current value(s)."""

    name: str
    values: tuple[str, ...]
    multi: bool = False
    include_all: bool = False


def round_interval(ms: float) -> int:
    """Grafana's ``roundInterval``: snap a raw interval to a 'nice' one."""
    for upper, result in _ROUND_TABLE:
        if ms < upper:
            return result
    return 31_536_000_000  # 1 year


def format_interval(ms: int) -> str:
    """``gtime.FormatInterval``: the largest whole unit (``10s``, ``1m``, ``2h``, ``500ms``)."""
    for unit_ms, suffix in ((31_536_000_000, "y"), (86_400_000, "d"), (3_600_000, "h"), (60_000, "m")):
        if ms >= unit_ms:
            return f"{ms // unit_ms}{suffix}"
    if ms >= 1000:
        return f"{ms // 1000}s"
    return f"{ms}ms"


def panel_interval_ms(
    time_range: TimeRange,
    max_data_points: int = DEFAULT_MAX_DATA_POINTS,
    min_interval_ms: int = DEFAULT_MIN_INTERVAL_MS,
) -> int:
    """``calculateInterval``: range / data points, rounded, but at least the minimum interval."""
    raw = (time_range.to_ms - time_range.from_ms) / max(max_data_points, 1)
    return max(round_interval(raw), min_interval_ms)


def parse_min_interval(text: str | None) -> int:
    """A panel's or data source's ``interval`` (``10s``, ``>1m``) in ms; default when empty."""
    if not text:
        return DEFAULT_MIN_INTERVAL_MS
    m = re.fullmatch(r">?\s*(\d+)(ms|s|m|h|d)", text.strip())
    if not m:
        raise ValueError(f"cannot read interval {text!r}")
    factor = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}[m.group(2)]
    return int(m.group(1)) * factor


def escape_regex(value: str) -> str:
    """Grafana's ``escapeRegex`` (also escapes ``/`` since InfluxQL regexes are ``/…/``)."""
    return _REGEX_SPECIALS.sub(lambda m: "\\" + m.group(0), value)


def _interpolate_value(variable: Variable, query: str, fmt: str | None) -> str:
    values = list(variable.values)
    if not values:
        return ""  # Grafana interpolates a variable without options to the empty string
    if fmt == "raw":
        return ",".join(values)
    if fmt in ("csv",):
        return ",".join(values)
    if fmt in ("regex", "pipe") or variable.multi or variable.include_all:
        escaped = [escape_regex(v) for v in values] if fmt != "pipe" else values
        return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"
    value = values[0]
    try:
        float(value)
        return value
    except ValueError:
        pass
    if _REGEX_IN_QUERY.search(query) and any(
        variable_ref in m.group(0)
        for m in _REGEX_IN_QUERY.finditer(query)
        for variable_ref in (f"${variable.name}", f"${{{variable.name}", f"[[{variable.name}")
    ):
        return escape_regex(value)
    return value


def expand_variables(query: str, variables: Mapping[str, Variable], builtins: Mapping[str, str]) -> str:
    """The template service's ``replace``: dashboard variables and ``$__`` built-ins."""

    def repl(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2) or m.group(4)
        fmt = m.group(3) or m.group(5)
        if name in builtins:
            return builtins[name]
        if name in variables:
            return _interpolate_value(variables[name], query, fmt)
        return m.group(0)  # left for the backend ($timeFilter, $__interval …) or not a variable

    return _VARIABLE.sub(repl, query)


def expand_query(
    query: str,
    time_range: TimeRange,
    *,
    interval_ms: int,
    variables: Mapping[str, Variable] | Sequence[Variable] = (),
) -> str:
    """The InfluxQL InfluxDB receives for ``query`` (frontend pass, then backend pass)."""
    if not isinstance(variables, Mapping):
        variables = {v.name: v for v in variables}
    span_ms = time_range.to_ms - time_range.from_ms
    builtins = {
        "__from": str(time_range.from_ms),
        "__to": str(time_range.to_ms),
        "__range_ms": str(span_ms),
        "__range_s": str(span_ms // 1000),
        "__range": format_interval(span_ms),
        "__interval": format_interval(interval_ms),
        "__interval_ms": str(interval_ms),
    }
    out = expand_variables(query, variables, builtins)
    time_filter = f"time >= {time_range.from_ms}ms and time <= {time_range.to_ms}ms"
    interval_text = format_interval(interval_ms)
    # Backend (Query.Build), in Grafana's order.
    out = out.replace("$__timeFilter", time_filter)
    out = out.replace("$timeFilter", time_filter)
    out = out.replace("$interval", interval_text)
    out = out.replace("$__interval_ms", str(interval_ms))
    out = out.replace("$__interval", interval_text)
    leftover = re.search(r"\$\{?\w+|\[\[\w+", out)
    if leftover:
        raise ValueError(f"unexpanded Grafana variable {leftover.group(0)!r} in query: {out}")
    return out


def _utc(value: object) -> pd.Timestamp:
    ts = pd.Timestamp(value)  # type: ignore[arg-type]
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
