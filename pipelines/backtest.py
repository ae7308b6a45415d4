"""backtest: how would a registered version have done over a window of history, as the detector serves it?

``vigil backtest --model NAME@ALIAS|NAME/VERSION|VERSION --from T --to T`` answers it; ``--compare
A B`` puts two versions side by side on the very same data. The window's raw metrics are read once
with :func:`pipelines.extract.extract` (the detector's feature code, labels joined the same way,
raw frames kept), anomalies are injected into a copy of the window's raw metrics
(:mod:`pipelines.inject`, the same seed for every version), and each version is made the champion
of :class:`vigil.serving.ServingPath` — the detector's own path: features, online model, champion,
per-host calibration, combined rule — replayed over the window (:func:`pipelines.evaluate.served_evaluation`).
Only the combined decision is judged (:func:`pipelines.served.served_metrics`): events caught
(injected and labelled, apart and pooled), false alarms per host-day, median time to detect.

Warm-up: the path absorbs ``warmup`` of history before ``--from`` (default
``settings.detector.history_hours``, the history the detector reads to warm-start a host); only
rows at or after ``--from`` are judged. With the window and warm-up of a dataset's holdout, the
backtest replays exactly what ``evaluate`` replayed and reports the same numbers (tested).

:func:`pipelines.gates.backtest_gate` turns a comparison into a promotion check (see ``docs/backtest_and_robustness.md``).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import click
import numpy as np
import pandas as pd

from pipelines.common import (
    PipelineError,
    configure_mlflow,
    default_out_dir,
    mlflow_client,
    read_dataset,
    read_raw,
    usable_rows,
    write_json,
)
from pipelines.evaluate import served_evaluation
from pipelines.extract import extract, resolve_window
from pipelines.served import concat_windows, plot_served
from vigil.cli_errors import CliError
from vigil.influx import InfluxClient
from vigil.plotting import save_figure
from vigil.settings import MlflowSettings, Settings

log = logging.getLogger(__name__)

#: The headline figure of a backtest (events caught by the served decision, pooled).
GATE_METRIC = "event_recall"
#: Metrics shown first in the Markdown table (the rest follow in ``served_metrics`` order).
TABLE_ORDER = (
    "event_recall",
    "injected_event_recall",
    "real_event_recall",
    "false_alarms_per_host_day",
    "median_ttd_s",
    "fp_window_alarms",
)


@dataclass(frozen=True)
class ModelRef:
    """A registry version resolved from a spec (``NAME@ALIAS``, ``NAME/VERSION`` or ``VERSION``)."""

    spec: str
    name: str
    version: int
    alias: str | None
    run_id: str | None

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"

    @property
    def label(self) -> str:
        return f"{self.name} v{self.version}" + (f" (@{self.alias})" if self.alias else "")


@dataclass
class ModelBacktest:
    model: ModelRef
    metrics: dict[str, float]
    score_seconds: float


@dataclass
class BacktestResult:
    start: pd.Timestamp
    end: pd.Timestamp
    warmup_start: pd.Timestamp
    dataset_path: Path
    dataset_hash: str
    rows: int
    hosts: int
    labelled_rows: int
    events: int
    models: list[ModelBacktest]
    json_path: Path
    markdown_path: Path
    png_path: Path
    scores_path: Path
    seconds: float
    notes: list[str] = field(default_factory=list)
    events_path: Path | None = None  # the event windows judged: injected and labelled (source column)

    def metrics_of(self, version: int) -> dict[str, float]:
        for m in self.models:
            if m.model.version == version:
                return m.metrics
        raise KeyError(version)


# --- resolving model specs ---------------------------------------------------------------------------

_SPEC = re.compile(
    r"^(?:models:/)?(?:(?P<name>[^@]+?)(?:@(?P<alias>[\w.-]+)|/(?P<version>\d+))|@(?P<alias_only>[\w.-]+)|(?P<bare>\d+))$"
)


def resolve_model(registry: MlflowSettings, spec: str) -> ModelRef:
    """``NAME@ALIAS`` | ``NAME/VERSION`` | ``VERSION`` | ``@ALIAS`` (of ``registry.model_name``) -> a version.

    Raises :class:`PipelineError` naming the spec when it is malformed, or the version or alias
    does not exist, or the registry cannot be reached.
    """
    from mlflow.exceptions import MlflowException

    match = _SPEC.match(spec.strip())
    if not match:
        raise PipelineError(
            f"bad model spec {spec!r}: use NAME@ALIAS, NAME/VERSION or VERSION (e.g. {registry.model_name}@champion)"
        )
    name = match["name"] or registry.model_name
    alias = match["alias"] or match["alias_only"]
    version = match["version"] or match["bare"]
    client = mlflow_client(registry)
    try:
        mv = (
            client.get_model_version_by_alias(name, alias)
            if alias
            else client.get_model_version(name, version)
        )
    except MlflowException as exc:
        what = f"alias {alias!r}" if alias else f"version {version}"
        raise PipelineError(
            f"model {spec!r}: registered model {name!r} has no {what} at {registry.uri}"
        ) from exc
    except Exception as exc:  # connection refused, timeouts
        raise PipelineError(f"cannot reach the MLflow registry at {registry.uri}: {exc}") from exc
    return ModelRef(spec, name, int(mv.version), alias, mv.run_id)


# --- the backtest ------------------------------------------------------------------------------------


def backtest(
    settings: Settings,
    models: Sequence[str],
    start: Any,
    end: Any,
    *,
    warmup: timedelta | str | None = None,
    out_dir: Path | None = None,
    client: InfluxClient | None = None,
    raw_db: str | None = None,
) -> BacktestResult:
    """Replay ``[start, end)`` through the served decision with each of ``models`` (specs, see
    :func:`resolve_model`); write ``backtest.json``, ``backtest.md``, ``backtest.png`` and
    ``scores.parquet`` (the combined decision per version) under ``out_dir``.
    """
    import mlflow

    began = time.perf_counter()
    if not models:
        raise PipelineError("backtest needs at least one model")
    start_ts, end_ts = resolve_window(start, end, None)
    lead = pd.Timedelta(warmup) if warmup is not None else pd.Timedelta(hours=settings.detector.history_hours)
    if lead < pd.Timedelta(0):
        raise PipelineError(f"warm-up must not be negative (got {warmup!r})")
    configure_mlflow(settings.mlflow)
    refs = [resolve_model(settings.mlflow, spec) for spec in models]  # fail fast, before reading history
    out_dir = Path(
        out_dir
        or default_out_dir(settings)
        / "backtest"
        / f"{start_ts:%Y%m%dT%H%M%S}-{end_ts:%Y%m%dT%H%M%S}-{'-'.join(f'v{r.version}' for r in refs)}"
    )
    log.info("backtest: extracting %s .. %s (+%s warm-up)", start_ts, end_ts, lead)
    ds = extract(
        settings,
        start=start_ts - lead,
        end=end_ts,
        out_dir=out_dir / "dataset",
        client=client,
        raw_db=raw_db,
    )
    frame = read_dataset(ds.path)
    judged = usable_rows(frame)
    judged = judged[judged["time"] >= start_ts]
    if judged.empty:
        raise PipelineError(
            f"no scorable rows between {start_ts} and {end_ts}: every host is still in baseline "
            f"warm-up (warm-up {lead}; give a longer --warmup or a later --from)"
        )
    raw = read_raw(ds.path)
    results, served = [], {}
    notes: list[str] = []
    for ref in refs:
        log.info("backtest: replaying %s .. %s with %s as champion", start_ts, end_ts, ref.label)
        try:
            model = mlflow.pyfunc.load_model(ref.uri)
        except Exception as exc:
            raise PipelineError(f"cannot load {ref.uri}: {exc}") from exc
        ev = served_evaluation(
            settings,
            model,
            raw,
            frame[frame["time"] >= start_ts],
            start_ts,
            end_ts,
            name=ref.name,
            version=ref.version,
            run_id=ref.run_id,
            keep_features=False,
        )
        results.append(ModelBacktest(ref, ev.metrics, ev.seconds))
        served[ref] = ev
        notes += [n for n in ev.notes if n not in notes]
        log.info(
            "backtest: %s events caught %s, %.2f false alarms per host-day (%.1fs)",
            ref.label,
            _fmt(ev.metrics["event_recall"]),
            ev.metrics["false_alarms_per_host_day"],
            ev.seconds,
        )
    first = served[refs[0]]
    scores = first.combined[["host", "time"]].copy()
    for ref, ev in served.items():
        aligned = ev.combined.set_index(["host", "time"]).reindex(pd.MultiIndex.from_frame(scores))
        scores[f"score_v{ref.version}"] = aligned["score"].to_numpy()
        scores[f"alarm_v{ref.version}"] = aligned["is_anomaly"].to_numpy()
    scores_path = out_dir / "scores.parquet"
    scores.to_parquet(scores_path, index=False)
    events_path = out_dir / "events.csv"
    concat_windows(first.windows, first.normal.assign(source="false_positive")).to_csv(
        events_path, index=False
    )
    if len(refs) == 1:
        png = plot_served(
            first.combined, first.windows, first.normal, out_dir / "backtest.png", f"backtest {refs[0].label}"
        )
    else:
        png = plot_compare(
            [(r.label, served[r].combined) for r in refs], first.windows, out_dir / "backtest.png"
        )
    result = BacktestResult(
        start=start_ts,
        end=end_ts,
        warmup_start=start_ts - lead,
        dataset_path=ds.path,
        dataset_hash=ds.dataset_hash,
        rows=int(first.metrics["rows"]),
        hosts=int(first.combined["host"].nunique()),
        labelled_rows=int(judged["label"].sum()),
        events=int(first.metrics["events"]),
        models=results,
        json_path=out_dir / "backtest.json",
        markdown_path=out_dir / "backtest.md",
        png_path=png,
        scores_path=scores_path,
        seconds=time.perf_counter() - began,
        notes=notes,
        events_path=events_path,
    )
    write_json(result.json_path, result)
    result.markdown_path.write_text(markdown_report(result))
    log.info("backtest: wrote %s (%.1fs)", result.markdown_path, result.seconds)
    return result


def markdown_report(result: BacktestResult) -> str:
    """The side-by-side table (one column per version) with the window's facts above it."""
    keys = list(TABLE_ORDER) + [k for k in result.models[0].metrics if k not in TABLE_ORDER]
    head = "| metric | " + " | ".join(m.model.label for m in result.models) + " |"
    lines = [
        f"# Backtest {result.start:%Y-%m-%d %H:%M:%S} .. {result.end:%Y-%m-%d %H:%M:%S} UTC (served decision)",
        "",
        f"{result.rows} host-intervals of {result.hosts} hosts judged on `source=combined`; "
        f"{result.events} events (injected and labelled), {result.labelled_rows} labelled rows; "
        f"history from {result.warmup_start:%Y-%m-%d %H:%M:%S} (warm-up), dataset `{result.dataset_hash[:16]}`.",
        *(f"\n> note: {n}" for n in result.notes),
        "",
        head,
        "|" + " --- |" * (len(result.models) + 1),
    ]
    for key in keys:
        cells = [_fmt(m.metrics.get(key, float("nan"))) for m in result.models]
        lines.append(f"| {key} | " + " | ".join(cells) + " |")
    lines.append(
        "| replay_seconds_total | " + " | ".join(f"{m.score_seconds:.2f}" for m in result.models) + " |"
    )
    return "\n".join(lines) + "\n"


