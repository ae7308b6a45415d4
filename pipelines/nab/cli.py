"""``vigil evaluate``: detection quality on public benchmarks (``vigil evaluate nab``)."""

from __future__ import annotations

from pathlib import Path

import click

DEFAULT_DATA = Path("/work/shared/nab")


@click.group()
def evaluate() -> None:
    """Evaluate Vigil's detection quality on public benchmarks."""


@evaluate.command("nab")
@click.option(
    "--data",
    "data_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_DATA,
    show_default=True,
    help="NAB corpus folder: data/<category>/<file>.csv, labels/combined_windows.json, optional results/.",
)
@click.option(
    "--detector", type=click.Choice(["online", "batch", "combined"]), default="online", show_default=True
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
def nab(data_dir: Path, detector: str, out_dir: Path, only: tuple[str, ...], no_plots: bool) -> None:
    """Stream every NAB series through Vigil, score it with NAB's rules beside the published detectors."""
    from pipelines.nab.evaluate import evaluate_nab

    if not data_dir.is_dir():
        raise click.BadParameter(f"{data_dir} is not a folder", param_hint="--data")
    try:
        evaluate_nab(
            data_dir, out_dir, detector, only=list(only) or None, plots=not no_plots, echo=click.echo
        )
    except (FileNotFoundError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
