"""Evaluate provisioned unified-alerting rules like Grafana's ruler does, against the real InfluxDB.

Why: Grafana cannot run here, but its evaluation is simple to state exactly for the
rules we provision: run each data-source query over its relative time range (ending at
the evaluation time), turn every returned series into an instance keyed by its tags,
apply the server-side expressions (``reduce``, ``threshold``), and map "no data" and
errors to the rule's ``noDataState``/``execErrState``. Across evaluations a condition
must hold for the rule's ``for`` duration before the instance is *Alerting*
(``Pending`` before that). ``vigil dashboard`` lists what would fire now; the checks
replay seeded history through :func:`simulate_rule`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from toolkit.grafana.macros import TimeRange, expand_query
from toolkit.grafana.panels import influx_series
from toolkit.grafana.provisioning import AlertRule
from vigil.errors import VigilError
from vigil.influx import InfluxClient, InfluxError

NORMAL, PENDING, ALERTING, NODATA, ERROR = "Normal", "Pending", "Alerting", "NoData", "Error"

LabelKey = tuple[tuple[str, str], ...]


class UnsupportedExpression(VigilError, ValueError):
    """The rule uses an expression this evaluator does not implement (named in the message)."""


@dataclass
class InstanceResult:
    """One alert instance at one evaluation: its labels, reduced value and condition."""

    labels: dict[str, str]
    value: float | None
    condition: bool
    state: str  # Normal | NoData | Error before `for` is applied

    @property
    def key(self) -> LabelKey:
        return tuple(sorted(self.labels.items()))


@dataclass
class Evaluation:
    rule_uid: str
    at: pd.Timestamp
    instances: list[InstanceResult]
    queries: dict[str, str] = field(default_factory=dict)
    error: str = ""


def parse_duration(text: str | int | None) -> pd.Timedelta:
    """Prometheus-style durations used by Grafana (``1m``, ``90s``, ``1h30m``, ``0s``)."""
    if text in (None, "", 0, "0"):
        return pd.Timedelta(0)
    parts = re.findall(r"(\d+)(ms|s|m|h|d|w)", str(text))
    if not parts or "".join(a + b for a, b in parts) != str(text):
        raise ValueError(f"cannot read duration {text!r}")
    unit = {"ms": "ms", "s": "s", "m": "min", "h": "h", "d": "D", "w": "W"}
    return sum((pd.Timedelta(int(n), unit=unit[u]) for n, u in parts), pd.Timedelta(0))


def _reduce(values: list[float], reducer: str, mode: str, replacement: float | None) -> float:
    if mode == "dropNN":
        values = [v for v in values if not math.isnan(v)]
    elif mode == "replaceNN":
        values = [replacement if math.isnan(v) else v for v in values]  # type: ignore[misc]
    if reducer == "count":
        return float(len(values))
    if not values:
        return math.nan
    if reducer == "last":
        return values[-1]
    if reducer == "mean":
        return sum(values) / len(values)
    if reducer == "sum":
        return float(sum(values))
    if reducer == "max":
        return max(values)
    if reducer == "min":
        return min(values)
    raise UnsupportedExpression(f"reducer {reducer!r}")


def _threshold(value: float, evaluator: dict[str, Any]) -> bool:
    kind, params = evaluator["type"], [float(p) for p in evaluator.get("params", [])]
    if math.isnan(value):
        return False
    if kind == "gt":
        return value > params[0]
    if kind == "lt":
        return value < params[0]
    if kind == "within_range":
        return params[0] < value < params[1]
    if kind == "outside_range":
        return value < params[0] or value > params[1]
    raise UnsupportedExpression(f"threshold evaluator {kind!r}")


def evaluate_rule(client: InfluxClient, databases: Mapping[str, str], rule: AlertRule, at: Any) -> Evaluation:
    """One evaluation of ``rule`` at time ``at`` (before the ``for`` pending period is applied)."""
    at_ts = pd.Timestamp(at)
    at_ts = at_ts.tz_localize("UTC") if at_ts.tzinfo is None else at_ts.tz_convert("UTC")
    spec = rule.rule
    # refId -> {label key: (labels, list of values) for queries | float for expressions}
    frames: dict[str, dict[LabelKey, tuple[dict[str, str], list[float]]]] = {}
    numbers: dict[str, dict[LabelKey, tuple[dict[str, str], float]]] = {}
    queries: dict[str, str] = {}
    no_data = False
    try:
        for node in spec["data"]:
            ref, model = node["refId"], node["model"]
            if node["datasourceUid"] != "__expr__":
                rel = node.get("relativeTimeRange") or {}
                if int(rel.get("from", 0)) <= int(rel.get("to", 0)):
                    raise ValueError(f"{rule.uid}/{ref}: relativeTimeRange must have from > to (seconds)")
                tr = TimeRange.of(
                    at_ts - pd.Timedelta(seconds=int(rel["from"])),
                    at_ts - pd.Timedelta(seconds=int(rel["to"])),
                )
                db = databases.get(node["datasourceUid"])
                if db is None:
                    raise ValueError(f"{rule.uid}/{ref}: unknown data source {node['datasourceUid']!r}")
                query = expand_query(model["query"], tr, interval_ms=int(model.get("intervalMs", 1000)))
                queries[ref] = query
                series = influx_series(client.query(db, query, epoch="ms"))
                frames[ref] = {}
                for s in series:
                    key = tuple(sorted(s.tags.items()))
                    frames[ref][key] = (s.tags, s.numeric())
                if not any(vals for _, vals in frames[ref].values()):
                    no_data = True
                continue
            kind = model.get("type")
            source = model["expression"].lstrip("$")
            if kind == "reduce":
                settings = model.get("settings") or {}
                numbers[ref] = {
                    key: (
                        labels,
                        _reduce(
                            vals, model["reducer"], settings.get("mode", ""), settings.get("replaceWithValue")
                        ),
                    )
                    for key, (labels, vals) in frames[source].items()
                }
            elif kind == "threshold":
                evaluator = model["conditions"][0]["evaluator"]
                numbers[ref] = {
                    key: (labels, 1.0 if _threshold(v, evaluator) else 0.0)
                    for key, (labels, v) in numbers[source].items()
                }
            else:
                raise UnsupportedExpression(f"{rule.uid}/{ref}: expression type {kind!r}")
    except InfluxError as exc:
        return Evaluation(rule.uid, at_ts, [InstanceResult({}, None, False, ERROR)], queries, str(exc))

    cond_ref = spec["condition"]
    if no_data:
        return Evaluation(rule.uid, at_ts, [InstanceResult({}, None, False, NODATA)], queries)
    reduced_ref = _value_ref(spec, cond_ref)
    instances = []
    for key, (labels, flag) in numbers[cond_ref].items():
        value = numbers.get(reduced_ref, {}).get(key, (labels, math.nan))[1]
        instances.append(InstanceResult(dict(labels), value, flag > 0, NORMAL))
    return Evaluation(rule.uid, at_ts, instances, queries)


def _value_ref(spec: dict[str, Any], cond_ref: str) -> str:
    """The expression whose number is worth reporting (the threshold's input)."""
    for node in spec["data"]:
        if node["refId"] == cond_ref and node["model"].get("type") == "threshold":
            return node["model"]["expression"].lstrip("$")
    return cond_ref


def instance_wants_to_fire(rule: AlertRule, inst: InstanceResult) -> bool:
    """The condition, with NoData/Error mapped by the rule's noDataState/execErrState."""
    if inst.state == NODATA:
        return rule.rule.get("noDataState", "NoData") == "Alerting"
    if inst.state == ERROR:
        return rule.rule.get("execErrState", "Error") in ("Alerting", "Error")
    return inst.condition


@dataclass
class FiringPeriod:
    labels: dict[str, str]
    start: pd.Timestamp  # first evaluation in state Alerting
    end: pd.Timestamp  # last evaluation in state Alerting


@dataclass
class Timeline:
    rule: AlertRule
    evaluations: list[Evaluation]
    states: list[dict[LabelKey, str]]
    firing: list[FiringPeriod]


def simulate_rule(
    client: InfluxClient,
    databases: Mapping[str, str],
    rule: AlertRule,
    start: Any,
    end: Any,
    step: Any = None,
) -> Timeline:
    """Evaluate every ``step`` (default: the group interval) from ``start`` to ``end``, applying ``for``."""
    step_td = pd.Timedelta(step) if step is not None else parse_duration(rule.interval)
    pending_for = parse_duration(rule.rule.get("for"))
    t = pd.Timestamp(start)
    end_ts = pd.Timestamp(end)
    since: dict[LabelKey, pd.Timestamp] = {}  # when the condition started to hold
    open_periods: dict[LabelKey, FiringPeriod] = {}
    firing: list[FiringPeriod] = []
    evaluations, states = [], []
    while t <= end_ts:
        ev = evaluate_rule(client, databases, rule, t)
        current: dict[LabelKey, str] = {}
        for inst in ev.instances:
            key = inst.key
            if instance_wants_to_fire(rule, inst):
                since.setdefault(key, t)
                state = ALERTING if t - since[key] >= pending_for else PENDING
            else:
                since.pop(key, None)
                state = inst.state
            current[key] = state
            if state == ALERTING:
                period = open_periods.get(key)
                if period is None:
                    period = open_periods[key] = FiringPeriod(inst.labels, t, t)
                    firing.append(period)
                period.end = t
            else:
                open_periods.pop(key, None)
        for key in list(open_periods):  # a series that vanished resolves (Grafana: missing series)
            if key not in current:
                open_periods.pop(key)
                since.pop(key, None)
        evaluations.append(ev)
        states.append(current)
        t += step_td
    return Timeline(rule, evaluations, states, firing)


def firing_now(client: InfluxClient, databases: Mapping[str, str], rule: AlertRule, at: Any) -> Timeline:
    """What the rule's state is at ``at``: replay just long enough to honour its ``for`` period."""
    step = parse_duration(rule.interval)
    lookback = parse_duration(rule.rule.get("for")) + step
    at_ts = pd.Timestamp(at)
    return simulate_rule(client, databases, rule, at_ts - lookback, at_ts, step)
