"""Names of every measurement Vigil reads or writes, with their tags and fields.

Writers build points through :meth:`Measurement.point`, which refuses unknown
tags or fields, so a typo cannot silently create a new series; readers and the
Grafana checks import the same names. ``docs/schema.md`` is generated from this
module's contents (``python -m vigil.schema``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from vigil.lineprotocol import Point

# Field types as written on the wire.
FLOAT, INT, STR, BOOL = "float", "integer", "string", "boolean"


@dataclass(frozen=True)
class Measurement:
    """A measurement: its name, allowed tag keys and typed fields."""

    name: str
    tags: tuple[str, ...]
    fields: dict[str, str]
    doc: str = ""
    required_fields: tuple[str, ...] = field(default=())

    def point(self, tags: dict[str, str], fields: dict[str, Any], time_ns: int) -> Point:
        """Build a point, checking tag keys, field names and field types against the schema."""
        unknown_tags = set(tags) - set(self.tags)
        if unknown_tags:
            raise ValueError(f"{self.name}: unknown tag(s) {sorted(unknown_tags)}; allowed {list(self.tags)}")
        unknown = set(fields) - set(self.fields)
        if unknown:
            raise ValueError(
                f"{self.name}: unknown field(s) {sorted(unknown)}; allowed {sorted(self.fields)}"
            )
        missing = [f for f in self.required_fields if f not in fields]
        if missing:
            raise ValueError(f"{self.name}: missing required field(s) {missing}")
        typed: dict[str, Any] = {}
        for key, value in fields.items():
            if value is None:
                continue
            kind = self.fields[key]
            if kind == INT:
                typed[key] = int(value)
            elif kind == FLOAT:
                typed[key] = float(value)
            elif kind == BOOL:
                typed[key] = bool(value)
            else:
                typed[key] = str(value)
        return Point(self.name, {k: str(v) for k, v in tags.items() if v not in (None, "")}, typed, time_ns)


# --- raw metrics, as Telegraf writes them (database: settings.influx.raw_db) -----------------
RAW_CPU = "cpu"
RAW_MEM = "mem"
RAW_NET = "net"
RAW_DISKIO = "diskio"
RAW_SYSTEM = "system"
RAW_PROCESSES = "processes"
RAW_PROCSTAT = "procstat"
RAW_PROCSTAT_LOOKUP = "procstat_lookup"
CPU_TOTAL_TAG = "cpu-total"
HOST_TAG = "host"

# --- what Vigil writes (database: settings.influx.vigil_db) -------------------------------------
LABELS = Measurement(
    "vigil_labels",
    tags=("host", "kind", "source", "label_id"),
    fields={"end_ns": INT, "duration_s": FLOAT, "severity": FLOAT, "description": STR, "incident_id": STR},
    required_fields=("end_ns",),
    doc="Ground-truth windows: time = window start, end_ns = window end. "
    "source = seed | stress | operator | manual; kind = spike | level_shift | leak | saturation | dropout | "
    "<scenario> | <operator's kind>, or false_positive: the window is normal (an operator's verdict on an "
    "alarm, incident_id names the incident). description holds the seeder's or the operator's note.",
)

PREDICTIONS = Measurement(
    "vigil_predictions",
    tags=("host", "model", "version", "source"),
    fields={
        "score": FLOAT,
        "threshold": FLOAT,
        "is_anomaly": INT,
        "warmup": INT,
        "top1_feature": STR,
        "top1_contribution": FLOAT,
        "top2_feature": STR,
        "top2_contribution": FLOAT,
        "top3_feature": STR,
        "top3_contribution": FLOAT,
        "alarm": INT,
    },
    required_fields=("score", "threshold", "is_anomaly"),
    doc="One point per host-interval and source (batch | online | combined); time = interval start. "
    "is_anomaly and warmup are 0/1 integers so Grafana can sum and average them. Only source=combined "
    "is the decision that pages: alert rules, panels, annotations and reports read is_anomaly of it alone. "
    "alarm (combined only) is 1 on the interval that pages: the first flagged interval of an incident, "
    "unless the host paged within detector_alarm_group_s (the rest of an incident is flagged but "
    "does not page again).",
)

DRIFT = Measurement(
    "vigil_drift",
    tags=("feature", "method", "reference_version"),
    fields={"statistic": FLOAT, "p_value": FLOAT, "p_adjusted": FLOAT, "drifted": INT},
    doc="Per-feature two-sample KS drift result of one drift check (method = ks | evidently).",
)

DRIFT_SUMMARY = Measurement(
    "vigil_drift_summary",
    tags=("reference_version",),
    fields={"drifted": INT, "share": FLOAT, "n_features": INT, "n_drifted": INT, "alpha": FLOAT},
    doc="One point per drift check: drifted (0/1) and the share of drifted features.",
)

MODEL_EVENTS = Measurement(
    "vigil_model_events",
    tags=("model", "event"),
    fields={
        "version": INT,
        "previous_version": INT,
        "metric": FLOAT,
        "previous_metric": FLOAT,
        "forced": INT,
        "reason": STR,
    },
    doc="Registry events: event = register | promote | reject | rollback.",
)

#: What the data-quality guard (``vigil.features.quality``) finds in raw values. The first five
#: are *bad*: the value is kept out of the features and counts towards a host's bad share; the
#: last two are noted only (a counter reset is real: its interval has no rate; a missing field
#: is a gap, not a wrong value).
DATA_QUALITY_BAD_KINDS: tuple[str, ...] = (
    "type_conflict",  # not a number (a string or boolean where a number belongs)
    "non_finite",  # NaN or +-inf
    "out_of_range",  # outside the field's declared physical bounds (vigil.features.definitions)
    "future_time",  # a timestamp beyond now + tolerance (a clock ahead)
    "counter_backwards",  # a counter that went down and came back: that reading was wrong
)
DATA_QUALITY_NOTED_KINDS: tuple[str, ...] = (
    "counter_reset",  # a counter that went down and stayed down (restart): no rate that interval
    "missing_field",  # a point without one of the fields the features read
)
DATA_QUALITY_KINDS: tuple[str, ...] = DATA_QUALITY_BAD_KINDS + DATA_QUALITY_NOTED_KINDS
#: The event kind of a data-quality incident (a host whose recent values are mostly bad).
DATA_QUALITY_INCIDENT = "incident"

DATA_QUALITY = Measurement(
    "vigil_data_quality",
    tags=("host", "kind", "field"),
    fields={"count": INT, "value": FLOAT, "share": FLOAT, "state": STR, "detail": STR},
    required_fields=("count",),
    doc="Raw values the detector's data-quality guard kept out of scoring, one point per host, "
    "interval, kind and field (time = interval start; for future_time the interval it was found in). "
    f"kind = {' | '.join(DATA_QUALITY_KINDS)} | {DATA_QUALITY_INCIDENT}; field = measurement.field; "
    "value = the most extreme offending value when finite. kind = incident (no field): a host whose "
    "values were mostly bad over the last few intervals, one point per interval while it lasts: "
    "state = open | ongoing | closed, share = bad share of its values, count = bad values, "
    "detail = the kinds. Its predictions cannot alarm meanwhile.",
)

DETECTOR_STATS = Measurement(
    "vigil_detector_stats",
    tags=("instance", "shard"),
    fields={
        "points_read": INT,
        "predictions_written": INT,
        "anomalies": INT,
        "hosts": INT,
        "lag_s": FLOAT,
        "loop_seconds": FLOAT,
        "errors": INT,
        "buffered": INT,
        "model_version": INT,
        "champion_loaded": INT,
        "dq_values": INT,
        **{f"dq_{kind}": INT for kind in DATA_QUALITY_KINDS},
        "dq_hosts": INT,
        "dq_incidents": INT,
    },
    doc="Detector self-monitoring, one point per loop iteration (counters are cumulative). "
    "dq_<kind>: raw values the data-quality guard found, per kind; dq_values: the bad ones "
    "(kept out of scoring); dq_hosts: hosts with a bad value so far; dq_incidents: hosts in a "
    "data-quality incident now.",
)

VIGIL_MEASUREMENTS: tuple[Measurement, ...] = (
    LABELS,
    PREDICTIONS,
    DRIFT,
    DRIFT_SUMMARY,
    MODEL_EVENTS,
    DETECTOR_STATS,
    DATA_QUALITY,
)


def render_markdown() -> str:
    """Markdown description of Vigil's own measurements (docs/schema.md)."""
    lines = ["# Measurements Vigil writes", "", "Generated by `python -m vigil.schema`.", ""]
    for m in VIGIL_MEASUREMENTS:
        lines += [f"## `{m.name}`", "", m.doc, "", f"Tags: {', '.join(f'`{t}`' for t in m.tags)}", ""]
        lines += ["| field | type |", "| --- | --- |"]
        lines += [f"| `{k}` | {v} |" for k, v in m.fields.items()]
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    print(render_markdown())
