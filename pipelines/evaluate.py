"""evaluate: judge a model by the decision the detector would serve with it, on the holdout.

The holdout is the last ``holdout_fraction`` of the dataset's time span (the same cut ``train``
made, read back from the training run's tag), so the grid search never saw a row of it. The model
is loaded through its MLflow URI and made the champion of the served path
(:func:`pipelines.served.replay`: :class:`vigil.serving.ServingPath` — features, online model,
champion, per-host calibration, combined rule — warmed on the dataset's history before the
holdout, then fed the holdout in time order). Its raw metrics carry anomalies injected into a copy
of them (:mod:`pipelines.inject`, seed ``VIGIL_RANDOM_SEED + 1``); the dataset's label windows,
of every source, are scored beside them. Only ``source=combined`` decisions are judged.

Metrics (``holdout_`` + :func:`pipelines.served.served_metrics`): ``injected_event_recall``,
``real_event_recall``, ``event_recall`` (pooled, the primary metric), ``median_ttd_s``,
``false_alarms_per_host_day``, ``fp_window_alarms``, ...; and over the whole dataset, how many of
the operators' false-positive windows the model still scores above its threshold
(``dataset_fp_windows_raised`` of ``dataset_fp_windows``, :func:`false_positives_raised`). The bare model's own figures on the
holdout's feature rows (labelled by the injected and real windows) are kept too —
``holdout_f1``, ``holdout_pr_auc`` — as the clean reference of the robustness perturbations.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipelines.common import (
    DEFAULT_HOLDOUT_FRACTION,
    TAG_HOLDOUT_FRACTION,
    PipelineError,
    configure_mlflow,
    default_out_dir,
    mlflow_client,
    read_dataset,
    read_raw,
    slice_raw,
    time_split,
    usable_rows,
    write_json,
)
from pipelines.inject import InjectionError
from pipelines.metrics import event_metrics, point_metrics
from pipelines.served import (
    concat_windows,
    events_frame,
    inject_window,
    label_windows,
    plot_served,
    replay,
    served_metrics,
)
from vigil.model import LoadedModel
from vigil.plotting import save_figure
from vigil.settings import MlflowSettings, Settings

log = logging.getLogger(__name__)

#: The metric logged as a version's headline (events caught by the served decision, pooled).
PRIMARY_METRIC = "holdout_event_recall"


@dataclass
class EvaluationResult:
    model_uri: str
    metrics: dict[str, float]
    png_path: Path
    json_path: Path
    holdout_rows: int
    robustness_png_path: Path | None = None
    notes: list[str] = field(default_factory=list)


def holdout_fraction_of(registry: MlflowSettings, run_id: str | None) -> float:
    if not run_id:
        return DEFAULT_HOLDOUT_FRACTION
    tags = mlflow_client(registry).get_run(run_id).data.tags
    return float(tags.get(TAG_HOLDOUT_FRACTION, DEFAULT_HOLDOUT_FRACTION))


def score_holdout(model: Any, holdout: pd.DataFrame) -> pd.DataFrame:
    """Predictions of ``model`` (a pyfunc or anything with ``predict(frame)``) aligned with ``holdout``."""
    out = model.predict(holdout.reset_index(drop=True))
    if len(out) != len(holdout):
        raise PipelineError(f"model returned {len(out)} rows for {len(holdout)} holdout rows")
    return out.reset_index(drop=True)


def window_metrics(rows: pd.DataFrame, predictions: pd.DataFrame, interval_s: int) -> dict[str, float]:
    """Point and event metrics of a bare model's ``predictions`` against the labels of ``rows``."""
    y = rows["label"].to_numpy(dtype=np.int64)
    scores = predictions["score"].to_numpy(dtype=float)
    threshold = float(predictions["threshold"].iloc[0]) if len(predictions) else float("inf")
    metrics = point_metrics(y, scores, threshold)
    alarms = predictions["is_anomaly"].to_numpy(dtype=int) == 1
    metrics.update(event_metrics(rows.reset_index(drop=True), alarms, interval_s))
    metrics["threshold"] = threshold
    return {k: float(v) for k, v in metrics.items()}


@dataclass
class ServedEvaluation:
    """What one replay of a window through the served decision gives (evaluate and backtest)."""

    metrics: dict[str, float]  # unprefixed served_metrics + the bare model's f1/pr_auc/threshold
    combined: pd.DataFrame
    features: pd.DataFrame | None  # the window's feature rows, labelled by the event windows
    windows: pd.DataFrame  # injected + real anomaly windows (source column)
    normal: pd.DataFrame  # operator false-positive windows
    notes: list[str]
    seconds: float


