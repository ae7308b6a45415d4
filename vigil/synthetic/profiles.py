"""Per-host baselines: what makes one synthetic host look unlike another.

Hosts differ in size (CPUs, RAM), load level, time-zone phase of the daily peak,
weekend quietness, network and disk volume, so a detector has to learn per-host
baselines rather than one global threshold.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class HostProfile:
    name: str
    n_cpus: int
    mem_total: int  # bytes
    base_busy: float  # mean cpu busy % at full daily activity
    iowait_base: float  # %
    sys_frac: float  # share of non-iowait busy time in kernel mode
    steal: float  # %
    peak_hour: float  # local hour of the daily peak (UTC-based phase)
    night_floor: float  # activity at the quietest hour, 0..1
    weekend_factor: float  # activity multiplier on Saturday/Sunday
    mem_frac: float  # used memory share at rest
    net_base: float  # bytes/s received at full activity
    net_sent_ratio: float  # sent / received
    packet_size: float  # mean bytes per packet
    disk_base: float  # bytes/s written at full activity
    disk_read_ratio: float
    io_size: float  # mean bytes per disk operation
    base_procs: int
    uptime0: int  # seconds since boot at the first point
    counter_offset: int  # bytes already counted before the first point


def make_profiles(names: list[str], rng_for: list[np.random.Generator]) -> list[HostProfile]:
    """One profile per host name, each from its own generator (adding hosts does not change the others)."""
    profiles = []
    for name, rng in zip(names, rng_for, strict=True):
        n_cpus = int(rng.choice([2, 4, 8, 16, 32], p=[0.15, 0.3, 0.3, 0.17, 0.08]))
        mem_gib = int(rng.choice([4, 8, 16, 32, 64, 128], p=[0.1, 0.2, 0.3, 0.2, 0.15, 0.05]))
        profiles.append(
            HostProfile(
                name=name,
                n_cpus=n_cpus,
                mem_total=mem_gib * 1024**3,
                base_busy=float(rng.uniform(12, 42)),
                iowait_base=float(rng.uniform(0.3, 2.5)),
                sys_frac=float(rng.uniform(0.15, 0.32)),
                steal=float(rng.choice([0.0, rng.uniform(0.05, 0.6)], p=[0.6, 0.4])),
                peak_hour=float(rng.uniform(12.5, 16.5)),
                night_floor=float(rng.uniform(0.1, 0.35)),
                weekend_factor=float(rng.uniform(0.45, 0.8)),
                mem_frac=float(rng.uniform(0.22, 0.55)),
                net_base=float(10 ** rng.uniform(5.0, 6.8)),
                net_sent_ratio=float(rng.uniform(0.3, 1.6)),
                packet_size=float(rng.uniform(500, 1300)),
                disk_base=float(10 ** rng.uniform(4.7, 6.3)),
                disk_read_ratio=float(rng.uniform(0.2, 1.2)),
                io_size=float(rng.uniform(8, 64) * 1024),
                base_procs=int(rng.integers(120, 420)),
                uptime0=int(rng.integers(3_600, 90 * 86_400)),
                counter_offset=int(rng.integers(10**8, 10**12)),
            )
        )
    return profiles
