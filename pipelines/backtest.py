"""backtest: score a window of history with any registered model version, judged like ``evaluate``.

``vigil backtest --model NAME@ALIAS|NAME/VERSION|VERSION --from T --to T`` answers "how would
this version have done over that period?"; ``--compare A B`` puts two versions side by side on
the very same rows. It is batch and offline: the window's features are extracted once with
:func:`pipelines.extract.extract` (the detector's own feature code, labels joined the same way)
and each model's pyfunc is called once on the whole frame; the metrics are
:func:`pipelines.evaluate.window_metrics`, the definition ``evaluate`` reports on the holdout.

Warm-up: features are host-relative (per-host baselines), so the extraction starts ``warmup``
before ``--from`` (default ``settings.detector_history_hours``, the history the detector reads
to warm-start a host) and only rows at or after ``--from`` that are past the baseline warm-up are
judged. With the window and warm-up of a dataset's holdout, the backtest scores exactly the rows
``evaluate`` scored and reports the same numbers (tested).

:func:`backtest_gate` turns a comparison into a promotion check (see ``docs/backtest_and_robustness.md``).
"""

from __future__ import annotations

import logging
import re
import sys
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
    usable_rows,
    write_json,
)
from pipelines.evaluate import plot_scores, score_holdout, window_metrics
from pipelines.extract import extract, resolve_window
from pipelines.registry import GateResult, write_event
from vigil.influx import InfluxClient
from vigil.model import CHAMPION
from vigil.plotting import save_figure
from vigil.settings import Settings

log = logging.getLogger(__name__)

#: The metric the backtest gate compares (F1 at each model's own threshold, as ``promote``).
GATE_METRIC = "f1"
#: Metrics shown first in the Markdown table (the rest follow in ``window_metrics`` order).
TABLE_ORDER = ("f1", "precision", "recall", "pr_auc", "roc_auc", "event_recall")


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

    def metrics_of(self, version: int) -> dict[str, float]:
        for m in self.models:
            if m.model.version == version:
                return m.metrics
        raise KeyError(version)


# --- resolving model specs ---------------------------------------------------------------------------

_SPEC = re.compile(
    r"^(?:models:/)?(?:(?P<name>[^@]+?)(?:@(?P<alias>[\w.-]+)|/(?P<version>\d+))|@(?P<alias_only>[\w.-]+)|(?P<bare>\d+))$"
)


def resolve_model(settings: Settings, spec: str) -> ModelRef:
    """``NAME@ALIAS`` | ``NAME/VERSION`` | ``VERSION`` | ``@ALIAS`` (of ``settings.model_name``) -> a version.

    Raises :class:`PipelineError` naming the spec when it is malformed, or the version or alias
    does not exist, or the registry cannot be reached.
    """
    from mlflow.exceptions import MlflowException

    match = _SPEC.match(spec.strip())
    if not match:
        raise PipelineError(
            f"bad model spec {spec!r}: use NAME@ALIAS, NAME/VERSION or VERSION (e.g. {settings.model_name}@champion)"
        )
    name = match["name"] or settings.model_name
    alias = match["alias"] or match["alias_only"]
    version = match["version"] or match["bare"]
    client = mlflow_client(settings)
    try:
        mv = (
            client.get_model_version_by_alias(name, alias)
            if alias
            else client.get_model_version(name, version)
        )
    except MlflowException as exc:
        what = f"alias {alias!r}" if alias else f"version {version}"
        raise PipelineError(
            f"model {spec!r}: registered model {name!r} has no {what} at {settings.mlflow_uri}"
        ) from exc
    except Exception as exc:  # connection refused, timeouts
        raise PipelineError(f"cannot reach the MLflow registry at {settings.mlflow_uri}: {exc}") from exc
    return ModelRef(spec, name, int(mv.version), alias, mv.run_id)


# --- the backtest ------------------------------------------------------------------------------------


