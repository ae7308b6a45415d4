"""An incident's ``report.md``, for people."""

from __future__ import annotations

import json
from pathlib import Path

from detector.incidents.model import PLOT, Incident, _iso


def render_report(incident: Incident, folder: Path) -> str:
    i = incident
    models = i.models or {}
    lines = [
        f"# Incident `{i.id}`",
        "",
        f"**{len(i.hosts)} host(s)** alarmed between {_iso(i.first_alarm_ns)} and {_iso(i.last_alarm_ns)} "
        f"(combined decision of the detector).",
        "",
        "| | |",
        "| --- | --- |",
        f"| status | {i.status} |",
        f"| captured window | {_iso(i.start_ns)} → {_iso(i.end_ns)} |",
        f"| raw points | {i.events}{' (truncated)' if i.truncated else ''} |",
        f"| predictions | {i.predictions} |",
        f"| alarms suppressed by cool-down after capture | {i.suppressed_alarms} |",
        "",
        "## Hosts",
        "",
        "| host | first alarm | last alarm | alarmed intervals | peak score | top features | raw captured |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for ep in sorted(i.hosts.values(), key=lambda e: e.first_alarm_ns):
        ranked = sorted(ep.top_features.items(), key=lambda kv: (-kv[1], kv[0]))[:3]
        tops = ", ".join(f"`{f}` ({c:.2f})" for f, c in ranked) or "—"
        lines.append(
            f"| {ep.host} | {_iso(ep.first_alarm_ns)} | {_iso(ep.last_alarm_ns)} | {ep.alarms} | "
            f"{ep.peak_score:.3g} | {tops} | {'yes' if ep.captured else 'no (host cap)'} |"
        )
    lines += ["", "## Models and thresholds in force", ""]
    for name, info in models.items():
        lines.append(f"- **{name}**: `{json.dumps(info, sort_keys=True, default=str)}`")
    lines += [
        "",
        f"![scores and raw metrics]({PLOT})",
        "",
        "## Reproduce",
        "",
        f"`vigil replay --source bundle --bundle {folder} --into SCRATCH_DB --speed 0`, then run a detector",
        "with `VIGIL_INFLUX__RAW_DB=SCRATCH_DB` and the champion version above.",
        "",
    ]
    return "\n".join(lines)
