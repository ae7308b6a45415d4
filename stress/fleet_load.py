"""``vigil stress load``: a synthetic fleet writing Telegraf-schema metrics for a bounded time.

Why a synthetic fleet: the detector's load is hosts x intervals, and one machine cannot host
thousands of real Telegraf agents. Each synthetic host is the seeder's host
(:func:`vigil.synthetic.generate_host`: its own baseline, daily shape and noise, anomaly-free),
rendered by the seeder's line builder (:func:`vigil.synthetic.lines.host_lines`), so the
measurements, tags, fields and types are exactly what the seeder and the collector write.

Like Telegraf, every host reports once per interval, stamped with the interval boundary
(precision s), and the whole fleet's lines for that tick are written right away.

Modes (6 measurements per host per tick; points/min = hosts x 6 x 60 / interval):

=======  =====  ========  ===========
mode     hosts  interval  points/min
=======  =====  ========  ===========
mini         3  10 s          108
normal     280  10 s       10,080
peak     1,400  10 s       50,400
crisis   2,800  10 s      100,800
=======  =====  ========  ===========

``--rate R`` picks the host count for R points/min at the interval; ``--hosts`` sets it directly.
"""

from __future__ import annotations

import math
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from vigil.influx import InfluxClient
from vigil.settings import InfluxSettings
from vigil.synthetic import generate_host
from vigil.synthetic.history import HostHistory
from vigil.synthetic.lines import MEASUREMENTS, host_lines

#: Safety bound: no load runs longer than this, whatever is asked.
MAX_DURATION_S = 3600.0
#: Ticks rendered into lines at a time (memory stays bounded on long runs).
BLOCK_TICKS = 6


@dataclass(frozen=True)
class FleetMode:
    hosts: int
    interval_s: int

    @property
    def points_per_min(self) -> float:
        return points_per_minute(self.hosts, self.interval_s)


MODES: dict[str, FleetMode] = {
    "mini": FleetMode(3, 10),
    "normal": FleetMode(280, 10),
    "peak": FleetMode(1400, 10),
    "crisis": FleetMode(2800, 10),
}


def points_per_minute(hosts: int, interval_s: float) -> float:
    return hosts * len(MEASUREMENTS) * 60.0 / interval_s


def hosts_for_rate(rate_per_min: float, interval_s: int) -> int:
    """Smallest host count whose points/min is at least ``rate_per_min``."""
    if rate_per_min <= 0:
        raise ValueError(f"--rate must be positive, not {rate_per_min}")
    return max(1, math.ceil(rate_per_min * interval_s / (len(MEASUREMENTS) * 60.0)))


def resolve_mode(
    mode: str, *, rate: float | None = None, hosts: int | None = None, interval_s: int | None = None
) -> FleetMode:
    """The mode's hosts and interval, with the overrides applied (``hosts`` wins over ``rate``)."""
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; one of {', '.join(MODES)}")
    base = MODES[mode]
    interval = int(interval_s or base.interval_s)
    if interval < 1:
        raise ValueError(f"--interval must be at least 1 s, not {interval}")
    n = base.hosts
    if rate is not None:
        n = hosts_for_rate(rate, interval)
    if hosts is not None:
        if hosts < 1:
            raise ValueError(f"--hosts must be at least 1, not {hosts}")
        n = hosts
    return FleetMode(n, interval)


def fleet_host_names(n: int, prefix: str = "load") -> list[str]:
    return [f"{prefix}-{i:05d}" for i in range(n)]


@dataclass
class LoadResult:
    """What a load run did (``ticks`` written, per-tick wall seconds)."""

    mode: FleetMode
    hosts: list[str]
    ticks: int = 0
    points: int = 0
    first_tick_s: int | None = None
    last_tick_s: int | None = None
    seconds: float = 0.0
    span_s: float = 0.0  # wall time covered: first tick boundary to the end of the last write + 1 interval
    interrupted: bool = False
    tick_seconds: list[float] = field(default_factory=list)

    @property
    def achieved_per_min(self) -> float:
        """Points per minute over the wall time covered (below target when writes fall behind)."""
        return self.points / self.span_s * 60.0 if self.span_s > 0 else 0.0