def window_rows(frame: pd.DataFrame, start: pd.Timestamp) -> pd.DataFrame:
    """The rows a backtest judges: usable (past baseline warm-up), at or after ``start``, in
    ``time_split``'s order (time, host) — the order ``evaluate`` scores its holdout in."""
    rows = usable_rows(frame)
    rows = rows[rows["time"] >= start]
    return rows.sort_values(["time", "host"], kind="stable").reset_index(drop=True)


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
    """Score ``[start, end)`` with each of ``models`` (specs, see :func:`resolve_model`); write
    ``backtest.json``, ``backtest.md``, ``backtest.png`` and ``scores.parquet`` under ``out_dir``.
    """
    import mlflow

    began = time.perf_counter()
    if not models:
        raise PipelineError("backtest needs at least one model")
    start_ts, end_ts = resolve_window(start, end, None)
    lead = pd.Timedelta(warmup) if warmup is not None else pd.Timedelta(hours=settings.detector_history_hours)
    if lead < pd.Timedelta(0):
        raise PipelineError(f"warm-up must not be negative (got {warmup!r})")
    configure_mlflow(settings)
    refs = [resolve_model(settings, spec) for spec in models]  # fail fast, before reading history
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
    rows = window_rows(read_dataset(ds.path), start_ts)
    if rows.empty:
        raise PipelineError(
            f"no scorable rows between {start_ts} and {end_ts}: every host is still in baseline "
            f"warm-up (warm-up {lead}; give a longer --warmup or a later --from)"
        )
    notes = []
    if int(rows["label"].sum()) == 0:
        notes.append("no labelled anomaly in the window: recall, F1 and event recall say nothing")
    results, predictions = [], {}
    for ref in refs:
        log.info("backtest: scoring %d rows with %s", len(rows), ref.label)
        t0 = time.perf_counter()
        try:
            model = mlflow.pyfunc.load_model(ref.uri)
        except Exception as exc:
            raise PipelineError(f"cannot load {ref.uri}: {exc}") from exc
        pred = score_holdout(model, rows)
        seconds = time.perf_counter() - t0
        metrics = window_metrics(rows, pred, settings.feature_interval_s)
        results.append(ModelBacktest(ref, metrics, seconds))
        predictions[ref] = pred
        log.info(
            "backtest: %s f1=%.3f pr_auc=%.3f (%.1fs)", ref.label, metrics["f1"], metrics["pr_auc"], seconds
        )
    scores = rows[["host", "time", "label", "label_id"]].copy()
    for ref, pred in predictions.items():
        scores[f"score_v{ref.version}"] = pred["score"].to_numpy()
        scores[f"alarm_v{ref.version}"] = pred["is_anomaly"].to_numpy()
    scores_path = out_dir / "scores.parquet"
    scores.to_parquet(scores_path, index=False)
    if len(refs) == 1:
        png = plot_scores(
            rows, predictions[refs[0]], out_dir / "backtest.png", title=f"backtest {refs[0].label}"
        )
    else:
        png = plot_compare(rows, [(r.label, predictions[r]) for r in refs], out_dir / "backtest.png")
    result = BacktestResult(
        start=start_ts,
        end=end_ts,
        warmup_start=start_ts - lead,
        dataset_path=ds.path,
        dataset_hash=ds.dataset_hash,
        rows=len(rows),
        hosts=int(rows["host"].nunique()),
        labelled_rows=int(rows["label"].sum()),
        events=int(rows.loc[rows["label"] == 1, "label_id"].nunique()),
        models=results,
        json_path=out_dir / "backtest.json",
        markdown_path=out_dir / "backtest.md",
        png_path=png,
        scores_path=scores_path,
        seconds=time.perf_counter() - began,
        notes=notes,
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
        f"# Backtest {result.start:%Y-%m-%d %H:%M:%S} .. {result.end:%Y-%m-%d %H:%M:%S} UTC",
        "",
        f"{result.rows} host-intervals of {result.hosts} hosts, {result.labelled_rows} labelled in "
        f"{result.events} windows; features from {result.warmup_start:%Y-%m-%d %H:%M:%S} (warm-up), "
        f"dataset `{result.dataset_hash[:16]}`.",
        *(f"\n> note: {n}" for n in result.notes),
        "",
        head,
        "|" + " --- |" * (len(result.models) + 1),
    ]
    for key in keys:
        cells = [_fmt(m.metrics.get(key, float("nan"))) for m in result.models]
        lines.append(f"| {key} | " + " | ".join(cells) + " |")
    lines.append("| score_seconds | " + " | ".join(f"{m.score_seconds:.2f}" for m in result.models) + " |")
    return "\n".join(lines) + "\n"