def _fmt(value: float) -> str:
    return "n/a" if not np.isfinite(value) else f"{value:.4g}"


def plot_compare(
    series: list[tuple[str, pd.DataFrame]], windows: pd.DataFrame, path: Path, max_hosts: int = 6
) -> Path:
    """One PNG: per host, every version's combined score (threshold 1 for all: the combined rule
    puts every model on one scale), event windows shaded (cyan injected, red labelled); symlog so a
    score 50 times the threshold does not flatten the rest."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    hosts = sorted(series[0][1]["host"].astype(str).unique())[:max_hosts]
    fig, axes = plt.subplots(
        max(1, len(hosts)), 1, figsize=(12, 1.9 * max(1, len(hosts)) + 0.9), sharex=True, squeeze=False
    )
    colors = ["tab:blue", "tab:green", "tab:purple", "tab:brown"]
    for ax, host in zip(axes[:, 0], hosts, strict=False):
        for (label, combined), color in zip(series, colors, strict=False):
            rows = combined[combined["host"].astype(str) == host].sort_values("time")
            ax.plot(rows["time"], rows["score"], lw=0.7, color=color, label=label)
        for row in windows[windows["host"].astype(str) == host].itertuples(index=False):
            ax.axvspan(
                row.start, row.end, color="tab:cyan" if row.source == "injected" else "tab:red", alpha=0.2
            )
        ax.axhline(1.0, color="black", ls="--", lw=0.8)
        ax.set_yscale("symlog", linthresh=2.0)
        ax.set_ylabel(host, fontsize=8)
    axes[0, 0].legend(loc="upper right", fontsize=7)
    axes[0, 0].set_title(
        "backtest — combined score per version (dashed: threshold 1; cyan: injected, red: labelled)",
        fontsize=9,
    )
    return save_figure(fig, path, dpi=90)


# --- CLI -------------------------------------------------------------------------------------------------


@click.command("backtest")
@click.option(
    "--model", "model_spec", help="NAME@ALIAS, NAME/VERSION or VERSION (of VIGIL_MLFLOW__MODEL_NAME)."
)
@click.option("--compare", nargs=2, metavar="A B", help="Two model specs side by side on the same window.")
@click.option("--from", "start", required=True, help="Window start (ISO time).")
@click.option("--to", "end", required=True, help="Window end (ISO time).")
@click.option(
    "--warmup", help="History read before --from to warm the baselines, e.g. 6h (default: detector's)."
)
@click.option("--out", "out_dir", type=click.Path(path_type=Path), help="Output folder.")
@click.option(
    "--json", "as_json", is_flag=True, help="Print the result as JSON instead of the Markdown table."
)
def backtest_command(
    model_spec: str | None,
    compare: tuple[str, str] | None,
    start: str,
    end: str,
    warmup: str | None,
    out_dir: Path | None,
    as_json: bool,
) -> None:
    """Score a window of history with registered model version(s); metrics as `pipeline evaluate`."""
    import json

    from pipelines.common import to_jsonable
    from vigil.settings import get_settings

    if bool(model_spec) == bool(compare):
        raise click.UsageError("give exactly one of --model SPEC or --compare A B")
    specs = [model_spec] if model_spec else list(compare or ())
    try:
        result = backtest(get_settings(), specs, start, end, warmup=warmup, out_dir=out_dir)
    except PipelineError as exc:
        raise CliError(str(exc)) from exc
    except ValueError as exc:  # unparsable time or duration
        raise CliError(str(exc)) from exc
    if as_json:
        click.echo(json.dumps(to_jsonable(result), indent=2, default=str))
    else:
        click.echo(result.markdown_path.read_text())
        click.echo(f"report: {result.markdown_path}\nplot:   {result.png_path}\njson:   {result.json_path}")
