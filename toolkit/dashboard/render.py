"""Render the provisioned dashboards' panels from their own queries to PNG + one HTML page.

Why: Grafana cannot run on the development machines, yet a user of the local stack
should see the same panels. Every plot comes from the panel's query in the dashboard
JSON, macro-expanded as Grafana would (:mod:`toolkit.grafana.macros`), so the page is
also a visual check of the provisioning. The alert list is the real evaluation of the
provisioned rules at the page's end time.
"""

from __future__ import annotations

import html
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.dates as mdates  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from toolkit.grafana.alerting import ALERTING, PENDING, firing_now  # noqa: E402
from toolkit.grafana.macros import TimeRange  # noqa: E402
from toolkit.grafana.panels import Series, TargetResult, resolve_variables, run_target  # noqa: E402
from toolkit.grafana.provisioning import (  # noqa: E402
    annotation_targets,
    datasource_databases,
    iter_panels,
    load_alert_rules,
    load_dashboards,
    panel_targets,
)
from vigil.influx import InfluxClient, InfluxError  # noqa: E402
from vigil.settings import InfluxSettings  # noqa: E402

log = logging.getLogger(__name__)
MAX_ANNOTATIONS = 400  # marks drawn per panel; beyond that the plot is a red smear


@dataclass
class PanelImage:
    dashboard_uid: str
    panel_id: int
    title: str
    png: Path | None
    table_html: str = ""
    queries: list[str] = field(default_factory=list)
    n_series: int = 0
    error: str = ""


@dataclass
class AlertStatus:
    uid: str
    title: str
    instances: list[tuple[dict[str, str], str, float | None]]  # labels, state, value

    @property
    def firing(self) -> bool:
        return any(state == ALERTING for _, state, _ in self.instances)


@dataclass
class DashboardPage:
    index: Path
    panels: list[PanelImage]
    alerts: list[AlertStatus]


def _times(series: Series) -> list[pd.Timestamp]:
    return list(pd.to_datetime(series.times_ms, unit="ms", utc=True))


def _plot_timeseries(ax: Any, results: list[TargetResult], panel: dict[str, Any]) -> int:
    custom = panel.get("fieldConfig", {}).get("defaults", {}).get("custom", {})
    points = custom.get("drawStyle") == "points" or panel.get("type") == "state-timeline"
    n = 0
    for res in results:
        for s in res.series:
            values = s.numeric()
            if not any(not math.isnan(v) for v in values):
                continue
            if panel.get("type") == "state-timeline":
                ax.step(_times(s), values, where="post", label=s.name, linewidth=2)
            elif points:
                ax.plot(_times(s), values, label=s.name, marker="o", markersize=4, linestyle="none")
            else:
                ax.plot(_times(s), values, label=s.name, linewidth=1.2)
            n += 1
    return n


def _plot_stat(ax: Any, results: list[TargetResult]) -> int:
    last = [
        (s.name, next((v for v in reversed(s.numeric()) if not math.isnan(v)), math.nan))
        for r in results
        for s in r.series
    ]
    ax.axis("off")
    text = "\n".join(f"{name or 'value'}: {value:g}" for name, value in last) or "no data"
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=16 if len(last) < 3 else 11)
    return len(last)


def _table_html(results: list[TargetResult]) -> tuple[str, int]:
    rows, columns = [], ["time"]
    for r in results:
        for s in r.series:
            columns.append(s.name.split(".")[-1])
    by_time: dict[int, dict[str, Any]] = {}
    for r in results:
        for s in r.series:
            col = s.name.split(".")[-1]
            for t, v in zip(s.times_ms, s.values, strict=True):
                by_time.setdefault(t, {})[col] = v
    for t in sorted(by_time, reverse=True)[:50]:
        cells = [str(pd.Timestamp(t, unit="ms", tz="UTC"))[:19]] + [
            "" if by_time[t].get(c) is None else str(by_time[t][c]) for c in columns[1:]
        ]
        rows.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
    head = "<tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in columns) + "</tr>"
    return f"<table class='data'>{head}{''.join(rows)}</table>", len(by_time)


def _annotation_times(results: list[TargetResult]) -> list[pd.Timestamp]:
    stamps = sorted({t for r in results for s in r.series for t in s.times_ms})
    return list(pd.to_datetime(stamps[:MAX_ANNOTATIONS], unit="ms", utc=True))


def render_panel(
    dashboard: dict[str, Any],
    panel: dict[str, Any],
    results: list[TargetResult],
    annotations: list[pd.Timestamp],
    time_range: TimeRange,
    out_dir: Path,
) -> PanelImage:
    image = PanelImage(dashboard["uid"], int(panel["id"]), panel.get("title", ""), None)
    image.queries = [r.query for r in results]
    if panel.get("type") == "table":
        image.table_html, image.n_series = _table_html(results)
        return image
    width = max(4.0, panel.get("gridPos", {}).get("w", 12) / 2.0)
    fig, ax = plt.subplots(figsize=(width, 3.2), dpi=90)
    try:
        if panel.get("type") == "stat":
            image.n_series = _plot_stat(ax, results)
        else:
            image.n_series = _plot_timeseries(ax, results, panel)
            if annotations:  # one collection, not one artist per mark
                ax.vlines(
                    annotations, 0, 1, transform=ax.get_xaxis_transform(), color="red", alpha=0.15, lw=0.8
                )
            ax.set_xlim(time_range.start, time_range.end)
            ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M", tz="UTC"))
            ax.grid(alpha=0.3)
            unit = panel.get("fieldConfig", {}).get("defaults", {}).get("unit", "")
            if unit and unit != "short":
                ax.set_ylabel(unit)
            if image.n_series == 0:
                ax.text(0.5, 0.5, "no data", transform=ax.transAxes, ha="center", va="center", color="grey")
            elif image.n_series <= 8:
                ax.legend(fontsize=7, loc="upper left")
        ax.set_title(image.title, fontsize=10)
        fig.subplots_adjust(left=0.1, right=0.98, top=0.88, bottom=0.12)  # tight_layout costs a full draw
        image.png = out_dir / f"{dashboard['uid']}-{panel['id']}.png"
        fig.savefig(image.png)
    finally:
        plt.close(fig)
    return image


