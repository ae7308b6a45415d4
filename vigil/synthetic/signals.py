"""Clean (anomaly-free) driving signals of one host, and the metrics derived from them.

The generator works in two layers so anomalies can be injected in between:
:func:`base_signals` draws the drivers (cpu busy, iowait, memory share, byte
rates) with daily and weekly seasonality and smooth + fast noise, sharing one
activity curve and one slow noise so cpu, load, network and disk move together;
:func:`derive` turns drivers into what Telegraf reports (cpu split summing to
100, load averages as the kernel's exponential averages of the run queue,
counters as cumulative integer sums that only grow).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vigil.synthetic.profiles import HostProfile

DAY_S = 86_400


def iir1(x: np.ndarray, a: float, b: float, y0: float) -> np.ndarray:
    """``y[n] = a*y[n-1] + b*x[n]`` with ``y[-1] = y0``, vectorised (0 < a < 1).

    Why not scipy.signal.lfilter: importing scipy.signal costs seconds, more than
    seeding a day. Closed form per block: ``y = a^(k+1) * (y0 + cumsum(b*x / a^(k+1)))``;
    blocks keep ``a^-k`` far from overflow.
    """
    out = np.empty(len(x), dtype=float)
    block = max(1, int(500.0 / -np.log(a)))
    prev = float(y0)
    for lo in range(0, len(x), block):
        xb = np.asarray(x[lo : lo + block], dtype=float)
        powers = a ** np.arange(1, len(xb) + 1, dtype=float)
        yb = powers * (prev + np.cumsum(b * xb / powers))
        out[lo : lo + len(xb)] = yb
        prev = float(yb[-1])
    return out


def ar1(rng: np.random.Generator, n: int, phi: float) -> np.ndarray:
    """A stationary AR(1) series with unit variance (smooth noise when phi is near 1)."""
    white = rng.standard_normal(n)
    return iir1(white, phi, np.sqrt(1 - phi**2), rng.standard_normal())


def ema(x: np.ndarray, dt: float, tau: float) -> np.ndarray:
    """Exponential moving average with time constant ``tau`` (seconds), started at x[0]."""
    alpha = 1.0 - np.exp(-dt / tau)
    return iir1(x, 1.0 - alpha, alpha, x[0])


def activity(profile: HostProfile, t_s: np.ndarray) -> np.ndarray:
    """0..1 load shape: a daily cosine peaking at ``peak_hour`` times a weekend factor."""
    hour = (t_s % DAY_S) / 3600.0
    daily = 0.5 * (1.0 + np.cos(2 * np.pi * (hour - profile.peak_hour) / 24.0))
    daily = profile.night_floor + (1.0 - profile.night_floor) * daily
    weekday = ((t_s // DAY_S) + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
    return np.where(weekday >= 5, profile.weekend_factor, 1.0) * daily


@dataclass
class Drivers:
    """The per-interval drivers of one host (all float arrays of the same length)."""

    busy: np.ndarray  # 100 - usage_idle
    iowait: np.ndarray
    mem_frac: np.ndarray
    net_recv: np.ndarray  # bytes/s
    net_sent: np.ndarray
    disk_read: np.ndarray
    disk_write: np.ndarray
    run_extra: np.ndarray  # extra runnable tasks per cpu (saturation)

    def copy(self) -> Drivers:
        return Drivers(**{k: v.copy() for k, v in self.__dict__.items()})


def base_signals(profile: HostProfile, t_s: np.ndarray, rng: np.random.Generator) -> Drivers:
    n = len(t_s)
    act = activity(profile, t_s)
    slow = ar1(rng, n, 0.995)  # ~30 min memory, shared by cpu, network and disk
    busy = profile.base_busy * (0.55 + 0.6 * act) + 2.5 * slow + 1.5 * ar1(rng, n, 0.6)
    busy = np.clip(busy, 1.0, 96.0)
    iowait = profile.iowait_base * (0.6 + 0.8 * act) * np.exp(0.25 * ar1(rng, n, 0.9))
    mem_frac = profile.mem_frac + 0.04 * act + 0.012 * ar1(rng, n, 0.999) + 0.003 * rng.standard_normal(n)
    net_level = (0.45 + act) * np.exp(0.12 * slow + 0.1 * ar1(rng, n, 0.98) + 0.08 * rng.standard_normal(n))
    net_recv = profile.net_base * net_level
    net_sent = net_recv * profile.net_sent_ratio * np.exp(0.05 * rng.standard_normal(n))
    disk_level = (0.5 + act) * np.exp(0.1 * slow + 0.15 * ar1(rng, n, 0.95) + 0.1 * rng.standard_normal(n))
    disk_write = profile.disk_base * disk_level
    disk_read = disk_write * profile.disk_read_ratio * np.exp(0.1 * rng.standard_normal(n))
    return Drivers(
        busy=busy,
        iowait=np.minimum(iowait, busy * 0.5),
        mem_frac=np.clip(mem_frac, 0.05, 0.97),
        net_recv=net_recv,
        net_sent=net_sent,
        disk_read=disk_read,
        disk_write=disk_write,
        run_extra=np.zeros(n),
    )


def load_per_cpu_driver(profile: HostProfile, d: Drivers) -> np.ndarray:
    """Runnable + uninterruptible tasks per cpu, the quantity the kernel averages into loadN."""
    return d.busy / 100.0 * 1.1 + d.iowait / 100.0 * 2.0 + d.run_extra


def derive(profile: HostProfile, d: Drivers, dt: float, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Telegraf-shaped values (floats and int64 counters) from drivers."""
    n = len(d.busy)
    busy, iowait = d.busy, d.iowait
    idle = 100.0 - busy
    steal = np.minimum(profile.steal * (1 + 0.3 * rng.standard_normal(n)).clip(0), busy * 0.1)
    rest = busy - iowait - steal
    softirq = rest * 0.025
    irq = rest * 0.004
    nice = rest * 0.01
    system = (rest - softirq - irq - nice) * profile.sys_frac
    user = rest - softirq - irq - nice - system

    run = load_per_cpu_driver(profile, d) * profile.n_cpus * np.exp(0.15 * rng.standard_normal(n))
    load1, load5, load15 = (ema(run, dt, tau) for tau in (60.0, 300.0, 900.0))

    total = profile.mem_total
    used = d.mem_frac * total
    buffered = np.full(n, 0.02 * total)
    cached = np.clip((1.0 - d.mem_frac) * 0.55 * total - buffered, 0, None)
    free = total - used - buffered - cached
    available = free + buffered + 0.85 * cached

    def counter(rate: np.ndarray, offset: int) -> np.ndarray:
        inc = np.maximum(rate, 0.0) * dt
        return offset + np.cumsum(inc).astype(np.int64)

    off = profile.counter_offset
    bytes_recv = counter(d.net_recv, off)
    bytes_sent = counter(d.net_sent, off // 2)
    pk = profile.packet_size
    packets_recv = counter(d.net_recv / pk, off // int(pk))
    packets_sent = counter(d.net_sent / pk, off // int(2 * pk))
    err_in = np.cumsum(rng.poisson(0.002, n))
    drop_in = np.cumsum(rng.poisson(0.01, n) * (d.net_recv > 0))
    read_bytes = counter(d.disk_read, off // 7)
    write_bytes = counter(d.disk_write, off // 3)
    reads = counter(d.disk_read / profile.io_size, off // 7 // int(profile.io_size))
    writes = counter(d.disk_write / profile.io_size, off // 3 // int(profile.io_size))
    util = np.clip(0.01 + iowait / 100.0 * 3 + d.disk_write / (profile.disk_base * 20), 0, 1)
    util = np.where(d.disk_write + d.disk_read > 0, util, 0.0)
    io_time = counter(util * 1000.0, off // 10**6)  # ms busy per second
    read_time = counter(d.disk_read / profile.io_size * 0.4, off // 10**7)
    write_time = counter(d.disk_write / profile.io_size * 0.9, off // 10**7)

    cpus_busy = busy / 100.0 * profile.n_cpus
    running = 1 + rng.poisson(np.clip(cpus_busy * 0.8 + d.run_extra * profile.n_cpus, 0, None))
    blocked = rng.poisson(np.clip(iowait / 100.0 * profile.n_cpus * 1.5, 0, None))
    zombies = (rng.random(n) < 0.002).astype(np.int64)
    total_procs = profile.base_procs + np.round(25 * busy / 100 + 3 * rng.standard_normal(n)).astype(np.int64)
    total_procs = np.maximum(total_procs, running + blocked + zombies + 10)
    sleeping = total_procs - running - blocked - zombies

    uptime = profile.uptime0 + (np.arange(n) * dt).astype(np.int64)
    return {
        "usage_user": user,
        "usage_system": system,
        "usage_idle": idle,
        "usage_nice": nice,
        "usage_iowait": iowait,
        "usage_irq": irq,
        "usage_softirq": softirq,
        "usage_steal": steal,
        "load1": load1,
        "load5": load5,
        "load15": load15,
        "uptime": uptime,
        "mem_total": np.full(n, total, dtype=np.int64),
        "mem_used": used.astype(np.int64),
        "mem_free": free.astype(np.int64),
        "mem_available": available.astype(np.int64),
        "mem_buffered": buffered.astype(np.int64),
        "mem_cached": cached.astype(np.int64),
        "used_percent": 100.0 * d.mem_frac,
        "available_percent": 100.0 * available / total,
        "bytes_recv": bytes_recv,
        "bytes_sent": bytes_sent,
        "packets_recv": packets_recv,
        "packets_sent": packets_sent,
        "err_in": err_in.astype(np.int64),
        "drop_in": drop_in.astype(np.int64),
        "read_bytes": read_bytes,
        "write_bytes": write_bytes,
        "reads": reads,
        "writes": writes,
        "io_time": io_time,
        "read_time": read_time,
        "write_time": write_time,
        "proc_total": total_procs,
        "proc_running": running.astype(np.int64),
        "proc_sleeping": sleeping.astype(np.int64),
        "proc_blocked": blocked.astype(np.int64),
        "proc_zombies": zombies,
    }
