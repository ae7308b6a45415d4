"""One host's labelled synthetic history: metrics in the Telegraf schema and its label windows.

Pure computation, no I/O: the pipelines (``pipelines/synthetic.py``) and the stress fleet load
generate hosts with it; the seeder (``toolkit.seed``) writes them into InfluxDB. Everything is
deterministic for a given ``seed`` and ``start``: each host draws from its own child generator,
so adding hosts or switching anomalies off leaves the clean series of the others unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from vigil.synthetic import anomalies as anom
from vigil.synthetic.profiles import HostProfile, make_profiles
from vigil.synthetic.signals import base_signals, derive


@dataclass
class HostHistory:
    """One host's generated history (before writing)."""

    profile: HostProfile
    t_s: np.ndarray
    values: dict[str, np.ndarray]
    labels: list[dict[str, object]]
    anomalous: np.ndarray  # bool per interval, True inside a label window


def host_names(hosts: int | Sequence[str]) -> list[str]:
    if isinstance(hosts, int):
        if hosts < 1:
            raise ValueError("hosts must be at least 1")
        return [f"host-{i:02d}" for i in range(hosts)]
    names = list(hosts)
    if not names or len(set(names)) != len(names):
        raise ValueError("hosts must be a non-empty list of distinct names")
    return names


def generate_host(
    index: int, name: str, *, start_s: int, n: int, dt: int, seed: int, anomalies: bool
) -> HostHistory:
    """Generate one host's metrics and label windows (pure computation, no I/O)."""
    prof_ss, noise_ss, anom_ss, derive_ss = np.random.SeedSequence([seed, index]).spawn(4)
    profile = make_profiles([name], [np.random.default_rng(prof_ss)])[0]
    t_s = start_s + np.arange(n, dtype=np.int64) * dt
    clean = base_signals(profile, t_s, np.random.default_rng(noise_ss))
    drivers = clean.copy()
    labels: list[dict[str, object]] = []
    anomalous = np.zeros(n, dtype=bool)
    if anomalies:
        rng = np.random.default_rng(anom_ss)
        planned = anom.schedule(profile, n, dt, rng, kind_offset=index)
        for a in planned:
            anom.apply(drivers, a, rng)
        for k, (a, lo, hi) in enumerate(anom.label_windows(profile, clean, drivers, planned, dt)):
            anomalous[lo:hi] = True
            labels.append(
                {
                    "host": name,
                    "kind": a.kind,
                    "start": pd.Timestamp(int(t_s[lo]), unit="s", tz="UTC"),
                    "end": pd.Timestamp(int(t_s[hi - 1]) + dt, unit="s", tz="UTC"),
                    "label_id": f"seed{seed}-{name}-{start_s}-{k:03d}",
                    "injected_start": pd.Timestamp(int(t_s[a.start_idx]), unit="s", tz="UTC"),
                    "injected_end": pd.Timestamp(int(t_s[a.end_idx - 1]) + dt, unit="s", tz="UTC"),
                    "severity": a.severity,
                }
            )
    values = derive(profile, drivers, float(dt), np.random.default_rng(derive_ss))
    return HostHistory(profile, t_s, values, labels, anomalous)