class Fleet:
    """Per-host generated values for ``n_ticks`` ticks; renders the lines of any tick range."""

    def __init__(self, names: list[str], n_ticks: int, interval_s: int, seed: int, start_s: int) -> None:
        self.interval_s = interval_s
        self.hosts: list[HostHistory] = [
            generate_host(i, name, start_s=start_s, n=n_ticks, dt=interval_s, seed=seed, anomalies=False)
            for i, name in enumerate(names)
        ]

    def lines(self, lo: int, hi: int, first_tick_s: int) -> list[list[str]]:
        """Lines of ticks ``lo:hi`` (one list per tick), stamped from ``first_tick_s``."""
        per_tick: list[list[str]] = [[] for _ in range(hi - lo)]
        t_s = first_tick_s + np.arange(lo, hi, dtype=np.int64) * self.interval_s
        for h in self.hosts:
            values = {k: v[lo:hi] for k, v in h.values.items()}
            for chunk in host_lines(h.profile.name, values, t_s, h.profile.n_cpus, hi - lo):
                for j, line in enumerate(chunk):
                    per_tick[j].append(line)
        return per_tick


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM ends the load like Ctrl-C (only in the main thread, where signals can be set)."""
    try:
        previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_load(
    influx: InfluxSettings,
    mode: FleetMode,
    *,
    duration_s: float,
    db: str | None = None,
    seed: int = 0,
    prefix: str = "load",
    echo: Callable[[str], None] = print,
    client: InfluxClient | None = None,
    stop: Callable[[], bool] | None = None,
) -> LoadResult:
    """Write the fleet's metrics once per interval for ``duration_s``; stops by itself.

    Ticks are at interval boundaries (``ceil(duration / interval)`` of them). Ctrl-C or SIGTERM
    (or ``stop()`` returning True) ends the run between writes; what was written stays written
    and the result says so.
    """
    if not 0 < duration_s <= MAX_DURATION_S:
        raise ValueError(f"--duration must be in (0, {MAX_DURATION_S:g}] s, not {duration_s}")
    db = db or influx.raw_db
    client = client or InfluxClient(influx)
    if influx.create_databases:
        client.create_database(db)
    iv = mode.interval_s
    n_ticks = max(1, math.ceil(duration_s / iv))
    names = fleet_host_names(mode.hosts, prefix)
    result = LoadResult(mode, names)
    echo(
        f"fleet: {mode.hosts} hosts x {len(MEASUREMENTS)} measurements every {iv} s = "
        f"{mode.points_per_min:,.0f} points/min for {n_ticks * iv} s ({n_ticks} ticks) into {db!r}"
    )
    t_gen = time.perf_counter()
    start_guess = int(time.time()) // iv * iv
    fleet = Fleet(names, n_ticks, iv, seed, start_guess)
    echo(f"fleet generated in {time.perf_counter() - t_gen:.1f} s")
    first_tick = (int(time.time()) // iv + 1) * iv  # the next interval boundary
    began = time.monotonic()
    block: list[list[str]] = []
    with sigterm_as_interrupt():
        try:
            for k in range(n_ticks):
                if stop is not None and stop():
                    result.interrupted = True
                    break
                if k % BLOCK_TICKS == 0:
                    block = fleet.lines(k, min(k + BLOCK_TICKS, n_ticks), first_tick)
                tick_s = first_tick + k * iv
                wait = tick_s - time.time()
                while wait > 0:
                    if stop is not None and stop():
                        break
                    time.sleep(min(wait, 0.25))
                    wait = tick_s - time.time()
                if stop is not None and stop():
                    result.interrupted = True
                    break
                t0 = time.perf_counter()
                lines = block[k % BLOCK_TICKS]
                result.points += client.write_lines(db, lines, precision="s")
                result.tick_seconds.append(time.perf_counter() - t0)
                result.ticks += 1
                result.first_tick_s = first_tick if result.first_tick_s is None else result.first_tick_s
                result.last_tick_s = tick_s
                result.seconds = time.monotonic() - began
                behind = time.time() - tick_s
                result.span_s = time.time() - first_tick + iv  # wall time this run has covered so far
                echo(
                    f"[{k + 1}/{n_ticks}] wrote {len(lines):,} points in {result.tick_seconds[-1]:.2f} s; "
                    f"achieved {result.achieved_per_min:,.0f} points/min (target {mode.points_per_min:,.0f})"
                    + (f"; {behind:.1f} s behind schedule" if behind > iv else "")
                )
        except KeyboardInterrupt:
            result.interrupted = True
            echo(f"interrupted after {result.ticks} ticks; {result.points:,} points written")
    return result
