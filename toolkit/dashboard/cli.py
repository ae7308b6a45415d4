"""``vigil dashboard [--from now-6h] [--to now] [--out DIR]``."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pandas as pd

from toolkit.grafana.macros import TimeRange
from vigil.influx import InfluxClient
from vigil.settings import get_settings

_UNITS = {"s": "s", "m": "min", "h": "h", "d": "D", "w": "W"}


def parse_time(text: str, now: pd.Timestamp) -> pd.Timestamp:
    """Grafana-style ``now``, ``now-6h``, ``now-30m`` or an ISO-8601 timestamp (UTC if naive)."""
    m = re.fullmatch(r"now(?:-(\d+)([smhdw]))?", text.strip())
    if m:
        return now if not m.group(1) else now - pd.Timedelta(int(m.group(1)), unit=_UNITS[m.group(2)])
    try:
        ts = pd.Timestamp(text)
    except ValueError as exc:
        raise click.BadParameter(f"{text!r}: use now, now-6h or an ISO timestamp") from exc
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


@click.command()
@click.option("--from", "from_", default="now-6h", show_default=True, help="Start: now-6h or ISO time.")
@click.option("--to", "to", default="now", show_default=True, help="End: now or ISO time.")
@click.option(
    "--out", type=click.Path(path_type=Path), default=None, help="Folder (default RUN_DIR/dashboard)."
)
def dashboard(from_: str, to: str, out: Path | None) -> None:
    """Render the Grafana dashboards' panels to PNG + HTML and list the alert rules firing now."""
    from toolkit.dashboard.render import render

    settings = get_settings()
    now = pd.Timestamp.now(tz="UTC")
    try:
        time_range = TimeRange.of(parse_time(from_, now), parse_time(to, now))
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc
    out_dir = out or settings.run_dir / "dashboard"
    client = InfluxClient(settings.influx)
    page = render(
        client, settings.influx, time_range, out_dir, progress=lambda msg: click.echo(f"rendering {msg} ...")
    )
    failed = [p for p in page.panels if p.error]
    click.echo(f"{len(page.panels)} panels -> {page.index}" + (f" ({len(failed)} failed)" if failed else ""))
    for p in failed:
        click.echo(f"  panel {p.dashboard_uid}/{p.title}: {p.error}", err=True)
    firing = [a for a in page.alerts if a.firing]
    click.echo(f"alert rules firing now: {len(firing)} of {len(page.alerts)}")
    for a in firing:
        for labels, state, value in a.instances:
            if state == "Alerting":
                label_text = ", ".join(f"{k}={v}" for k, v in labels.items()) or "-"
                click.echo(f"  FIRING {a.title} [{label_text}] value={value}")
