"""Generate the Grafana provisioning files (dashboards JSON, alert rules YAML) from :mod:`vigil.schema`.

Why generated: the measurement, tag and field names must come from one place. The files
under ``grafana/provisioning/`` are what Grafana reads (and what Compose mounts); they are
written by ``python -m toolkit.grafana.build`` and a test fails when they differ from what
this module produces, so a renamed field cannot leave a dashboard silently empty.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from vigil import schema as s
from vigil.settings import PROJECT_ROOT

PROVISIONING_DIR = PROJECT_ROOT / "grafana" / "provisioning"
DASHBOARDS_DIR = PROVISIONING_DIR / "dashboards"
ALERTING_DIR = PROVISIONING_DIR / "alerting"
RULES_FILE = ALERTING_DIR / "rules.yaml"

#: Fixed data source uids (dashboards and alert rules reference them; see datasources/influxdb.yaml).
RAW_DS_UID = "vigil-influx-raw"
VIGIL_DS_UID = "vigil-influx-vigil"
ALERT_FOLDER = "Vigil"
ALERT_GROUP = "vigil"
ALERT_GROUP_INTERVAL = "1m"

# Alert thresholds (documented in the rule annotations).
ANOMALY_RATE_THRESHOLD = 0.15  # share of host-intervals flagged over the last 5 minutes
STALE_MIN_PER_MINUTE = 0.5  # predictions per minute (3-minute moving average) below this = stale
SILENT_MIN_PER_MINUTE = 0.5  # raw points per minute (3-minute moving average) below this = silent
ERROR_LIMIT = 5  # detector errors in 10 minutes


def q(name: str) -> str:
    """A double-quoted InfluxQL identifier (names here are constants from vigil.schema)."""
    return '"' + name + '"'


HOST_FILTER = f"{q(s.HOST_TAG)} =~ /^$host$/"
#: What pages is the combined decision (vigil.decision): every query that reads ``is_anomaly`` keeps
#: to ``source = 'combined'``, so one model's solo flag never alerts, annotates or counts as an
#: anomaly (tests/unit/test_grafana_combined_only.py reads every generated query for it).
COMBINED_SOURCE = "combined"
COMBINED_FILTER = f"{q('source')} = '{COMBINED_SOURCE}'"


def _ds(uid: str) -> dict[str, str]:
    return {"type": "influxdb", "uid": uid}


def _target(ref: str, uid: str, query: str, alias: str = "", fmt: str = "time_series") -> dict[str, Any]:
    t: dict[str, Any] = {
        "refId": ref,
        "datasource": _ds(uid),
        "rawQuery": True,
        "resultFormat": fmt,
        "query": query,
    }
    if alias:
        t["alias"] = alias
    return t


class _Layout:
    """Places panels on Grafana's 24-column grid, two per row."""

    def __init__(self) -> None:
        self.next_id = 1
        self.x = 0
        self.y = 0

    def panel(
        self,
        title: str,
        targets: list[dict[str, Any]],
        *,
        kind: str = "timeseries",
        unit: str = "short",
        width: int = 12,
        height: int = 8,
        description: str = "",
        extra_defaults: dict[str, Any] | None = None,
        options: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        if self.x + width > 24:
            self.x, self.y = 0, self.y + height
        defaults: dict[str, Any] = {"unit": unit}
        defaults.update(extra_defaults or {})
        panel: dict[str, Any] = {
            "id": self.next_id,
            "type": kind,
            "title": title,
            "description": description,
            "gridPos": {"h": height, "w": width, "x": self.x, "y": self.y},
            "datasource": targets[0]["datasource"],
            "fieldConfig": {"defaults": defaults, "overrides": []},
            "options": options or {},
            "targets": targets,
        }
        self.next_id += 1
        self.x += width
        return panel


def _host_variable(uid: str, measurement: str) -> dict[str, Any]:
    return {
        "name": "host",
        "label": "Host",
        "type": "query",
        "datasource": _ds(uid),
        "query": f"SHOW TAG VALUES FROM {q(measurement)} WITH KEY = {q(s.HOST_TAG)}",
        "refresh": 2,
        "multi": True,
        "includeAll": True,
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "sort": 1,
        "options": [],
    }


def _dashboard(
    uid: str, title: str, panels: list[dict[str, Any]], variables: list[dict[str, Any]], annotations: list
) -> dict[str, Any]:
    return {
        "uid": uid,
        "title": title,
        "tags": ["vigil"],
        "timezone": "utc",
        "schemaVersion": 39,
        "version": 1,
        "editable": False,
        "refresh": "1m",
        "time": {"from": "now-6h", "to": "now"},
        "annotations": {"list": annotations},
        "templating": {"list": variables},
        "panels": panels,
    }


def _annotation(
    name: str, color: str, query: str, text: str, tags: str, enable: bool = True
) -> dict[str, Any]:
    """An InfluxQL annotation in the current (``target``) shape Grafana's InfluxDB plugin stores."""
    return {
        "name": name,
        "datasource": _ds(VIGIL_DS_UID),
        "enable": enable,
        "iconColor": color,
        "target": {
            "refId": "Anno",
            "fromAnnotations": True,
            "rawQuery": True,
            "query": query,
            "textColumn": text,
            "tagsColumn": tags,
        },
    }


def _anomaly_annotation() -> dict[str, Any]:
    p = s.PREDICTIONS
    return _annotation(
        "Anomalies",
        "red",
        f"SELECT {q('score')}, {q('top1_feature')}, {q(s.HOST_TAG)} FROM {q(p.name)} "
        f"WHERE {q('is_anomaly')} = 1 AND {COMBINED_FILTER} AND {HOST_FILTER} AND $timeFilter",
        "top1_feature",
        s.HOST_TAG,
    )


def _label_annotation() -> dict[str, Any]:
    lab = s.LABELS
    return _annotation(
        "Ground-truth windows",
        "orange",
        f"SELECT {q('description')}, {q('kind')}, {q(s.HOST_TAG)} FROM {q(lab.name)} "
        f"WHERE {HOST_FILTER} AND $timeFilter",
        "description",
        "kind",
        enable=False,
    )


def infrastructure_dashboard() -> dict[str, Any]:
    """cpu, memory, network, disk, load per host, with the detector's anomalies as annotations."""
    L = _Layout()
    by_host = f"GROUP BY time($__interval), {q(s.HOST_TAG)} fill(null)"
    panels = [
        L.panel(
            "CPU busy %",
            [
                _target(
                    "A",
                    RAW_DS_UID,
                    f"SELECT 100 - mean({q('usage_idle')}) FROM {q(s.RAW_CPU)} WHERE {q('cpu')} = "
                    f"'{s.CPU_TOTAL_TAG}' AND {HOST_FILTER} AND $timeFilter {by_host}",
                    "$tag_host",
                )
            ],
            unit="percent",
            extra_defaults={"min": 0, "max": 100},
        ),
        L.panel(
            "Memory used %",
            [
                _target(
                    "A",
                    RAW_DS_UID,
                    f"SELECT mean({q('used_percent')}) FROM {q(s.RAW_MEM)} "
                    f"WHERE {HOST_FILTER} AND $timeFilter {by_host}",
                    "$tag_host",
                )
            ],
            unit="percent",
            extra_defaults={"min": 0, "max": 100},
        ),
        L.panel(
            "Network throughput",
            [
                _target(
                    "A",
                    RAW_DS_UID,
                    f"SELECT non_negative_derivative(last({q('bytes_recv')}), 1s) AS {q('recv')}, "
                    f"non_negative_derivative(last({q('bytes_sent')}), 1s) AS {q('sent')} "
                    f"FROM {q(s.RAW_NET)} WHERE {HOST_FILTER} AND $timeFilter "
                    f"GROUP BY time($__interval), {q(s.HOST_TAG)}, {q('interface')} fill(null)",
                    "$tag_host $tag_interface $col",
                )
            ],
            unit="Bps",
            description="Counters since boot, as a per-second rate (resets dropped).",
        ),
        L.panel(
            "Disk I/O",
            [
                _target(
                    "A",
                    RAW_DS_UID,
                    f"SELECT non_negative_derivative(last({q('read_bytes')}), 1s) AS {q('read')}, "
                    f"non_negative_derivative(last({q('write_bytes')}), 1s) AS {q('write')} "
                    f"FROM {q(s.RAW_DISKIO)} WHERE {HOST_FILTER} AND $timeFilter "
                    f"GROUP BY time($__interval), {q(s.HOST_TAG)}, {q('name')} fill(null)",
                    "$tag_host $tag_name $col",
                )
            ],
            unit="Bps",
        ),
        L.panel(
            "Load per CPU (1 min)",
            [
                _target(
                    "A",
                    RAW_DS_UID,
                    f"SELECT mean({q('load1')}) / mean({q('n_cpus')}) FROM {q(s.RAW_SYSTEM)} "
                    f"WHERE {HOST_FILTER} AND $timeFilter {by_host}",
                    "$tag_host",
                )
            ],
        ),
        L.panel(
            "Processes",
            [
                _target(
                    "A",
                    RAW_DS_UID,
                    f"SELECT mean({q('total')}) AS {q('total')}, mean({q('running')}) AS {q('running')} "
                    f"FROM {q(s.RAW_PROCESSES)} WHERE {HOST_FILTER} AND $timeFilter {by_host}",
                    "$tag_host $col",
                )
            ],
        ),
        L.panel(
            "Anomaly score (max per interval)",
            [
                _target(
                    "A",
                    VIGIL_DS_UID,
                    f"SELECT max({q('score')}) FROM {q(s.PREDICTIONS.name)} "
                    f"WHERE {HOST_FILTER} AND $timeFilter {by_host}",
                    "$tag_host",
                )
            ],
            width=24,
            description="Red annotations: intervals the detector flagged (vigil_predictions.is_anomaly = 1, "
            "source = combined: the decision that pages).",
        ),
    ]
    return _dashboard(
        "vigil-infrastructure",
        "Vigil / Infrastructure",
        panels,
        [_host_variable(RAW_DS_UID, s.RAW_CPU)],
        [_anomaly_annotation(), _label_annotation()],
    )


def detector_dashboard() -> dict[str, Any]:
    """Scores against threshold, anomaly rate, lag, throughput, model version, errors, data quality."""
    L = _Layout()
    p, d, dq = s.PREDICTIONS.name, s.DETECTOR_STATS.name, s.DATA_QUALITY.name
    by_inst = f"GROUP BY time($__interval), {q('instance')} fill(null)"
    panels = [
        L.panel(
            "Score and threshold",
            [
                _target(
                    "A",
                    VIGIL_DS_UID,
                    f"SELECT mean({q('score')}) AS {q('score')}, mean({q('threshold')}) AS {q('threshold')} "
                    f"FROM {q(p)} WHERE {HOST_FILTER} AND $timeFilter "
                    f"GROUP BY time($__interval), {q(s.HOST_TAG)}, {q('source')} fill(null)",
                    "$tag_host $tag_source $col",
                )
            ],
            width=24,
        ),
        L.panel(
            "Anomaly rate %",
            [
                _target(
                    "A",
                    VIGIL_DS_UID,
                    f"SELECT mean({q('is_anomaly')}) * 100 FROM {q(p)} WHERE {COMBINED_FILTER} AND {HOST_FILTER} "
                    "AND $timeFilter "
                    f"GROUP BY time($__interval), {q(s.HOST_TAG)} fill(null)",
                    "$tag_host",
                )
            ],
            unit="percent",
            extra_defaults={"min": 0},
        ),
        L.panel(
            "Lag behind the data",
            [
                _target(
                    "A",
                    VIGIL_DS_UID,
                    f"SELECT max({q('lag_s')}) FROM {q(d)} WHERE $timeFilter {by_inst}",
                    "$tag_instance",
                )
            ],
            unit="s",
        ),
        L.panel(
            "Throughput",
            [
                _target(
                    "A",
                    VIGIL_DS_UID,
                    f"SELECT non_negative_derivative(max({q('points_read')}), 1s) AS {q('points read/s')}, "
                    f"non_negative_derivative(max({q('predictions_written')}), 1s) "
                    f"AS {q('predictions/s')} FROM {q(d)} WHERE $timeFilter {by_inst}",
                    "$tag_instance $col",
                )
            ],
            unit="ops",
        ),
        L.panel(
            "Errors per interval",
            [
                _target(
                    "A",
                    VIGIL_DS_UID,
                    f"SELECT non_negative_difference(max({q('errors')})) FROM {q(d)} WHERE $timeFilter {by_inst}",
                    "$tag_instance",
                )
            ],
            kind="timeseries",
            options={"legend": {"displayMode": "list"}},
        ),
        L.panel(
            "Model version served",
            [
                _target(
                    "A",
                    VIGIL_DS_UID,
                    f"SELECT last({q('model_version')}) FROM {q(d)} WHERE $timeFilter {by_inst}",
                    "$tag_instance",
                )
            ],
            kind="stat",
            width=6,
            options={"reduceOptions": {"calcs": ["lastNotNull"]}, "colorMode": "none"},
        ),
        L.panel(
            "Loop time and buffer",
            [
                _target(
                    "A",
                    VIGIL_DS_UID,
                    f"SELECT mean({q('loop_seconds')}) AS {q('loop s')}, max({q('buffered')}) AS {q('buffered')} "
                    f"FROM {q(d)} WHERE $timeFilter {by_inst}",
                    "$tag_instance $col",
                )
            ],
            width=6,
        ),
        L.panel(
            "Data quality: raw values found per host and kind",
            [
                _target(
                    "A",
                    VIGIL_DS_UID,
                    f"SELECT sum({q('count')}) FROM {q(dq)} WHERE {q('kind')} != '{s.DATA_QUALITY_INCIDENT}' "
                    f"AND {HOST_FILTER} AND $timeFilter "
                    f"GROUP BY time($__interval), {q(s.HOST_TAG)}, {q('kind')} fill(none)",
                    "$tag_host $tag_kind",
                )
            ],
            description="The data-quality guard, before the features: values outside their field's "
            "physical bounds, not numbers, stamped in the future or counters going backwards are kept "
            "out of scoring (counter resets and missing fields are only noted). vigil_data_quality.",
            extra_defaults={"custom": {"drawStyle": "points", "pointSize": 6}},
        ),
        L.panel(
            "Data-quality incidents",
            [
                _target(
                    "A",
                    VIGIL_DS_UID,
                    f"SELECT {q(s.HOST_TAG)}, {q('state')}, {q('share')}, {q('count')}, {q('detail')} "
                    f"FROM {q(dq)} WHERE {q('kind')} = '{s.DATA_QUALITY_INCIDENT}' AND {HOST_FILTER} "
                    f"AND $timeFilter ORDER BY time DESC",
                    fmt="table",
                )
            ],
            kind="table",
            description="Hosts whose values were mostly bad: no anomaly alarm for them meanwhile.",
        ),
    ]
    return _dashboard(
        "vigil-detector",
        "Vigil / Detector",
        panels,
        [_host_variable(VIGIL_DS_UID, p)],
        [_anomaly_annotation()],
    )


def models_dashboard() -> dict[str, Any]:
    """Drift per feature, promotions and rollbacks on a timeline, champion metrics."""
    L = _Layout()
    ev = s.MODEL_EVENTS.name
    promote_or_back = f"({q('event')} = 'promote' OR {q('event')} = 'rollback')"
    panels = [
        L.panel(
            "Drift statistic (KS) per feature",
            [
                _target(
                    "A",
                    VIGIL_DS_UID,
                    f"SELECT max({q('statistic')}) FROM {q(s.DRIFT.name)} WHERE $timeFilter "
                    f"GROUP BY time($__interval), {q('feature')} fill(none)",
                    "$tag_feature",
                )
            ],
            width=24,
            extra_defaults={"custom": {"drawStyle": "points", "pointSize": 6}},
        ),
        L.panel(
            "Share of drifted features",
            [
                _target(
                    "A",
                    VIGIL_DS_UID,
                    f"SELECT last({q('share')}) FROM {q(s.DRIFT_SUMMARY.name)} WHERE $timeFilter "
                    f"GROUP BY time($__interval) fill(none)",
                    "drifted share",
                )
            ],
            unit="percentunit",
            extra_defaults={"min": 0, "max": 1, "custom": {"drawStyle": "points", "pointSize": 6}},
        ),
        L.panel(
            "Champion version (promotions and rollbacks)",
            [
                _target(
                    "A",
                    VIGIL_DS_UID,
                    f"SELECT last({q('version')}) FROM {q(ev)} WHERE {promote_or_back} AND $timeFilter "
                    f"GROUP BY time($__interval), {q('model')} fill(previous)",
                    "$tag_model",
                )
            ],
            kind="state-timeline",
        ),
        L.panel(
            "Champion metric at each decision",
            [
                _target(
                    "A",
                    VIGIL_DS_UID,
                    f"SELECT {q('metric')} AS {q('challenger')}, {q('previous_metric')} AS {q('champion before')} "
                    f"FROM {q(ev)} WHERE ({q('event')} = 'promote' OR {q('event')} = 'reject') AND $timeFilter",
                    "$col",
                )
            ],
            extra_defaults={"custom": {"drawStyle": "points", "pointSize": 8}},
        ),
        L.panel(
            "Model events",
            [
                _target(
                    "A",
                    VIGIL_DS_UID,
                    f"SELECT {q('event')}, {q('version')}, {q('previous_version')}, {q('metric')}, "
                    f"{q('forced')}, {q('reason')} FROM {q(ev)} WHERE $timeFilter ORDER BY time DESC",
                    fmt="table",
                )
            ],
            kind="table",
        ),
    ]
    annotations = [
        _annotation(
            "Promotions and rollbacks",
            "purple",
            f"SELECT {q('version')}, {q('reason')}, {q('event')} FROM {q(ev)} "
            f"WHERE {promote_or_back} AND $timeFilter",
            "reason",
            "event",
        )
    ]
    return _dashboard("vigil-models", "Vigil / Models", panels, [], annotations)


DASHBOARDS = {
    "infrastructure.json": infrastructure_dashboard,
    "detector.json": detector_dashboard,
    "models.json": models_dashboard,
}

# --- alert rules ----------------------------------------------------------------------------------


def _rule(
    uid: str,
    title: str,
    ds_uid: str,
    query: str,
    window_s: int,
    reducer: str,
    evaluator: str,
    threshold: float,
    *,
    pending: str,
    no_data: str,
    summary: str,
    severity: str = "warning",
    dashboard_uid: str | None = None,
) -> dict[str, Any]:
    rule: dict[str, Any] = {
        "uid": uid,
        "title": title,
        "condition": "C",
        "for": pending,
        "noDataState": no_data,
        "execErrState": "Error",
        "labels": {"severity": severity, "team": "vigil"},
        "annotations": {"summary": summary},
        "data": [
            {
                "refId": "A",
                "relativeTimeRange": {"from": window_s, "to": 0},
                "datasourceUid": ds_uid,
                "model": {
                    "refId": "A",
                    "rawQuery": True,
                    "resultFormat": "time_series",
                    "intervalMs": 1000,
                    "maxDataPoints": 43200,
                    "query": query,
                },
            },
            {
                "refId": "B",
                "datasourceUid": "__expr__",
                "model": {
                    "refId": "B",
                    "type": "reduce",
                    "expression": "A",
                    "reducer": reducer,
                    "settings": {"mode": "dropNN"},
                },
            },
            {
                "refId": "C",
                "datasourceUid": "__expr__",
                "model": {
                    "refId": "C",
                    "type": "threshold",
                    "expression": "B",
                    "conditions": [{"evaluator": {"type": evaluator, "params": [threshold]}}],
                },
            },
        ],
    }
    if dashboard_uid:
        rule["dashboardUid"] = dashboard_uid
    return rule


def alert_rules() -> dict[str, Any]:
    """The unified-alerting rule file (file-provisioning format, ``apiVersion: 1``)."""
    p, d = s.PREDICTIONS.name, s.DETECTOR_STATS.name
    rules = [
        _rule(
            "vigil-anomaly-rate",
            "Anomaly rate above threshold",
            VIGIL_DS_UID,
            f"SELECT mean({q('is_anomaly')}) FROM {q(p)} WHERE {COMBINED_FILTER} AND $timeFilter "
            f"GROUP BY {q(s.HOST_TAG)}",
            300,
            "last",
            "gt",
            ANOMALY_RATE_THRESHOLD,
            pending="1m",
            no_data="OK",
            summary="{{ $labels.host }}: {{ humanizePercentage $values.B.Value }} of the last 5 minutes' "
            f"intervals flagged anomalous (threshold {ANOMALY_RATE_THRESHOLD:.0%}).",
            severity="critical",
            dashboard_uid="vigil-infrastructure",
        ),
        _rule(
            "vigil-detector-stale",
            "Detector stale",
            VIGIL_DS_UID,
            f"SELECT moving_average(count({q('score')}), 3) FROM {q(p)} WHERE $timeFilter "
            f"GROUP BY time(1m) fill(0)",
            900,
            "last",
            "lt",
            STALE_MIN_PER_MINUTE,
            pending="0s",
            no_data="Alerting",
            summary="No predictions written for about 3 minutes (dozens of poll intervals): "
            "the detector is down, stuck or cannot write.",
            severity="critical",
            dashboard_uid="vigil-detector",
        ),
        _rule(
            "vigil-drift-detected",
            "Feature drift detected",
            VIGIL_DS_UID,
            f"SELECT last({q('drifted')}) FROM {q(s.DRIFT_SUMMARY.name)} WHERE $timeFilter",
            86400,
            "last",
            "gt",
            0.5,
            pending="0s",
            no_data="OK",
            summary="The latest drift check found drift (KS, Holm-adjusted) against the champion's "
            "reference data: consider retraining.",
            dashboard_uid="vigil-models",
        ),
        _rule(
            "vigil-collector-silent",
            "Collector silent",
            RAW_DS_UID,
            f"SELECT moving_average(count({q('used_percent')}), 3) FROM {q(s.RAW_MEM)} WHERE $timeFilter "
            f"GROUP BY time(1m), {q(s.HOST_TAG)} fill(0)",
            900,
            "last",
            "lt",
            SILENT_MIN_PER_MINUTE,
            pending="0s",
            no_data="Alerting",
            summary="{{ $labels.host }} sent no metrics for about 3 minutes (it did in the last 15); "
            "no data at all from any host also fires this rule.",
            severity="critical",
            dashboard_uid="vigil-infrastructure",
        ),
        _rule(
            "vigil-detector-errors",
            "Detector error rate",
            VIGIL_DS_UID,
            f"SELECT sum({q('errors')}) FROM (SELECT non_negative_difference(max({q('errors')})) "
            f"AS {q('errors')} FROM {q(d)} WHERE $timeFilter GROUP BY time(1m), {q('instance')}) "
            f"GROUP BY {q('instance')}",
            600,
            "last",
            "gt",
            ERROR_LIMIT,
            pending="0s",
            no_data="OK",
            summary="Detector {{ $labels.instance }} logged {{ $values.B.Value }} errors in 10 minutes "
            f"(limit {ERROR_LIMIT}).",
            dashboard_uid="vigil-detector",
        ),
    ]
    return {
        "apiVersion": 1,
        "groups": [
            {
                "orgId": 1,
                "name": ALERT_GROUP,
                "folder": ALERT_FOLDER,
                "interval": ALERT_GROUP_INTERVAL,
                "rules": rules,
            }
        ],
    }


HEADER = "# Generated by `python -m toolkit.grafana.build` from vigil/schema.py: edit the generator, not this file.\n"


def render_all() -> dict[Path, str]:
    """Every generated file and its exact content."""
    files = {
        DASHBOARDS_DIR / name: json.dumps(builder(), indent=2, sort_keys=False) + "\n"
        for name, builder in DASHBOARDS.items()
    }
    files[RULES_FILE] = HEADER + yaml.safe_dump(alert_rules(), sort_keys=False, width=120)
    return files


def main() -> None:
    for path, text in render_all().items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        print(f"wrote {path.relative_to(PROJECT_ROOT)}")


if __name__ == "__main__":
    main()
