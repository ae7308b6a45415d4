"""Injected anomalies and their ground-truth windows.

Each kind changes the drivers of one host for a while, strongly relative to
that host's own baseline (cpu busy, iowait, memory share, run queue per cpu,
network/disk byte rates). The label window is then measured, not assumed: it
spans the intervals where at least one detector-facing feature differs from
the clean series by more than :data:`ABNORMAL_SIGMAS` of its clean spread —
so a slow leak is labelled from where it becomes visible, and a saturation
includes the minutes the load averages need to decay.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vigil.features.definitions import DISK_RATE_SCALE, NET_RATE_SCALE, rate_transform
from vigil.synthetic.profiles import HostProfile
from vigil.synthetic.signals import Drivers, ema, load_per_cpu_driver

KINDS = ("spike", "level_shift", "leak", "saturation", "dropout")

#: (min, max) duration of the injected change, in minutes.
DURATION_MIN = {
    "spike": (1.0, 4.0),
    "level_shift": (10.0, 25.0),
    "leak": (20.0, 40.0),
    "saturation": (5.0, 20.0),
    "dropout": (3.0, 12.0),
}

#: Anomalies per host per day (Poisson mean); gives ~3-6 a day and ~2-5 % anomalous intervals.
RATE_PER_DAY = 4.0
ABNORMAL_SIGMAS = 3.0
#: How long after the injected change a label may extend (load averages and rolling windows decay).
MAX_TAIL_S = 15 * 60
MIN_GAP_S = 20 * 60


@dataclass(frozen=True)
class Anomaly:
    host: str
    kind: str
    start_idx: int  # injected change, [start_idx, end_idx)
    end_idx: int
    severity: float  # kind-specific magnitude (e.g. added busy %, rate factor)


def schedule(
    profile: HostProfile, n: int, dt: float, rng: np.random.Generator, *, kind_offset: int
) -> list[Anomaly]:
    """Non-overlapping anomalies for one host: a Poisson count (at least one), kinds rotated."""
    days = n * dt / 86_400
    count = max(1, int(rng.poisson(RATE_PER_DAY * days)))
    margin = int(min(15 * 60, n * dt * 0.1) / dt)
    gap = int(MIN_GAP_S / dt)
    placed: list[Anomaly] = []
    for j in range(count):
        kind = KINDS[(kind_offset + j) % len(KINDS)]
        lo, hi = DURATION_MIN[kind]
        length = max(1, int(rng.uniform(lo, hi) * 60 / dt))
        for _ in range(50):
            last_start = n - length - margin - int(MAX_TAIL_S / dt)
            if last_start <= margin:
                break
            start = int(rng.integers(margin, last_start))
            if all(start + length + gap <= a.start_idx or start >= a.end_idx + gap for a in placed):
                placed.append(Anomaly(profile.name, kind, start, start + length, _severity(kind, rng)))
                break
    return sorted(placed, key=lambda a: a.start_idx)


def _severity(kind: str, rng: np.random.Generator) -> float:
    return float(
        {
            "spike": rng.uniform(45, 65),  # added busy percentage points
            "level_shift": rng.uniform(25, 40),  # added busy percentage points
            "leak": rng.uniform(0.3, 0.42),  # added memory share at the end of the ramp
            "saturation": rng.uniform(2.5, 4.0),  # extra runnable tasks per cpu
            "dropout": 0.0,
        }[kind]
    )


def apply(d: Drivers, a: Anomaly, rng: np.random.Generator) -> None:
    """Change the drivers in place for one anomaly."""
    w = slice(a.start_idx, a.end_idx)
    n = a.end_idx - a.start_idx
    if a.kind == "spike":
        d.busy[w] = np.minimum(d.busy[w] + a.severity, 98.5)
        factor = rng.uniform(6, 12)
        d.net_recv[w] *= factor
        d.net_sent[w] *= factor
        d.disk_write[w] *= rng.uniform(2, 4)
    elif a.kind == "level_shift":
        d.busy[w] = np.minimum(d.busy[w] + a.severity, 97.0)
        d.net_recv[w] *= rng.uniform(2.5, 4)
        d.net_sent[w] *= rng.uniform(2.5, 4)
        d.disk_write[w] *= rng.uniform(4, 8)
    elif a.kind == "leak":
        ramp = np.linspace(0.0, a.severity, n)
        d.mem_frac[w] = np.minimum(d.mem_frac[w] + ramp, 0.97)
    elif a.kind == "saturation":
        d.busy[w] = rng.uniform(97.5, 99.5, n)
        d.iowait[w] = np.minimum(d.iowait[w] * 2, 5.0)
        d.run_extra[w] = a.severity
    elif a.kind == "dropout":
        first = a.start_idx
        for arr in (d.busy, d.iowait, d.mem_frac):
            arr[w] = arr[first]
        for arr in (d.net_recv, d.net_sent, d.disk_read, d.disk_write):
            arr[w] = 0.0
    else:
        raise ValueError(f"unknown anomaly kind {a.kind!r}")


def detector_view(profile: HostProfile, d: Drivers, dt: float) -> np.ndarray:
    """The features a per-host z-score detector looks at (rows = features), noise-free loads."""
    load1 = ema(load_per_cpu_driver(profile, d), dt, 60.0)
    return np.vstack(
        [
            d.busy,
            d.iowait,
            100.0 * d.mem_frac,
            load1,
            rate_transform(d.net_recv + d.net_sent, NET_RATE_SCALE),
            rate_transform(d.disk_read + d.disk_write, DISK_RATE_SCALE),
        ]
    )


def label_windows(
    profile: HostProfile, clean: Drivers, dirty: Drivers, anomalies: list[Anomaly], dt: float
) -> list[tuple[Anomaly, int, int]]:
    """(anomaly, first, last+1) intervals where the injected change is visibly abnormal."""
    before = detector_view(profile, clean, dt)
    after = detector_view(profile, dirty, dt)
    spread = before.std(axis=1, keepdims=True) + 1e-9
    abnormal = (np.abs(after - before) / spread > ABNORMAL_SIGMAS).any(axis=0)
    tail = int(MAX_TAIL_S / dt)
    out = []
    for a in anomalies:
        hi = min(a.end_idx + tail, len(abnormal))
        idx = np.flatnonzero(abnormal[a.start_idx : hi])
        if len(idx) == 0:  # cannot happen with the magnitudes above; keep the injected window then
            out.append((a, a.start_idx, a.end_idx))
        else:
            out.append((a, a.start_idx + int(idx[0]), a.start_idx + int(idx[-1]) + 1))
    return out
