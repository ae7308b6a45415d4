"""``vigil evaluate``: detection quality on public benchmarks (``vigil evaluate nab``)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import click


@click.group()
def evaluate() -> None:
    """Evaluate Vigil's detection quality on public benchmarks."""


@evaluate.command("nab")
@click.option(
    "--data",
    "data_dir",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="NAB corpus folder: data/<category>/<file>.csv, labels/combined_windows.json, optional results/.",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("nab_out"),
    show_default=True,
)
@click.option("--only", multiple=True, help="Only files whose key contains this text (repeatable).")
@click.option("--no-plots", is_flag=True, help="Skip the PNG per series.")
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=os.cpu_count() or 1,
    show_default="all cores",
    help="Processes the series are spread over (the results do not depend on it).",
)
def nab(data_dir: Path, out_dir: Path, only: tuple[str, ...], no_plots: bool, workers: int) -> None:
    """Stream every NAB series through the detector's own serving path (its settings, no champion),
    and score it with NAB's rules beside the published detectors."""
    from pipelines.nab.evaluate import evaluate_nab
    from vigil.serving.path import ServingConfig
    from vigil.settings import get_settings

    if not data_dir.is_dir():
        raise click.BadParameter(f"{data_dir} is not a folder", param_hint="--data")
    began = time.monotonic()
    try:
        evaluate_nab(
            data_dir,
            out_dir,
            ServingConfig.from_settings(get_settings()),
            only=list(only) or None,
            plots=not no_plots,
            echo=click.echo,
            workers=workers,
        )
    except (FileNotFoundError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    # a figure names its conditions: the machine is shared, and a busy one runs slower
    one, five, fifteen = os.getloadavg()
    click.echo(
        f"took {time.monotonic() - began:.0f} s with {workers} worker(s); "
        f"load {one:.1f}/{five:.1f}/{fifteen:.1f} on {os.cpu_count()} cores"
    )
