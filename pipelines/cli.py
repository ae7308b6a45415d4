"""``vigil pipeline ...``: one sub-command per batch step, each printing its result as JSON.

The commands are thin: they parse options into the step function's arguments and print what it
returns, so what a person runs here is what Airflow and the tests run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from pipelines.common import PipelineError, to_jsonable
from vigil.cli_errors import CliError
from vigil.settings import get_settings


def _emit(result: Any) -> None:
    click.echo(json.dumps(to_jsonable(result), indent=2, default=str))


def _run(fn, *args: Any, **kwargs: Any) -> Any:
    try:
        return fn(*args, **kwargs)
    except PipelineError as exc:
        raise CliError(str(exc)) from exc


@click.group()
def pipeline() -> None:
    """Batch steps: extract, validate, drift, train, evaluate, register, promote, rollback."""


@pipeline.command()
@click.option("--start", help="Window start (ISO time).")
@click.option("--end", help="Window end (ISO time, default now).")
@click.option("--lookback", help="Window length before --end, e.g. 24h (instead of --start).")
@click.option("--out-dir", type=click.Path(path_type=Path), help="Folder for the parquet file.")
def extract(start: str | None, end: str | None, lookback: str | None, out_dir: Path | None) -> None:
    """Features (+ labels) for a window of raw metrics -> parquet named by content hash."""
    from pipelines.extract import extract as run

    _emit(_run(run, get_settings(), start=start, end=end, lookback=lookback, out_dir=out_dir))


@pipeline.command()
@click.argument("dataset", type=click.Path(exists=True, path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), help="Where to save the GX result JSON.")
@click.option("--now", help="Reference time for the freshness check (default now).")
@click.option("--run-id", help="MLflow run to log the result to.")
def validate(dataset: Path, out: Path | None, now: str | None, run_id: str | None) -> None:
    """Great Expectations suite; exit status 2 and the failed expectations if it fails."""
    from pipelines.validate import validate as run

    _emit(_run(run, get_settings(), dataset, out_path=out, now=now, run_id=run_id))


@pipeline.command()
@click.argument("current", type=click.Path(exists=True, path_type=Path))
@click.option("--reference", type=click.Path(exists=True, path_type=Path), help="Default: champion's data.")
@click.option("--alpha", type=float, default=0.05, show_default=True)
def drift(current: Path, reference: Path | None, alpha: float) -> None:
    """KS per feature (Holm-corrected) + Evidently report vs the champion's training data."""
    from pipelines.drift import drift as run

    _emit(_run(run, get_settings(), current, reference_path=reference, alpha=alpha))


@pipeline.command()
@click.argument("dataset", type=click.Path(exists=True, path_type=Path))
@click.option("--engine", type=click.Choice(["sklearn", "spark"]), default="sklearn", show_default=True)
@click.option("--family", "families", multiple=True, help="Restrict the scikit-learn families.")
@click.option(
    "--objective",
    type=click.Choice(["injected", "pr_auc", "f1"]),
    default="injected",
    show_default=True,
    help="injected: label-free (injected events caught at the alarm budget); pr_auc/f1 need labels.",
)
def train(dataset: Path, engine: str, families: tuple[str, ...], objective: str) -> None:
    """Grid search; every cell an MLflow child run; the best model logged as the contract pyfunc."""
    from pipelines.search import SKLEARN_FAMILIES
    from pipelines.train import train as run

    result = _run(
        run,
        get_settings(),
        dataset,
        engine=engine,
        families=families or SKLEARN_FAMILIES,
        objective=objective,
    )
    result.results = []  # the per-cell table is in MLflow; keep the output short
    from pipelines.mlflow_logging import run_links

    _emit({**to_jsonable(result), **run_links(get_settings().mlflow, result.run_id)})


@pipeline.command()
@click.argument("model_uri")
@click.argument("dataset", type=click.Path(exists=True, path_type=Path))
@click.option("--run-id", help="Run receiving the metrics (default: the run of a runs:/ URI).")
def evaluate(model_uri: str, dataset: Path, run_id: str | None) -> None:
    """The served decision on the holdout (events caught, false alarms per host-day), logged to the run."""
    from pipelines.evaluate import evaluate as run

    _emit(_run(run, get_settings(), model_uri, dataset, run_id=run_id))


@pipeline.command()
@click.argument("run_id")
@click.option(
    "--validation",
    type=click.Path(exists=True, path_type=Path),
    required=True,
    help="The GX result JSON of the dataset the run trained on.",
)
def register(run_id: str, validation: Path) -> None:
    """Register a training run's model; alias it challenger."""
    from pipelines.registry import register as run
    from pipelines.validate import report_from_json

    settings = get_settings()
    _emit(_run(run, settings.influx, settings.mlflow, run_id, validation_passed=report_from_json(validation)))


@pipeline.command()
@click.option("--version", type=int, help="Default: the challenger.")
@click.option("--dataset", type=click.Path(exists=True, path_type=Path), help="Default: the challenger's.")
@click.option("--force", is_flag=True, help="Promote without comparing (recorded as forced).")
@click.option("--backtest-from", help="Also require the backtest gate over [--backtest-from, --backtest-to).")
@click.option("--backtest-to", help="End of the backtest gate's window (default now).")
def promote(
    version: int | None, dataset: Path | None, force: bool, backtest_from: str | None, backtest_to: str | None
) -> None:
    """Make the challenger champion if it beats the champion on the same holdout (and passes the gates)."""
    from pipelines.registry import promote as run

    window = (backtest_from, backtest_to or "now") if backtest_from else None
    _emit(
        _run(run, get_settings(), version=version, dataset_path=dataset, force=force, backtest_window=window)
    )


@pipeline.command()
@click.argument("model_uri")
@click.argument("dataset", type=click.Path(exists=True, path_type=Path))
@click.option("--holdout-fraction", type=float, default=None, help="Default: the run's tag, else 0.25.")
def robustness(model_uri: str, dataset: Path, holdout_fraction: float | None) -> None:
    """F1 of MODEL_URI on DATASET's holdout under each seeded perturbation (nothing logged)."""
    from pipelines.evaluate import evaluate as run

    result = _run(
        run, get_settings(), model_uri, dataset, holdout_fraction=holdout_fraction, log_to_run=False
    )
    _emit({k: v for k, v in result.metrics.items() if "robust" in k or k == "holdout_f1"})


@pipeline.command()
@click.option("--reason", default="", help="Recorded with the event.")
def rollback(reason: str) -> None:
    """Move champion back to the version it replaced."""
    from pipelines.registry import rollback as run

    settings = get_settings()
    _emit(_run(run, settings.influx, settings.mlflow, reason=reason))
