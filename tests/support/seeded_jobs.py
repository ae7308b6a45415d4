"""Seeded hosts with scheduled loads (a nightly backup, a one-off burst), written to a real InfluxDB,
and the serving path run over them the way the detector reads: window by window.

Built from the seeder's own parts (profiles, drivers, Telegraf-shaped values and lines), so the
history looks like every other seeded host; only the loads are added.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from vigil.features import fetch_raw
from vigil.influx import InfluxClient
from vigil.model import LoadedModel
from vigil.serving.path import ServingConfig, ServingPath
from vigil.synthetic.lines import host_lines
from vigil.synthetic.profiles import make_profiles
from vigil.synthetic.signals import base_signals, derive

DAY = 86_400


@dataclass(frozen=True)
class Load:
    """Extra CPU and disk work from ``start`` (seconds since the epoch) for ``seconds``."""

    start: int
    seconds: int
    busy: float = 45.0  # added CPU busy, percent
    disk: float = 25.0  # disk write (and read) rate multiplier


def write_host(
    client: InfluxClient,
    db: str,
    host: str,
    start: pd.Timestamp,
    seconds: int,
    loads: list[Load],
    seed: int = 5,
) -> None:
    """``seconds`` of 10 s history for ``host`` from ``start``, with ``loads`` on top."""
    dt = 10
    t_s = int(start.value // 10**9) + np.arange(seconds // dt, dtype=np.int64) * dt
    ss = np.random.SeedSequence([seed, 0]).spawn(3)
    profile = make_profiles([host], [np.random.default_rng(ss[0])])[0]
    drivers = base_signals(profile, t_s, np.random.default_rng(ss[1]))
    for load in loads:
        on = (t_s >= load.start) & (t_s < load.start + load.seconds)
        drivers.busy[on] = np.minimum(drivers.busy[on] + load.busy, 99.0)
        drivers.disk_write[on] *= load.disk
        drivers.disk_read[on] *= load.disk
    values = derive(profile, drivers, float(dt), np.random.default_rng(ss[2]))
    for chunk in host_lines(host, values, t_s, profile.n_cpus, 20_000):
        client.write_lines(db, chunk, precision="s")


def serve(
    client: InfluxClient,
    db: str,
    start: pd.Timestamp,
    end: pd.Timestamp,
    champion: LoadedModel | None = None,
    window: pd.Timedelta = pd.Timedelta(hours=6),
    config: ServingConfig | None = None,
) -> pd.DataFrame:
    """Run a fresh serving path over ``[start, end)`` window by window (as the detector reads);
    returns the combined predictions with the base metrics alongside."""
    path = ServingPath(config or ServingConfig())
    out = []
    lo = start
    while lo < end:
        hi = min(lo + window, end)
        served = path.update(fetch_raw(client, db, lo, hi, 10), champion)
        if served.scored is not None:
            frame = served.scored.combined.merge(served.base, on=["host", "time"], how="left")
            out.append(frame)
        lo = hi
    return pd.concat(out, ignore_index=True).sort_values(["host", "time"]).reset_index(drop=True)