def served_evaluation(
    settings: Settings,
    model: Any,
    raw: dict[str, pd.DataFrame],
    labels: pd.DataFrame,
    start: pd.Timestamp,
    end: pd.Timestamp,
    *,
    warm_from: Any = None,
    name: str = "candidate",
    version: int = 0,
    run_id: str | None = None,
    keep_features: bool = True,
) -> ServedEvaluation:
    """Replay ``[start, end)`` of ``raw`` (history before ``start`` warms the path) with ``model`` as
    champion, injected events in the window, and judge the combined decision.

    ``labels``: a dataset frame's label columns (host, time, label, label_id, label_kind,
    label_source) for the rows of the window: its windows are scored and kept clear of injection.
    A window too short to inject into is judged on its real labels alone, with a note.
    """
    interval = settings.features.interval_s
    real, normal = label_windows(labels, interval)
    notes: list[str] = []
    try:
        raw_used, events = inject_window(
            settings, raw, start, end, warm_from=warm_from, avoid=concat_windows(real, normal)
        )
    except InjectionError as exc:
        raw_used, events = slice_raw(raw, None, end), []
        notes.append(f"no injected events: {exc}")
    champion = LoadedModel(name=name, version=version, run_id=run_id, model=model)
    rep = replay(settings, raw_used, start, end, champion, warm_from=warm_from, keep_features=keep_features)
    injected = events_frame(events)
    metrics = served_metrics(rep.combined, injected, real, normal, interval)
    metrics["replay_seconds"] = rep.seconds
    if metrics["events"] == 0:
        notes.append("no event (injected or labelled) in the window: recall says nothing")
    windows = concat_windows(injected, real)
    features = None
    if rep.features is not None and not rep.features.empty:
        features = usable_rows(rep.features).reset_index(drop=True)
        inside = _inside(features, windows)
        features["label"] = inside.astype(np.int64)
        features["label_id"] = ""
        if len(features):
            pred = score_holdout(model, features)
            bare = point_metrics(
                features["label"].to_numpy(), pred["score"].to_numpy(float), float(pred["threshold"].iloc[0])
            )
            metrics.update(f1=bare["f1"], pr_auc=bare["pr_auc"], threshold=float(pred["threshold"].iloc[0]))
    return ServedEvaluation(metrics, rep.combined, features, windows, normal, notes, rep.seconds)


def false_positives_raised(model: Any, frame: pd.DataFrame) -> dict[str, float]:
    """Of the operators' false-positive windows anywhere in the dataset, how many the model still
    scores above its threshold (``fp_windows_raised``, of ``fp_windows``).

    Why the whole dataset and the bare model: an operator's verdict holds wherever it was given,
    also in the training and validation periods the holdout replay does not cover, and a row the
    champion scores at or below its threshold cannot alarm in the served decision (the host
    calibration only raises the threshold, the online model alone never pages beside a champion),
    so "above the threshold" bounds what the served decision could raise there.
    """
    fp = usable_rows(frame)
    fp = (
        fp[(fp["label_kind"] == "false_positive") & (fp["label"] == 0)]
        if "label_kind" in fp
        else fp.iloc[0:0]
    )
    if fp.empty:
        return {"fp_windows": 0.0, "fp_windows_raised": 0.0}
    pred = score_holdout(model, fp.reset_index(drop=True))
    raised = fp.reset_index(drop=True).assign(hit=pred["is_anomaly"].to_numpy().astype(bool))
    per_window = raised.groupby("label_id")["hit"].any()
    return {"fp_windows": float(len(per_window)), "fp_windows_raised": float(per_window.sum())}


def _inside(frame: pd.DataFrame, windows: pd.DataFrame) -> np.ndarray:
    """Rows of ``frame`` (host, time) inside one of ``windows`` (host, start, end)."""
    out = np.zeros(len(frame), dtype=bool)
    if windows.empty or frame.empty:
        return out
    hosts = frame["host"].astype(str).to_numpy()
    times = pd.to_datetime(frame["time"], utc=True).astype("int64").to_numpy()
    for row in windows.itertuples(index=False):
        out |= (
            (hosts == str(row.host))
            & (times >= pd.Timestamp(row.start).value)
            & (times < pd.Timestamp(row.end).value)
        )
    return out