def evaluate_alerts(client: InfluxClient, influx: InfluxSettings, at: pd.Timestamp) -> list[AlertStatus]:
    """Each provisioned rule's instances and states at ``at`` (``for`` periods honoured)."""
    dbs = datasource_databases(influx)
    out = []
    for rule in load_alert_rules():
        timeline = firing_now(client, dbs, rule, at)
        last = timeline.evaluations[-1]
        states = timeline.states[-1]
        out.append(
            AlertStatus(
                rule.uid,
                rule.title,
                [(inst.labels, states.get(inst.key, inst.state), inst.value) for inst in last.instances],
            )
        )
    return out


def render(
    client: InfluxClient,
    influx: InfluxSettings,
    time_range: TimeRange,
    out_dir: Path,
    progress: Callable[[str], None] = lambda _msg: None,
) -> DashboardPage:
    """Render every provisioned dashboard into ``out_dir`` (PNG per panel + index.html)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    dbs = datasource_databases(influx)
    images: list[PanelImage] = []
    sections: list[str] = []
    for dashboard in load_dashboards():
        progress(f"dashboard {dashboard['title']}")
        variables = resolve_variables(client, dbs, dashboard, time_range)
        annotation_results = []
        for target in annotation_targets(dashboard):
            try:
                annotation_results.append(run_target(client, dbs, target, time_range, variables))
            except InfluxError as exc:
                log.warning("annotation %s failed: %s", target.panel_title, exc)
        # the first annotation (anomalies / promotions) is drawn; the others are optional layers
        marks = _annotation_times(annotation_results[:1])
        targets = panel_targets(dashboard)
        parts = []
        for panel in iter_panels(dashboard):
            mine = [t for t in targets if t.panel_id == panel["id"]]
            if not mine:
                continue
            try:
                results = [run_target(client, dbs, t, time_range, variables) for t in mine]
                image = render_panel(dashboard, panel, results, marks, time_range, out_dir)
            except (InfluxError, ValueError) as exc:
                image = PanelImage(
                    dashboard["uid"], int(panel["id"]), panel.get("title", ""), None, error=str(exc)
                )
            images.append(image)
            parts.append(_panel_html(image))
        var_text = ", ".join(f"${n} = {', '.join(v.values) or '(none)'}" for n, v in variables.items())
        sections.append(
            f"<h2>{html.escape(dashboard['title'])}</h2><p class='meta'>{html.escape(var_text)}"
            f"{' · ' if var_text else ''}{len(marks)} annotation marks</p><div class='grid'>{''.join(parts)}</div>"
        )
    progress("alert rules")
    alerts = evaluate_alerts(client, influx, time_range.end)
    index = out_dir / "index.html"
    index.write_text(_page(time_range, sections, alerts))
    return DashboardPage(index, images, alerts)


def _panel_html(image: PanelImage) -> str:
    queries = "".join(f"<pre>{html.escape(q)}</pre>" for q in image.queries)
    if image.error:
        body = f"<p class='err'>query failed: {html.escape(image.error)}</p>"
    elif image.png is not None:
        body = f"<img src='{image.png.name}' alt='{html.escape(image.title)}'>"
    else:
        body = f"<h3>{html.escape(image.title)}</h3>{image.table_html}"
    return f"<div class='panel'>{body}<details><summary>query</summary>{queries}</details></div>"


def _page(time_range: TimeRange, sections: list[str], alerts: list[AlertStatus]) -> str:
    rows = []
    for a in alerts:
        for labels, state, value in a.instances or [({}, "Normal", None)]:
            cls = "fire" if state == ALERTING else ("pend" if state == PENDING else "")
            label_text = ", ".join(f"{k}={v}" for k, v in labels.items()) or "—"
            value_text = (
                "" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:g}"
            )
            rows.append(
                f"<tr class='{cls}'><td>{html.escape(a.title)}</td><td>{html.escape(label_text)}</td>"
                f"<td>{state}</td><td>{value_text}</td></tr>"
            )
    firing = sum(a.firing for a in alerts)
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>Vigil dashboards</title>
<style>body{{font-family:sans-serif;margin:1em 2em;background:#fafafa}} .grid{{display:flex;flex-wrap:wrap;gap:8px}}
.panel{{background:#fff;border:1px solid #ddd;padding:4px}} pre{{font-size:11px;white-space:pre-wrap;max-width:640px}}
table{{border-collapse:collapse}} td,th{{border:1px solid #ccc;padding:2px 6px;font-size:13px}}
tr.fire td{{background:#f8d0d0}} tr.pend td{{background:#fbeec0}} .meta{{color:#666}} .err{{color:#b00}}</style>
</head><body><h1>Vigil dashboards</h1>
<p class="meta">{time_range.start} → {time_range.end} (UTC) · rendered from grafana/provisioning with
Grafana's macro expansion</p>
<h2>Alert rules now ({firing} firing)</h2>
<table><tr><th>rule</th><th>instance</th><th>state</th><th>value</th></tr>{"".join(rows)}</table>
{"".join(sections)}
</body></html>
"""