def _fmt(value: float) -> str:
    return "n/a" if not np.isfinite(value) else f"{value:.4g}"


def plot_compare(
    rows: pd.DataFrame, series: list[tuple[str, pd.DataFrame]], path: Path, max_hosts: int = 6
) -> Path:
    """One PNG: per host, every model's score on a common scale, labelled windows shaded red.

    Models score on different scales (a forest's path length, a mixture's log-likelihood), so each
    is drawn as its margin over its own threshold divided by its score spread over the window
    (IQR): 0 is each model's decision line, above 0 is an alarm — comparable at a glance. The axis
    is symlog so a model whose anomalies score 50 IQRs out does not flatten the other one.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = rows.reset_index(drop=True)
    hosts = sorted(data["host"].unique())[:max_hosts]
    fig, axes = plt.subplots(len(hosts), 1, figsize=(12, 1.9 * len(hosts) + 0.9), sharex=True, squeeze=False)
    colors = ["tab:blue", "tab:green", "tab:purple", "tab:brown"]
    normalised = []
    for label, pred in series:
        score = pred["score"].to_numpy(dtype=float)
        q1, q3 = np.nanpercentile(score, [25, 75]) if len(score) else (0.0, 1.0)
        spread = (q3 - q1) or 1.0
        normalised.append((label, (score - float(pred["threshold"].iloc[0])) / spread))
    for ax, host in zip(axes[:, 0], hosts, strict=True):
        mask = (data["host"] == host).to_numpy()
        times = data.loc[mask, "time"]
        for (label, values), color in zip(normalised, colors, strict=False):
            ax.plot(times, values[mask], lw=0.7, color=color, label=label)
        for _, win in data[mask & (data["label"] == 1).to_numpy()].groupby("label_id"):
            ax.axvspan(win["time"].min(), win["time"].max(), color="tab:red", alpha=0.2)
        ax.axhline(0.0, color="black", ls="--", lw=0.8)
        ax.set_yscale("symlog", linthresh=1.0)  # linear near the decision line, log for big excursions
        ax.set_ylabel(host, fontsize=8)
    axes[0, 0].legend(loc="upper right", fontsize=7)
    axes[0, 0].set_title(
        "backtest — (score - threshold) / IQR per model, symlog (dashed: decision line; red: labelled windows)",
        fontsize=9,
    )
    return save_figure(fig, path, dpi=90)


# --- the promotion gate --------------------------------------------------------------------------------


def backtest_gate(
    settings: Settings,
    challenger_version: int,
    champion_version: int | None,
    window: tuple[Any, Any],
    *,
    warmup: timedelta | str | None = None,
    tolerance: float | None = None,
    record: bool = True,
    out_dir: Path | None = None,
    influx: InfluxClient | None = None,
    raw_db: str | None = None,
) -> GateResult:
    """Back-test challenger and champion on ``window`` = (start, end); pass when the challenger's F1
    is at least the champion's minus ``tolerance`` (default ``settings.backtest_tolerance``).

    ``champion_version=None`` means the current ``champion`` alias; with no champion at all the
    gate passes (nothing to compare). A window without labelled anomalies cannot judge and passes,
    saying so. With ``record`` (the default, for a DAG task calling the gate on its own), the
    outcome is tagged on the challenger version (``vigil.gate.backtest``), the F1s are logged to
    its run (``backtest_f1``, ``backtest_champion_f1``), and a failure is written as a ``reject``
    model event with the reason — exactly what ``promote`` records for its own refusals.
    ``promote(backtest_window=...)`` calls it with ``record=False`` and records the decision itself.
    """
    name = settings.model_name
    tol = settings.backtest_tolerance if tolerance is None else tolerance
    challenger = resolve_model(settings, f"{name}/{int(challenger_version)}")
    if champion_version is None:
        try:
            champion_version = resolve_model(settings, f"{name}@{CHAMPION}").version
        except PipelineError:
            champion_version = None
    if champion_version is None:
        gate = GateResult(
            "backtest", True, "no champion to compare with", challenger.version, None, tolerance=tol
        )
        return _record(settings, gate, challenger, record, influx)
    if int(champion_version) == challenger.version:
        raise PipelineError(f"version {challenger.version} is both challenger and champion")
    result = backtest(
        settings,
        [f"{name}/{challenger.version}", f"{name}/{int(champion_version)}"],
        window[0],
        window[1],
        warmup=warmup,
        out_dir=out_dir,
        client=influx,
        raw_db=raw_db,
    )
    chall = result.metrics_of(challenger.version)[GATE_METRIC]
    champ = result.metrics_of(int(champion_version))[GATE_METRIC]
    details = {
        "window": [str(result.start), str(result.end)],
        "rows": result.rows,
        "events": result.events,
        "markdown": str(result.markdown_path),
        "png": str(result.png_path),
    }
    if result.labelled_rows == 0:
        passed, why = True, "backtest window has no labelled anomaly: not judged"
    elif chall >= champ - tol:
        passed, why = True, f"backtest {GATE_METRIC} {chall:.4f} >= champion {champ:.4f} - {tol}"
    else:
        passed, why = False, f"backtest {GATE_METRIC} {chall:.4f} < champion {champ:.4f} - {tol}"
    gate = GateResult(
        "backtest", passed, why, challenger.version, int(champion_version), chall, champ, tol, details
    )
    return _record(settings, gate, challenger, record, influx)


def _record(
    settings: Settings, gate: GateResult, challenger: ModelRef, record: bool, influx: InfluxClient | None
) -> GateResult:
    log.info(
        "backtest gate: version %s %s (%s)",
        gate.challenger_version,
        "passed" if gate.passed else "failed",
        gate.reason,
    )
    if not record:
        return gate
    client = mlflow_client(settings)
    verdict = ("passed: " if gate.passed else "failed: ") + gate.reason
    client.set_model_version_tag(challenger.name, str(challenger.version), "vigil.gate.backtest", verdict)
    if challenger.run_id and gate.challenger_metric is not None:
        client.log_metric(challenger.run_id, "backtest_f1", gate.challenger_metric)
        if gate.champion_metric is not None:
            client.log_metric(challenger.run_id, "backtest_champion_f1", gate.champion_metric)
    if not gate.passed:
        client.set_model_version_tag(challenger.name, str(challenger.version), "vigil.promotion", "rejected")
        client.set_model_version_tag(
            challenger.name, str(challenger.version), "vigil.promotion_reason", gate.reason
        )
        write_event(
            settings,
            "reject",
            challenger.version,
            previous_version=gate.champion_version,
            metric=gate.challenger_metric,
            previous_metric=gate.champion_metric,
            reason=gate.reason,
            influx=influx,
        )
    return gate


# --- CLI -------------------------------------------------------------------------------------------------


@click.command("backtest")
@click.option("--model", "model_spec", help="NAME@ALIAS, NAME/VERSION or VERSION (of VIGIL_MODEL_NAME).")
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
        click.echo("error: give exactly one of --model SPEC or --compare A B", err=True)
        sys.exit(2)
    specs = [model_spec] if model_spec else list(compare or ())
    try:
        result = backtest(get_settings(), specs, start, end, warmup=warmup, out_dir=out_dir)
    except PipelineError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except ValueError as exc:  # unparsable time or duration
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    if as_json:
        click.echo(json.dumps(to_jsonable(result), indent=2, default=str))
    else:
        click.echo(result.markdown_path.read_text())
        click.echo(f"report: {result.markdown_path}\nplot:   {result.png_path}\njson:   {result.json_path}")
