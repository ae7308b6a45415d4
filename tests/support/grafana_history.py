"""A seeded history for the Grafana checks: raw Telegraf-shaped metrics plus Vigil's own measurements.

Raw metrics come from the real seeder (``toolkit.seed.seed_history``, normal behaviour only,
so the incidents below sit at known places); the planted ground-truth windows are written
to ``vigil_labels`` (source=manual), read back, and the Vigil measurements derived from them: predictions flag the
labelled intervals (plus a 1 % sprinkle of false positives), the detector is down for
15 minutes, has one error burst, the collector of one host goes silent for 12 minutes, one host
sends impossible values for 3 minutes (data-quality events and an incident),
one drift check reports drift, and the champion is promoted and rolled back. Every
alert rule has exactly one kind of incident to find and long normal stretches to stay
quiet on.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from toolkit.seed import seed_history
from vigil import schema as s
from vigil.influx import InfluxClient, quote_ident, quote_literal, time_range
from vigil.lineprotocol import Point
from vigil.settings import Settings

STEP_S = 10
HOSTS = ("web-1", "db-1")
FEATURES = ("cpu_busy", "mem_used", "net_rx", "net_tx", "disk_read", "disk_write", "load_per_cpu")


@dataclass
class History:
    start: pd.Timestamp
    end: pd.Timestamp
    raw_db: str
    vigil_db: str
    labels: list[tuple[str, pd.Timestamp, pd.Timestamp]] = field(default_factory=list)  # host, start, end
    silent: tuple[str, pd.Timestamp, pd.Timestamp] | None = None  # collector gap (host, start, end)
    detector_down: tuple[pd.Timestamp, pd.Timestamp] | None = None
    error_burst: tuple[pd.Timestamp, pd.Timestamp] | None = None
    dq_burst: tuple[pd.Timestamp, pd.Timestamp] = (pd.Timestamp(0, tz="UTC"), pd.Timestamp(0, tz="UTC"))
    drift_at: pd.Timestamp | None = None
    next_drift_check: pd.Timestamp | None = None
    events: list[tuple[pd.Timestamp, str, int]] = field(default_factory=list)


def _ns(ts: pd.Timestamp) -> int:
    return int(ts.value)


def _write_raw(client: InfluxClient, settings: Settings, h: History, random_seed: int) -> None:
    """Normal Telegraf-schema history from the real seeder, then the silent collector cut out of it."""
    seed_history(
        client,
        settings.influx,
        settings.collection,
        start=h.start,
        hours=(h.end - h.start).total_seconds() / 3600,
        hosts=list(HOSTS),
        seed=random_seed,
        anomalies=False,  # incidents are planted below, at known places
        progress=False,
        db=h.raw_db,
    )
    if h.silent:
        host, lo, hi = h.silent
        client.query(
            h.raw_db,
            f"DELETE WHERE {quote_ident('host')} = {quote_literal(host)} AND {time_range(lo, hi)}",
            method="POST",
        )


def _write_labels(client: InfluxClient, db: str, h: History) -> None:
    pts = [
        s.LABELS.point(
            {
                "host": host,
                "kind": "spike" if i == 0 else "level_shift",
                "source": "seed",
                "label_id": f"g{i}",
            },
            {
                "end_ns": _ns(b),
                "duration_s": (b - a).total_seconds(),
                "severity": 1.0,
                "description": f"seeded anomaly {i} on {host}",
            },
            _ns(a),
        )
        for i, (host, a, b) in enumerate(h.labels)
    ]
    client.write_points(db, pts)


def read_labels(client: InfluxClient, db: str, start: pd.Timestamp, end: pd.Timestamp):
    """Ground-truth windows (host, start, end) as stored in vigil_labels."""
    q = (
        f"SELECT {quote_ident('end_ns')} FROM {quote_ident(s.LABELS.name)} "
        f"WHERE {time_range(start, end)} GROUP BY {quote_ident('host')}"
    )
    out = []
    for series in client.query(db, q):
        for t, end_ns in series["values"]:
            out.append(
                (series["tags"]["host"], pd.Timestamp(t, tz="UTC"), pd.Timestamp(int(end_ns), tz="UTC"))
            )
    return sorted(out, key=lambda x: x[1])


def _raw_intervals(client: InfluxClient, db: str, h: History) -> dict[str, set[int]]:
    """Which 10 s intervals of each host have raw data (the detector can only score those)."""
    q = (
        f"SELECT count({quote_ident('used_percent')}) FROM {quote_ident(s.RAW_MEM)} "
        f"WHERE {time_range(h.start, h.end)} GROUP BY time({STEP_S}s), {quote_ident('host')}"
    )
    out: dict[str, set[int]] = {}
    for series in client.query(db, q):
        out[series["tags"]["host"]] = {int(t) for t, c in series["values"] if c}
    return out


def _write_vigil(client: InfluxClient, h: History, rng: np.random.Generator) -> None:
    db = h.vigil_db
    have = _raw_intervals(client, h.raw_db, h)
    down = h.detector_down
    pts: list[Point] = []
    for host, stamps in have.items():
        windows = [(a, b) for lab_host, a, b in h.labels if lab_host == host]
        for ns in sorted(stamps):
            t = pd.Timestamp(ns, tz="UTC")
            if down and down[0] <= t < down[1]:
                continue
            anomalous = any(a <= t < b for a, b in windows)
            score = 0.85 + 0.1 * rng.random() if anomalous else 0.3 + 0.1 * rng.standard_normal()
            if not anomalous and rng.random() < 0.01:
                score = 0.75  # the occasional false positive
            pts.append(
                s.PREDICTIONS.point(
                    {"host": host, "model": "vigil-anomaly", "version": "4", "source": "combined"},
                    {
                        "score": score,
                        "threshold": 0.7,
                        "is_anomaly": int(score > 0.7),
                        "warmup": 0,
                        "top1_feature": "cpu_busy" if anomalous else "mem_used",
                        "top1_contribution": 0.6,
                    },
                    ns,
                )
            )
    # detector self-monitoring: one point per 10 s loop; counters restart at 0 after the outage
    points_read = written = errors = 0
    version = 3
    for t in pd.date_range(h.start, h.end, freq=f"{STEP_S}s", inclusive="left"):
        if down and down[0] <= t < down[1]:
            points_read = written = errors = 0
            continue
        for when, event, v in h.events:
            if when <= t and event in ("promote", "rollback"):
                version = v
        points_read += 12
        written += len(HOSTS)
        if h.error_burst and h.error_burst[0] <= t < h.error_burst[1]:
            errors += 1
        pts.append(
            s.DETECTOR_STATS.point(
                {"instance": "detector-0", "shard": "0"},
                {
                    "points_read": points_read,
                    "predictions_written": written,
                    "anomalies": 0,
                    "hosts": 2,
                    "lag_s": 22 + 3 * rng.random(),
                    "loop_seconds": 0.05 + 0.01 * rng.random(),
                    "errors": errors,
                    "buffered": 0,
                    "model_version": version,
                    "champion_loaded": 1,
                },
                _ns(t),
            )
        )
    # drift checks every 30 minutes; one of them finds drift
    for t in pd.date_range(h.start + pd.Timedelta(minutes=10), h.end, freq="30min"):
        drifted = h.drift_at is not None and t == h.drift_at
        for i, feat in enumerate(FEATURES):
            stat = (0.45 if drifted and i < 3 else 0.04) + 0.02 * rng.random()
            pts.append(
                s.DRIFT.point(
                    {"feature": feat, "method": "ks", "reference_version": "4"},
                    {
                        "statistic": stat,
                        "p_value": 0.001 if stat > 0.3 else 0.6,
                        "p_adjusted": 0.005 if stat > 0.3 else 1.0,
                        "drifted": int(stat > 0.3),
                    },
                    _ns(t),
                )
            )
        pts.append(
            s.DRIFT_SUMMARY.point(
                {"reference_version": "4"},
                {
                    "drifted": int(drifted),
                    "share": 3 / 7 if drifted else 0.0,
                    "n_features": 7,
                    "n_drifted": 3 if drifted else 0,
                    "alpha": 0.05,
                },
                _ns(t),
            )
        )
    # data quality: web-1 sends impossible values for a few minutes (a data-quality incident);
    # db-1 has a counter reset and one value from the future
    lo, hi = h.dq_burst
    for t in pd.date_range(lo, hi, freq=f"{STEP_S}s", inclusive="left"):
        for fld in ("cpu.usage_idle", "mem.used_percent"):
            pts.append(
                s.DATA_QUALITY.point(
                    {"host": "web-1", "kind": "out_of_range", "field": fld},
                    {"count": 1, "value": 150.0},
                    _ns(t),
                )
            )
        state = "open" if t == lo else "ongoing"
        pts.append(
            s.DATA_QUALITY.point(
                {"host": "web-1", "kind": s.DATA_QUALITY_INCIDENT},
                {"count": 2, "share": 0.2, "state": state, "detail": "out_of_range"},
                _ns(t),
            )
        )
    pts.append(
        s.DATA_QUALITY.point(
            {"host": "web-1", "kind": s.DATA_QUALITY_INCIDENT},
            {"count": 0, "share": 0.0, "state": "closed"},
            _ns(hi),
        )
    )
    pts.append(
        s.DATA_QUALITY.point(
            {"host": "db-1", "kind": "counter_reset", "field": "net.bytes_recv"},
            {"count": 1, "value": 5.0},
            _ns(lo),
        )
    )
    pts.append(
        s.DATA_QUALITY.point(
            {"host": "db-1", "kind": "future_time", "field": "mem.used_percent"},
            {"count": 1, "value": 40.0},
            _ns(hi),
        )
    )
    for when, event, v in h.events:
        pts.append(
            s.MODEL_EVENTS.point(
                {"model": "vigil-anomaly", "event": event},
                {
                    "version": v,
                    "previous_version": max(v - 1, 1),
                    "metric": 0.8 + v / 100,
                    "previous_metric": 0.78,
                    "forced": 0,
                    "reason": f"{event} v{v}",
                },
                _ns(when),
            )
        )
    client.write_points(db, pts)


def seed(
    client: InfluxClient,
    settings: Settings,
    raw_db: str,
    vigil_db: str,
    *,
    hours: float = 3.0,
    random_seed: int = 7,
) -> History:
    """Write the whole history ending at the current minute; returns what was planted where."""
    rng = np.random.default_rng(random_seed)
    end = pd.Timestamp.now(tz="UTC").floor("min")
    start = end - pd.Timedelta(hours=hours)
    m = lambda minutes: end - pd.Timedelta(minutes=minutes)  # noqa: E731
    h = History(start=start, end=end, raw_db=raw_db, vigil_db=vigil_db)
    h.labels = [("web-1", m(120), m(112)), ("db-1", m(70), m(62))]
    h.silent = ("db-1", m(40), m(28))
    h.detector_down = (m(100), m(85))
    h.error_burst = (m(50), m(45))
    h.dq_burst = (m(58), m(55))
    h.events = [
        (m(170), "register", 3),
        (m(170), "promote", 3),
        (m(150), "register", 4),
        (m(150), "promote", 4),
        (m(80), "register", 5),
        (m(80), "reject", 5),
        (m(20), "rollback", 3),
    ]
    for db in (raw_db, vigil_db):
        client.create_database(db)
    _write_raw(
        client,
        settings.model_copy(update={"influx_raw_db": raw_db, "influx_vigil_db": vigil_db}),
        h,
        random_seed,
    )
    _write_labels(client, vigil_db, h)
    h.labels = read_labels(client, vigil_db, start, end)
    checks = pd.date_range(start + pd.Timedelta(minutes=10), end, freq="30min")
    h.drift_at = checks[-3]
    h.next_drift_check = checks[-2]
    _write_vigil(client, h, rng)
    return h


def drop(client: InfluxClient, *dbs: str) -> None:
    for db in dbs:
        client.drop_database(db)


__all__ = ["History", "seed", "drop", "read_labels", "quote_literal"]
