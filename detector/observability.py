"""The detector's figures: Prometheus metrics and the stats point for Grafana.

One :class:`DetectorMetrics` holds every counter; ``/metrics`` renders it in Prometheus
text format and the loop writes the same numbers to ``vigil.schema.DETECTOR_STATS``, so
Grafana and Prometheus never disagree. The registry is per instance (not the global
one) so several detectors can live in one test process. ``/metrics`` and ``/health`` are
served by :mod:`detector.api` (with the scoring API).
"""

from __future__ import annotations

import logging
import threading
from collections import Counter as PyCounter

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from vigil import schema
from vigil.lineprotocol import Point

log = logging.getLogger(__name__)

#: Distinct ``host`` label values of the data-quality counter; later hosts count as "other", so
#: a fleet of bad collectors cannot blow up the metrics (their events still name them).
MAX_DQ_HOST_LABELS = 1000


class DetectorMetrics:
    """Counters (cumulative since start) mirrored into Prometheus metrics."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self._points_read = Counter("vigil_detector_points_read", "Raw rows read from InfluxDB", registry=r)
        self._host_intervals = Counter("vigil_detector_host_intervals", "Host-intervals scored", registry=r)
        self._predictions = Counter(
            "vigil_detector_predictions_written", "Prediction points written to InfluxDB", registry=r
        )
        self._anomalies = Counter(
            "vigil_detector_anomalies", "Host-intervals flagged by the combined decision", registry=r
        )
        self._errors = Counter("vigil_detector_errors", "Errors by kind", ["kind"], registry=r)
        self._lag = Gauge(
            "vigil_detector_lag_seconds", "Now minus the end of the newest interval scored", registry=r
        )
        self._buffered = Gauge("vigil_detector_buffered_points", "Predictions not yet written", registry=r)
        self._hosts = Gauge("vigil_detector_hosts", "Hosts owned by this instance", registry=r)
        self._warmup_hosts = Gauge("vigil_detector_warmup_hosts", "Hosts still in warm-up", registry=r)
        self._loop = Histogram(
            "vigil_detector_loop_seconds",
            "Duration of one loop iteration",
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30),
            registry=r,
        )
        self._model = Gauge(
            "vigil_detector_model_info", "Model served (value 1)", ["model", "version", "mode"], registry=r
        )
        self._dq = Counter(
            "vigil_detector_data_quality",
            "Raw values the data-quality guard found, by host and kind (bad kinds are kept out of scoring)",
            ["host", "kind"],
            registry=r,
        )
        self._dq_incidents = Gauge(
            "vigil_detector_data_quality_incidents", "Hosts in a data-quality incident now", registry=r
        )
        self.points_read = 0
        self.host_intervals = 0
        self.predictions_written = 0
        self.anomalies = 0
        self.errors: PyCounter[str] = PyCounter()
        self.lag_s = 0.0
        self.loop_seconds = 0.0
        self.buffered = 0
        self.hosts = 0
        self.warmup_hosts = 0
        self.model_version = 0
        self.champion_loaded = 0
        self.data_quality: PyCounter[str] = PyCounter()  # kind -> values found
        self.dq_hosts: set[str] = set()  # hosts with a bad value so far
        self.dq_incidents = 0
        self._dq_labels: set[str] = set()
        self._lock = threading.Lock()

    def error(self, kind: str, n: int = 1) -> None:
        """Count ``n`` errors of ``kind`` (e.g. nan_value, type_conflict, influx_unavailable)."""
        if n <= 0:
            return
        with self._lock:
            self.errors[kind] += n
        self._errors.labels(kind=kind).inc(n)

    def data_quality_found(self, counts: dict[tuple[str, str], int], incidents: int) -> None:
        """Count what the data-quality guard found: ``(host, kind) -> values``; ``incidents``:
        hosts in a data-quality incident now."""
        with self._lock:
            for (host, kind), n in counts.items():
                if n <= 0:
                    continue
                self.data_quality[kind] += n
                if kind in schema.DATA_QUALITY_BAD_KINDS:
                    self.dq_hosts.add(host)
                if host not in self._dq_labels and len(self._dq_labels) >= MAX_DQ_HOST_LABELS:
                    host = "other"
                else:
                    self._dq_labels.add(host)
                self._dq.labels(host=host, kind=kind).inc(n)
            self.dq_incidents = incidents
        self._dq_incidents.set(incidents)

    def add(
        self, *, points_read: int = 0, host_intervals: int = 0, predictions: int = 0, anomalies: int = 0
    ) -> None:
        with self._lock:
            self.points_read += points_read
            self.host_intervals += host_intervals
            self.predictions_written += predictions
            self.anomalies += anomalies
        self._points_read.inc(points_read)
        self._host_intervals.inc(host_intervals)
        self._predictions.inc(predictions)
        self._anomalies.inc(anomalies)

    def observe_loop(
        self, seconds: float, lag_s: float, buffered: int, hosts: int, warmup_hosts: int
    ) -> None:
        self.loop_seconds, self.lag_s, self.buffered = seconds, lag_s, buffered
        self.hosts, self.warmup_hosts = hosts, warmup_hosts
        self._loop.observe(seconds)
        self._lag.set(lag_s)
        self._buffered.set(buffered)
        self._hosts.set(hosts)
        self._warmup_hosts.set(warmup_hosts)

    def set_model(self, name: str, version: int | None) -> None:
        self._model.clear()
        mode = "champion" if version else "online-only"
        self._model.labels(model=name, version=str(version or 0), mode=mode).set(1)
        self.model_version, self.champion_loaded = int(version or 0), int(bool(version))

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def stats_point(self, instance: str, shard: str, time_ns: int) -> Point:
        """The same figures as one ``vigil_detector_stats`` point."""
        return schema.DETECTOR_STATS.point(
            {"instance": instance, "shard": shard},
            {
                "points_read": self.points_read,
                "predictions_written": self.predictions_written,
                "anomalies": self.anomalies,
                "hosts": self.hosts,
                "lag_s": self.lag_s,
                "loop_seconds": self.loop_seconds,
                "errors": sum(self.errors.values()),
                "buffered": self.buffered,
                "model_version": self.model_version,
                "champion_loaded": self.champion_loaded,
                "dq_values": sum(self.data_quality[k] for k in schema.DATA_QUALITY_BAD_KINDS),
                **{f"dq_{k}": self.data_quality[k] for k in schema.DATA_QUALITY_KINDS},
                "dq_hosts": len(self.dq_hosts),
                "dq_incidents": self.dq_incidents,
            },
            time_ns,
        )
