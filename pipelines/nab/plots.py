"""One PNG per series: values, labelled windows shaded, probationary period marked, alarms as dots."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from vigil.plotting import save_figure


def plot_series(
    path: Path,
    title: str,
    values: pd.Series,
    anomaly_score: np.ndarray,
    alarms: np.ndarray,
    windows: list[tuple[int, int]],
    probation: int,
) -> Path:
    fig, (ax, ax2) = plt.subplots(2, 1, figsize=(14, 5), sharex=True, height_ratios=[3, 1])
    x = np.arange(len(values))
    ax.plot(x, values.to_numpy(), lw=0.6, color="tab:blue", label="value")
    for i, (left, right) in enumerate(windows):
        ax.axvspan(left, right, color="tab:red", alpha=0.15, label="labelled window" if i == 0 else None)
    ax.axvspan(0, probation, color="grey", alpha=0.12, label="probationary")
    idx = np.flatnonzero(alarms)
    ax.scatter(idx, values.to_numpy()[idx], color="tab:red", s=14, zorder=3, label=f"alarm ({len(idx)})")
    ax.set_title(title, fontsize=10)
    ax.legend(loc="upper left", fontsize=7)
    ax2.plot(x, anomaly_score, lw=0.6, color="tab:purple")
    ax2.set_ylabel("anomaly_score", fontsize=8)
    ax2.set_ylim(-0.02, 1.02)
    ax2.set_xlabel("row")
    return save_figure(fig, path, dpi=80)
