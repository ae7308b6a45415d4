"""``vigil seed``: labelled synthetic history for development, training and tests."""

from __future__ import annotations

from pathlib import Path

import click

from toolkit.seed import seed_history
from vigil.influx import InfluxClient
from vigil.settings import get_settings


@click.command()
@click.option("--hours", type=float, default=24.0, show_default=True, help="Length of history.")
@click.option("--hosts", type=click.IntRange(min=1), default=5, show_default=True, help="Number of hosts.")
@click.option("--start", default=None, help="ISO start time (UTC if no offset); default: now - hours.")
@click.option("--seed", "seed_", type=int, default=None, help="Random seed (default: settings.random_seed).")
@click.option(
    "--anomalies/--no-anomalies", default=True, show_default=True, help="Inject labelled anomalies."
)
@click.option("--db", default=None, help="Raw-metrics database (default: settings.influx.raw_db).")
@click.option(
    "--plot",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also save a PNG of the first host with its label windows.",
)
def seed(
    hours: float,
    hosts: int,
    start: str | None,
    seed_: int | None,
    anomalies: bool,
    db: str | None,
    plot: Path | None,
) -> None:
    """Write realistic Telegraf-schema history with injected, labelled anomalies."""
    settings = get_settings()
    client = InfluxClient(settings.influx)
    result = seed_history(
        client,
        settings.influx,
        settings.collection,
        start=start,
        hours=hours,
        hosts=hosts,
        seed=settings.random_seed if seed_ is None else seed_,
        anomalies=anomalies,
        db=db,
    )
    click.echo(
        f"wrote {result.points:,} points for {len(result.hosts)} hosts "
        f"({result.start.isoformat()} .. {result.end.isoformat()}) in {result.seconds:.1f}s "
        f"({result.points / max(result.seconds, 1e-9):,.0f} points/s)"
    )
    if len(result.labels):
        counts = result.labels["kind"].value_counts().to_dict()
        click.echo(f"{len(result.labels)} labels {counts}; anomalous share {result.anomalous_share:.1%}")
    if plot is not None:
        from toolkit.seed.plot import plot_host

        plot_host(result, result.hosts[0], plot)
        click.echo(f"plot: {plot}")
