"""Run a provisioned panel's query the way Grafana would: variables resolved, macros expanded.

Used by the provisioning checks (every panel query returns series over seeded data) and
by ``vigil dashboard`` (the static rendering), so both see the same data Grafana shows.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from toolkit.grafana.macros import (
    TimeRange,
    Variable,
    expand_query,
    expand_variables,
    panel_interval_ms,
    parse_min_interval,
)
from toolkit.grafana.provisioning import PanelTarget
from vigil.influx import InfluxClient


@dataclass
class Series:
    """One plotted line: a display name, its tags and (epoch ms, value) points."""

    name: str
    tags: dict[str, str]
    times_ms: list[int] = field(default_factory=list)
    values: list[Any] = field(default_factory=list)

    def numeric(self) -> list[float]:
        return [
            float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else math.nan
            for v in self.values
        ]


@dataclass
class TargetResult:
    target: PanelTarget
    query: str  # what InfluxDB received
    series: list[Series]


def resolve_variables(
    client: InfluxClient, databases: Mapping[str, str], dashboard: dict[str, Any], time_range: TimeRange
) -> dict[str, Variable]:
    """Query variables get every value their query returns and 'All' selected (Grafana's default here)."""
    out: dict[str, Variable] = {}
    for var in dashboard.get("templating", {}).get("list", []):
        if var.get("type") != "query":
            continue
        ds_uid = (var.get("datasource") or {}).get("uid", "")
        db = databases.get(ds_uid)
        if db is None:
            raise ValueError(f"variable ${var['name']}: unknown data source uid {ds_uid!r}")
        query = expand_query(var["query"], time_range, interval_ms=1000, variables=out)
        values = sorted({str(row[-1]) for s in client.query(db, query) for row in s.get("values", [])})
        out[var["name"]] = Variable(
            var["name"], tuple(values), multi=bool(var.get("multi")), include_all=bool(var.get("includeAll"))
        )
    return out


def target_interval_ms(target: PanelTarget, time_range: TimeRange) -> int:
    kwargs: dict[str, int] = {"min_interval_ms": parse_min_interval(target.min_interval)}
    if target.max_data_points:
        kwargs["max_data_points"] = int(target.max_data_points)
    return panel_interval_ms(time_range, **kwargs)


def run_target(
    client: InfluxClient,
    databases: Mapping[str, str],
    target: PanelTarget,
    time_range: TimeRange,
    variables: Mapping[str, Variable],
) -> TargetResult:
    """Expand and run one panel query; raises InfluxError when InfluxDB rejects it."""
    db = databases.get(target.datasource_uid)
    if db is None:
        raise ValueError(
            f"{target.dashboard_uid}/{target.panel_title}: unknown data source {target.datasource_uid!r}"
        )
    query = expand_query(
        target.query, time_range, interval_ms=target_interval_ms(target, time_range), variables=variables
    )
    raw = client.query(db, query, epoch="ms")
    return TargetResult(target, query, influx_series(raw, target.alias, variables))


def influx_series(
    raw: list[dict[str, Any]], alias: str = "", variables: Mapping[str, Variable] = {}
) -> list[Series]:
    """InfluxDB JSON series -> one Series per value column, named like Grafana names them."""
    out: list[Series] = []
    for s in raw:
        columns = s.get("columns", [])
        tags = dict(s.get("tags") or {})
        rows = s.get("values", [])
        for idx, col in enumerate(columns):
            if col == "time":
                continue
            name = _series_name(s.get("name", ""), col, tags, alias, len(columns) > 2, variables)
            series = Series(name, tags)
            for row in rows:
                series.times_ms.append(int(row[0]))
                series.values.append(row[idx])
            out.append(series)
    return out


def _series_name(
    measurement: str,
    column: str,
    tags: dict[str, str],
    alias: str,
    several_columns: bool,
    variables: Mapping[str, Variable],
) -> str:
    if alias:
        name = expand_variables(alias, variables, {})
        name = re.sub(
            r"\$tag_(\w+)|\[\[tag_(\w+)\]\]", lambda m: tags.get(m.group(1) or m.group(2), ""), name
        )
        name = name.replace("$measurement", measurement).replace("$m", measurement).replace("$col", column)
        return name.strip()
    base = f"{measurement}.{column}"
    if tags:
        base += " {" + ", ".join(f"{k}: {v}" for k, v in sorted(tags.items())) + "}"
    return base
