"""``vigil collect``: the local Telegraf stand-in (started by ``vigil up``)."""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import click

from toolkit.collector.config import load_config
from toolkit.collector.loop import Collector
from vigil.settings import get_settings


@click.command()
@click.option("--once", is_flag=True, help="Prime, gather once, write, exit (tests, smoke checks).")
@click.option(
    "--interval",
    type=click.FloatRange(min=0.1),
    default=None,
    help="Seconds between gathers (default: settings).",
)
@click.option("--db", default=None, help="Target database (default: settings.influx.raw_db).")
@click.option(
    "--config",
    "config_path",
    type=click.Path(exists=True, path_type=Path),
    default=None,
    help="telegraf.conf to follow (default: the project's telegraf/telegraf.conf).",
)
def collect(once: bool, interval: float | None, db: str | None, config_path: Path | None) -> None:
    """Collect host metrics exactly as telegraf/telegraf.conf would, into InfluxDB."""
    settings = get_settings()
    collector = Collector(
        settings,
        config=load_config(settings.influx, settings.detector, config_path),
        interval_s=interval,
        db=db,
    )
    if once:
        n = collector.once()
        click.echo(
            f"gathered {n} points; written {collector.buffer.written}, buffered {len(collector.buffer)}"
        )
        return
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    collector.run(stop)
