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


# --- raw metrics, as Telegraf writes them (database: settings.influx_raw_db) -----------------
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

# --- what Vigil writes (database: settings.influx_vigil_db) -------------------------------------
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
    },
    required_fields=("score", "threshold", "is_anomaly"),
    doc="One point per host-interval and source (batch | online | combined); time = interval start. "
    "is_anomaly and warmup are 0/1 integers so Grafana can sum and average them. Only source=combined "
    "is the decision that pages: alert rules, panels, annotations and reports read is_anomaly of it alone.",
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
    },
    doc="Detector self-monitoring, one point per loop iteration (counters are cumulative).",
)

VIGIL_MEASUREMENTS: tuple[Measurement, ...] = (
    LABELS,
    PREDICTIONS,
    DRIFT,
    DRIFT_SUMMARY,
    MODEL_EVENTS,
    DETECTOR_STATS,
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
