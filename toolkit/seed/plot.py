"""A PNG of one seeded host with its label windows shaded: the quickest check that anomalies look right."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from toolkit.seed import SeedResult  # noqa: E402
from vigil.plotting import save_figure
from vigil.synthetic import generate_host

_COLORS = {
    "spike": "tab:red",
    "level_shift": "tab:orange",
    "leak": "tab:purple",
    "saturation": "tab:brown",
    "dropout": "tab:gray",
}


def plot_host(result: SeedResult, host: str, path: Path) -> Path:
    """Regenerate ``host`` (deterministic) and plot busy, memory, load per cpu and network rate."""
    n = int((result.end - result.start).total_seconds() // result.interval_s)
    hist = generate_host(
        result.hosts.index(host),
        host,
        start_s=int(result.start.value // 10**9),
        n=n,
        dt=result.interval_s,
        seed=result.seed,
        anomalies=result.anomalies,
    )
    v = hist.values
    t = pd.to_datetime(hist.t_s, unit="s", utc=True)
    total = (v["bytes_recv"] + v["bytes_sent"]).astype(float)
    rate = np.concatenate([[np.nan], np.diff(total)])  # a counter's first point has no rate
    series = [
        ("cpu busy %", 100 - v["usage_idle"]),
        ("mem used %", v["used_percent"]),
        ("load1 / cpu", v["load1"] / hist.profile.n_cpus),
        ("net bytes / 10 s (log)", np.log1p(rate)),
    ]
    fig, axes = plt.subplots(len(series), 1, figsize=(14, 9), sharex=True)
    for ax, (title, y) in zip(axes, series, strict=True):
        ax.plot(t, y, lw=0.6, color="tab:blue")
        ax.set_ylabel(title, fontsize=8)
        for lab in hist.labels:
            ax.axvspan(lab["start"], lab["end"], color=_COLORS.get(str(lab["kind"]), "tab:red"), alpha=0.3)
    kinds = ", ".join(sorted({str(lab["kind"]) for lab in hist.labels})) or "none"
    axes[0].set_title(
        f"{host}: {hist.profile.n_cpus} cpus, {hist.profile.mem_total / 2**30:.0f} GiB; labels: {kinds}"
    )
    return save_figure(fig, path, dpi=90)
