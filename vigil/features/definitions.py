"""The feature definitions: which raw Telegraf fields Vigil uses and what it derives from them.

Everything that turns metrics into model inputs (training extraction, the online
detector, the scoring API) reads these definitions, so a feature is defined once.

Two levels:

* **base metrics** — one value per host and interval, in physical units
  (percent busy, bytes/s as ``log1p(rate / RATE_SCALE_BYTES)``, load per CPU);
* **features** — the base metrics made relative to the host's own baseline
  (``<metric>_z``), smoothed over a short window (``<metric>_zmean``) and the
  short-window volatility against the baseline's (``<metric>_vol``), so one model
  trained on a fleet can score a host it has never seen.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vigil import schema

#: Byte rates are compared on ``log1p(bytes_per_s / scale)``: relative (log) changes for busy
#: devices, while the trickle every server has stays near 0. Without a scale an idle loopback
#: going from 4 to 20 KB/s was a "5x burst" as loud as a real flood, and a process starting on
#: an idle disk (1.2 MB/s of page-cache misses for 10 s) looked like an I/O storm (both found
#: running the stress suite on a quiet machine).
NET_RATE_SCALE = 32_768.0  # agents, ssh, health checks: a few KB/s
DISK_RATE_SCALE = 1_048_576.0  # page-cache misses of a starting process: a few MB


def rate_transform(bytes_per_s: np.ndarray | float, scale: float = NET_RATE_SCALE) -> np.ndarray | float:
    """The scale byte rates are compared on (negative rates count as 0).

    >>> float(rate_transform(0.0)), round(float(rate_transform(NET_RATE_SCALE)), 3)
    (0.0, 0.693)
    """
    return np.log1p(np.clip(bytes_per_s, 0.0, None) / scale)


@dataclass(frozen=True)
class Bounds:
    """The values one raw field can physically take: anything outside ``[low, high]`` is not a
    measurement but a fault (a broken collector, a wrong unit, a bit flip), so the data-quality
    guard (:mod:`vigil.features.quality`) keeps it out of the features.

    ``slack`` accepts float noise just outside (``100.0 * x / x`` may round above 100); ``why``
    says where the limits come from (shown in ``docs/detector.md``).

    >>> PERCENT.contains(np.array([0.0, 100.0, 100.0000001, -5.0, 1e300])).tolist()
    [True, True, True, False, False]
    """

    low: float
    high: float
    why: str
    slack: float = 0.0

    def contains(self, values: np.ndarray) -> np.ndarray:
        """True where a (finite) value is physically possible; NaN and inf are never contained."""
        with np.errstate(invalid="ignore"):
            return (values >= self.low - self.slack) & (values <= self.high + self.slack)


#: Percentages of a whole (CPU time, memory): Telegraf computes them as shares, so 0-100.
PERCENT = Bounds(0.0, 100.0, "a share of a whole, in percent", slack=1e-6)
#: Counters since boot: Telegraf writes Go uint64 as int64 and clamps at 2^63 - 1.
COUNTER = Bounds(0.0, 2.0**63 - 1, "a counter since boot (uint64 written as int64, clamped at 2^63 - 1)")
#: Run-queue averages and process counts cannot exceed the number of tasks the kernel allows
#: (``PID_MAX_LIMIT``, 2^22 on 64-bit Linux).
TASKS = Bounds(0.0, 2.0**22, "tasks, at most the kernel's PID_MAX_LIMIT (2^22)")
#: Online CPUs: at least one; Linux builds allow at most 8,192 (``NR_CPUS``), kept generous.
CPUS = Bounds(1.0, 2.0**16, "online CPUs: at least 1, at most 65,536")


@dataclass(frozen=True)
class RawField:
    """One raw field read per interval: ``agg`` is ``mean`` for gauges, ``last`` for counters;
    ``bounds`` are the values it can physically take (declared here, once, for the guard)."""

    measurement: str
    field: str
    agg: str
    where: tuple[tuple[str, str], ...] = ()
    per_tag: str | None = None  # counters kept per device, then summed as rates
    bounds: Bounds | None = None

    @property
    def column(self) -> str:
        return f"{self.measurement}.{self.field}"


@dataclass(frozen=True)
class BaseMetric:
    """A base metric and how it is computed from raw fields."""

    name: str
    inputs: tuple[RawField, ...]
    kind: str  # "gauge" | "ratio" | "complement" | "rate"
    floor: float  # smallest baseline deviation, in the metric's units (idle hosts have ~0 variance)
    description: str
    rate_scale: float = NET_RATE_SCALE  # kind "rate" only: bytes/s that count as "a little" (rate_transform)


_CPU_TOTAL = (("cpu", schema.CPU_TOTAL_TAG),)

BASE_METRICS: tuple[BaseMetric, ...] = (
    BaseMetric(
        "cpu_busy",
        (RawField(schema.RAW_CPU, "usage_idle", "mean", _CPU_TOTAL, bounds=PERCENT),),
        "complement",
        2.0,
        "100 - usage_idle of cpu-total, percent",
    ),
    BaseMetric(
        "cpu_iowait",
        (RawField(schema.RAW_CPU, "usage_iowait", "mean", _CPU_TOTAL, bounds=PERCENT),),
        "gauge",
        1.0,
        "usage_iowait of cpu-total, percent",
    ),
    BaseMetric(
        "mem_used_pct",
        (RawField(schema.RAW_MEM, "used_percent", "mean", bounds=PERCENT),),
        "gauge",
        1.0,
        "mem used_percent",
    ),
    BaseMetric(
        "load_per_cpu",
        (
            RawField(schema.RAW_SYSTEM, "load1", "mean", bounds=TASKS),
            RawField(schema.RAW_SYSTEM, "n_cpus", "last", bounds=CPUS),
        ),
        "ratio",
        0.05,
        "system load1 / n_cpus",
    ),
    BaseMetric(
        "procs_total",
        (RawField(schema.RAW_PROCESSES, "total", "mean", bounds=TASKS),),
        "gauge",
        5.0,
        "processes total",
    ),
    BaseMetric(
        "net_rx",
        (RawField(schema.RAW_NET, "bytes_recv", "last", per_tag="interface", bounds=COUNTER),),
        "rate",
        0.3,
        "rate_transform of received bytes/s summed over interfaces",
    ),
    BaseMetric(
        "net_tx",
        (RawField(schema.RAW_NET, "bytes_sent", "last", per_tag="interface", bounds=COUNTER),),
        "rate",
        0.3,
        "rate_transform of sent bytes/s summed over interfaces",
    ),
    BaseMetric(
        "disk_read",
        (RawField(schema.RAW_DISKIO, "read_bytes", "last", per_tag="name", bounds=COUNTER),),
        "rate",
        0.3,
        "rate_transform of read bytes/s summed over disks",
        rate_scale=DISK_RATE_SCALE,
    ),
    BaseMetric(
        "disk_write",
        (RawField(schema.RAW_DISKIO, "write_bytes", "last", per_tag="name", bounds=COUNTER),),
        "rate",
        0.3,
        "rate_transform of written bytes/s summed over disks",
        rate_scale=DISK_RATE_SCALE,
    ),
)

BASE_METRIC_NAMES: tuple[str, ...] = tuple(m.name for m in BASE_METRICS)

#: Suffixes of the derived features, in column order.
FEATURE_KINDS: tuple[str, ...] = ("z", "zmean", "vol")


def feature_names(metrics: tuple[str, ...] = BASE_METRIC_NAMES) -> tuple[str, ...]:
    """Feature column names for the given base metrics, metric-major."""
    return tuple(f"{m}_{k}" for m in metrics for k in FEATURE_KINDS)


def metric_of(feature: str) -> str | None:
    """The base metric a feature column is derived from (None if ``feature`` is not one); a base
    metric's own name (what per-series evidence names) is its own metric.

    Why: an alarm names features; a report asks whether they belong to the metrics a scenario
    should move.

    >>> metric_of("cpu_busy_zmean"), metric_of("mem_used_pct_vol"), metric_of("disk_read"), metric_of("uptime")
    ('cpu_busy', 'mem_used_pct', 'disk_read', None)
    """
    if feature in BASE_METRIC_NAMES:
        return feature
    metric, _, kind = feature.rpartition("_")
    return metric if kind in FEATURE_KINDS and metric in BASE_METRIC_NAMES else None


#: The model input columns, in order. Every model and the detector use exactly these.
FEATURE_COLUMNS: tuple[str, ...] = feature_names()

#: Key columns of every base-metric and feature frame.
KEY_COLUMNS: tuple[str, str] = ("host", "time")
