"""An incident's ``incident.png``: scores above a few raw metrics."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from detector.incidents.model import Incident
from vigil import schema
from vigil.decision import COMBINED_THRESHOLD
from vigil.plotting import save_figure


def plot(incident: Incident, events: list[dict[str, Any]], preds: pd.DataFrame, path: Path) -> Path:
    """Combined score per host (threshold, alarms) above a few raw metrics, the alarm span shaded."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [
        ("cpu", "usage_idle", "cpu busy %"),
        ("mem", "used_percent", "mem used %"),
        ("system", "load1", "load1"),
    ]
    fig, axes = plt.subplots(1 + len(panels), 1, figsize=(11, 8), sharex=True)
    lo, hi = (pd.Timestamp(t, unit="ns", tz="UTC") for t in (incident.first_alarm_ns, incident.last_alarm_ns))
    hi = hi + pd.Timedelta(seconds=incident.interval_s)
    for ax in axes:
        ax.axvspan(lo, hi, color="tab:red", alpha=0.12)
        ax.grid(alpha=0.3)
    ax = axes[0]
    if not preds.empty and "source" in preds:
        comb = preds[preds["source"] == "combined"]
        for host, part in comb.groupby("host"):
            ax.plot(part["time"], pd.to_numeric(part["score"], errors="coerce"), lw=1.2, label=str(host))
            alarm = part[pd.to_numeric(part["is_anomaly"], errors="coerce") == 1]
            ax.scatter(
                alarm["time"], pd.to_numeric(alarm["score"], errors="coerce"), color="tab:red", s=14, zorder=5
            )
        ax.axhline(COMBINED_THRESHOLD, color="tab:red", ls="--", lw=1, label="threshold")
        ax.legend(fontsize=7, ncol=4, loc="upper left")
    else:
        ax.text(0.5, 0.5, "no predictions stored", transform=ax.transAxes, ha="center")
    ax.set_ylabel("combined score", fontsize=8)
    frame = pd.DataFrame(
        [
            {
                "m": e["measurement"],
                "host": e["tags"].get("host"),
                "cpu": e["tags"].get("cpu"),
                "t": e["time_ns"],
                **e["fields"],
            }
            for e in events
            if e["measurement"] in {p[0] for p in panels}
        ]
    )
    for ax, (m, f, label) in zip(axes[1:], panels, strict=True):
        part = frame[(frame["m"] == m)] if not frame.empty else frame
        if m == "cpu" and not part.empty:
            part = part[part["cpu"] == schema.CPU_TOTAL_TAG]
        if not part.empty and f in part:
            for host, p in part.groupby("host"):
                values = pd.to_numeric(p[f], errors="coerce")
                values = 100 - values if f == "usage_idle" else values
                ax.plot(pd.to_datetime(p["t"], unit="ns", utc=True), values, lw=1, label=str(host))
        ax.set_ylabel(label, fontsize=8)
    fig.suptitle(f"incident {incident.id}: {len(incident.hosts)} host(s)", fontsize=10)
    fig.autofmt_xdate()
    return save_figure(fig, path, dpi=80)