def plot_scores(
    holdout: pd.DataFrame, predictions: pd.DataFrame, path: Path, title: str, max_hosts: int = 8
) -> Path:
    """Scores over time per host, the threshold dashed, labelled windows shaded red."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = holdout.reset_index(drop=True).assign(score=predictions["score"].to_numpy())
    hosts = sorted(data["host"].unique())[:max_hosts]
    fig, axes = plt.subplots(len(hosts), 1, figsize=(12, 1.8 * len(hosts) + 0.8), sharex=True, squeeze=False)
    threshold = float(predictions["threshold"].iloc[0])
    for ax, host in zip(axes[:, 0], hosts, strict=True):
        rows = data[data["host"] == host].sort_values("time")
        ax.plot(rows["time"], rows["score"], lw=0.7, color="tab:blue")
        ax.axhline(threshold, color="black", ls="--", lw=0.8)
        for _, win in rows[rows["label"] == 1].groupby("label_id"):
            ax.axvspan(win["time"].min(), win["time"].max(), color="tab:red", alpha=0.25)
        alarms = rows[rows["score"] > threshold]
        ax.scatter(alarms["time"], alarms["score"], s=4, color="tab:orange", zorder=3)
        ax.set_ylabel(host, fontsize=8)
    axes[0, 0].set_title(title + " — holdout scores (red: labelled windows, dashed: threshold)", fontsize=9)
    return save_figure(fig, path, dpi=90)


def evaluate(
    settings: Settings,
    model_uri: str,
    dataset_path: str | Path,
    *,
    run_id: str | None = None,
    holdout_fraction: float | None = None,
    out_dir: Path | None = None,
    log_to_run: bool = True,
    prefix: str = "",
    with_robustness: bool = True,
) -> EvaluationResult:
    """Evaluate ``model_uri`` (``runs:/...``, ``models:/...``) on ``dataset_path``'s holdout through
    the served decision (see the module doc).

    ``run_id`` (default: the run in a ``runs:/`` URI) supplies the holdout fraction and receives
    the metrics, the JSON and the PNG. ``prefix`` namespaces the metrics (``champion_`` when
    ``promote`` re-scores the champion on a challenger's holdout).

    ``with_robustness`` (default) also re-scores the holdout's feature rows with the bare model
    under the seeded perturbations of :mod:`pipelines.robustness` (seed ``settings.random_seed``)
    and adds ``robust_<p>_f1`` / ``robust_<p>_pr_auc`` / ``robustness_f1`` to the metrics.
    """
    import mlflow

    configure_mlflow(settings.mlflow)
    if run_id is None and model_uri.startswith("runs:/"):
        run_id = model_uri.split("/")[1]
    fraction = (
        holdout_fraction if holdout_fraction is not None else holdout_fraction_of(settings.mlflow, run_id)
    )
    frame = read_dataset(dataset_path)
    split = time_split(frame, holdout_fraction=fraction)
    if split.holdout.empty:
        raise PipelineError("the holdout is empty")
    raw = read_raw(dataset_path)
    try:
        model = mlflow.pyfunc.load_model(model_uri)
    except Exception as exc:
        raise PipelineError(f"cannot load model {model_uri}: {exc}") from exc
    start = split.holdout_start
    end = frame["time"].max() + pd.Timedelta(seconds=settings.features.interval_s)
    version = (
        int(model_uri.rsplit("/", 1)[-1])
        if model_uri.startswith("models:/") and model_uri.rsplit("/", 1)[-1].isdigit()
        else 0
    )
    ev = served_evaluation(
        settings,
        model,
        raw,
        frame[frame["time"] >= start],
        start,
        end,
        name=settings.mlflow.model_name,
        version=version,
        run_id=run_id,
        keep_features=with_robustness,
    )
    metrics = {f"{prefix}holdout_{k}": v for k, v in ev.metrics.items()}
    metrics.update({f"{prefix}dataset_{k}": v for k, v in false_positives_raised(model, frame).items()})
    out_dir = Path(out_dir or default_out_dir(settings) / "evaluate" / (run_id or "adhoc"))
    robust_png = None
    if with_robustness and ev.features is not None and len(ev.features):
        from pipelines.robustness import plot_robustness, robustness

        rob = robustness(model, ev.features, seed=settings.random_seed, clean_f1=ev.metrics.get("f1"))
        metrics.update({f"{prefix}{k}": v for k, v in rob.metrics.items()})
        robust_png = plot_robustness(rob, out_dir / f"{prefix}robustness.png", title=model_uri)
    png = plot_served(
        ev.combined, ev.windows, ev.normal, out_dir / f"{prefix}holdout_served.png", title=model_uri
    )
    events_path = out_dir / f"{prefix}holdout_events.csv"
    ev.windows.to_csv(events_path, index=False)
    json_path = write_json(
        out_dir / f"{prefix}holdout_metrics.json", {"model_uri": model_uri, **metrics, "notes": ev.notes}
    )
    if run_id and log_to_run:
        client = mlflow_client(settings.mlflow)
        for key, value in metrics.items():
            if np.isfinite(value):
                client.log_metric(run_id, key, value)
        for path in (png, json_path, events_path, robust_png):
            if path is not None:
                client.log_artifact(run_id, str(path), artifact_path="evaluation")
    log.info(
        "evaluate %s (served decision): %s%s",
        model_uri,
        " ".join(
            f"{k.removeprefix(prefix)}={v:.3f}"
            for k, v in metrics.items()
            if k.endswith(("event_recall", "false_alarms_per_host_day", "median_ttd_s", "robustness_f1"))
        ),
        "".join(f" ({n})" for n in ev.notes),
    )
    return EvaluationResult(model_uri, metrics, png, json_path, int(ev.metrics["rows"]), robust_png, ev.notes)
