"""``vigil up``, ``vigil down``, ``vigil status``: the local stack from the command line."""

from __future__ import annotations

import time

import click

from toolkit.stack import manager
from toolkit.stack.services import SERVICE_NAMES
from vigil.processes import ServiceError
from vigil.settings import get_settings


def _names(value: str | None) -> list[str]:
    return [n.strip() for n in (value or "").split(",") if n.strip()]


_only = click.option(
    "--only", default=None, metavar="NAME[,NAME]", help=f"Only these services ({', '.join(SERVICE_NAMES)})."
)
_skip = click.option("--skip", default=None, metavar="NAME[,NAME]", help="All services but these.")


@click.command()
@_only
@_skip
def up(only: str | None, skip: str | None) -> None:
    """Start the local stack (bound to the loopback address, state under the run folder)."""
    settings = get_settings()
    click.echo(f"run folder: {settings.run_dir}")
    began = time.monotonic()
    try:
        timings = manager.up(settings, _names(only), _names(skip), echo=click.echo)
    except ServiceError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(
        f"up in {time.monotonic() - began:.1f}s ("
        + ", ".join(f"{k} {v:.1f}s" for k, v in timings.items())
        + ")"
    )


@click.command()
@_only
@_skip
def down(only: str | None, skip: str | None) -> None:
    """Stop what ``vigil up`` started: SIGTERM, then SIGKILL after a grace period."""
    try:
        manager.down(get_settings(), _names(only), _names(skip), echo=click.echo)
    except ServiceError as exc:
        raise click.ClickException(str(exc)) from exc


@click.command()
def status() -> None:
    """A table of the local services: pid, port, health, URL."""
    settings = get_settings()
    click.echo(f"run folder: {settings.run_dir}")
    rows = manager.status(settings)
    click.echo(manager.format_table(rows))
    click.echo(
        f"\nkey settings (a running service: those of its start, recorded in {settings.run_dir / 'settings'}; "
        "otherwise: what `vigil up` would start it with):"
    )
    click.echo(manager.format_settings(rows))
