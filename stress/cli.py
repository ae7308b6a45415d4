"""``vigil stress list | run NAME | suite``: stress scenarios from the command line."""

from __future__ import annotations

import click

from stress.scenarios import SCENARIO_NAMES, SCENARIOS
from vigil.cli_errors import interrupted
from vigil.settings import get_settings


@click.group()
def stress() -> None:
    """Stress scenarios on this machine, with ground-truth labels and detection reports."""


@stress.command("list")
def list_scenarios() -> None:
    """The registered scenarios, their defaults and what they should move."""
    width = max(len(n) for n in SCENARIO_NAMES)
    click.echo(f"{'scenario'.ljust(width)}  expect    duration  intensity  metrics / description")
    for s in SCENARIOS.values():
        expect = "alarm" if s.anomalous else "no alarm"
        click.echo(
            f"{s.name.ljust(width)}  {expect:<8}  {s.default_duration_s:>6g} s  {s.default_intensity:>9g}  "
            f"{', '.join(s.metrics)}"
        )
        click.echo(f"{''.ljust(width)}  {s.description}")


_duration = click.option(
    "--duration", type=float, default=None, help="Seconds of load (default: the scenario's)."
)
_intensity = click.option("--intensity", type=float, default=None, help="0 < intensity <= 1 (default 1).")
_grace = click.option(
    "--grace", type=float, default=None, help="Seconds after the load in which alarms still count."
)


@stress.command("run")
@click.argument("name", type=click.Choice(SCENARIO_NAMES))
@_duration
@_intensity
@_grace
@click.option("--no-wait", is_flag=True, help="Do not wait for the detector; report on what is there.")
@click.option("--stop-on-detect", is_flag=True, help="End the load as soon as an alarm is seen.")
def run(
    name: str,
    duration: float | None,
    intensity: float | None,
    grace: float | None,
    no_wait: bool,
    stop_on_detect: bool,
) -> None:
    """Run scenario NAME: label its window, load the machine, wait for detection, write a report."""
    from stress.runner import run_scenario

    try:
        report = run_scenario(
            name,
            get_settings(),
            duration_s=duration,
            intensity=intensity,
            grace_s=grace,
            wait_for_detection=not no_wait,
            stop_on_detect=stop_on_detect,
            echo=click.echo,
        )
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc
    except KeyboardInterrupt:
        raise interrupted("interrupted; the load is stopped and the report written") from None
    click.echo("")
    click.echo(f"outcome: {report.outcome} ({'pass' if report.passed else 'FAIL'})")
    for kind, path in report.files.items():
        click.echo(f"{kind:>8}: {path}")


@stress.command("suite")
@_duration
@_intensity
@_grace
@click.option(
    "--settle",
    type=float,
    default=30.0,
    show_default=True,
    help="Least seconds of rest between scenarios (then until the host is quiet, at most 150 s).",
)
@click.option("--only", default=None, metavar="NAME[,NAME]", help="Run only these scenarios.")
@click.option("--full-load", is_flag=True, help="Run each load to its end even after an alarm.")
def suite(
    duration: float | None,
    intensity: float | None,
    grace: float | None,
    settle: float,
    only: str | None,
    full_load: bool,
) -> None:
    """Run every scenario and print a table: detected, time to detect, peak score, false alarms."""
    from stress.runner import format_table, run_suite

    names = tuple(n.strip() for n in (only or "").split(",") if n.strip()) or None
    try:
        reports = run_suite(
            get_settings(),
            names=names,
            duration_s=duration,
            intensity=intensity,
            grace_s=grace,
            settle_s=settle,
            stop_on_detect=not full_load,
            echo=click.echo,
        )
    except (KeyError, ValueError) as exc:
        raise click.BadParameter(str(exc)) from exc
    except KeyboardInterrupt:
        raise interrupted("interrupted; loads stopped") from None
    click.echo("")
    click.echo(format_table(reports))
    failed = [r.scenario for r in reports if not r.passed]
    if failed:
        click.echo(f"\nnot passed: {', '.join(failed)}")


@stress.command("load")
@click.option(
    "--mode",
    type=click.Choice(["mini", "normal", "peak", "crisis"]),
    default="mini",
    show_default=True,
    help="Fleet size: ~100, 10,000, 50,000 or 100,000 points/min (docs/replay_and_load.md).",
)
@click.option(
    "--rate", type=float, default=None, help="Points per minute instead of the mode's (sets hosts)."
)
@click.option("--hosts", type=int, default=None, help="Number of synthetic hosts (overrides --rate).")
@click.option("--interval", type=int, default=None, help="Seconds between reports of each host (default 10).")
@click.option("--duration", type=float, default=60.0, show_default=True, help="Seconds of load, then stop.")
@click.option("--db", default=None, help="Database to write into (default: VIGIL_INFLUX__RAW_DB).")
@click.option("--seed", type=int, default=0, show_default=True)
def load(
    mode: str,
    rate: float | None,
    hosts: int | None,
    interval: int | None,
    duration: float,
    db: str | None,
    seed: int,
) -> None:
    """Write a synthetic fleet (Telegraf schema) into InfluxDB for a bounded time."""
    from stress.fleet_load import resolve_mode, run_load
    from vigil.influx import InfluxError

    try:
        fleet = resolve_mode(mode, rate=rate, hosts=hosts, interval_s=interval)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc
    try:
        result = run_load(
            get_settings().influx, fleet, duration_s=duration, db=db, seed=seed, echo=click.echo
        )
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--duration") from exc
    except InfluxError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(
        f"done: {result.points:,} points from {len(result.hosts)} hosts in {result.ticks} ticks "
        f"({result.achieved_per_min:,.0f} points/min)" + (" — interrupted" if result.interrupted else "")
    )
    if result.interrupted:
        raise interrupted()
