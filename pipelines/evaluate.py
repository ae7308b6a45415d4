"""evaluate: score the holdout the search never saw; point and event metrics; a PNG of scores over time.

The holdout is the last ``holdout_fraction`` of the dataset's time span (the same cut ``train``
made, read back from the training run's tag), so the grid search never saw a row of it. The
model is loaded through its MLflow URI and scored through the contract pyfunc — exactly what
the detector will run.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
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
    time_split,
    write_json,
)
from pipelines.metrics import event_metrics, point_metrics
from vigil.plotting import save_figure
from vigil.settings import Settings

log = logging.getLogger(__name__)

#: The metric ``promote`` compares (holdout F1 at the model's own threshold).
PRIMARY_METRIC = "holdout_f1"


@dataclass
class EvaluationResult:
    model_uri: str
    metrics: dict[str, float]
    png_path: Path
    json_path: Path
    holdout_rows: int
    robustness_png_path: Path | None = None


def holdout_fraction_of(settings: Settings, run_id: str | None) -> float:
    if not run_id:
        return DEFAULT_HOLDOUT_FRACTION
    tags = mlflow_client(settings).get_run(run_id).data.tags
    return float(tags.get(TAG_HOLDOUT_FRACTION, DEFAULT_HOLDOUT_FRACTION))


def score_holdout(model: Any, holdout: pd.DataFrame) -> pd.DataFrame:
    """Predictions of ``model`` (a pyfunc or anything with ``predict(frame)``) aligned with ``holdout``."""
    out = model.predict(holdout.reset_index(drop=True))
    if len(out) != len(holdout):
        raise PipelineError(f"model returned {len(out)} rows for {len(holdout)} holdout rows")
    return out.reset_index(drop=True)


def holdout_metrics(holdout: pd.DataFrame, predictions: pd.DataFrame, interval_s: int) -> dict[str, float]:
    return {f"holdout_{k}": v for k, v in window_metrics(holdout, predictions, interval_s).items()}


def window_metrics(rows: pd.DataFrame, predictions: pd.DataFrame, interval_s: int) -> dict[str, float]:
    """Point and event metrics of ``predictions`` against the labels of ``rows`` (unprefixed names).

    The one definition ``evaluate`` (holdout) and ``backtest`` (any window) both report.
    """
    y = rows["label"].to_numpy(dtype=np.int64)
    scores = predictions["score"].to_numpy(dtype=float)
    threshold = float(predictions["threshold"].iloc[0]) if len(predictions) else float("inf")
    metrics = point_metrics(y, scores, threshold)
    alarms = predictions["is_anomaly"].to_numpy(dtype=int) == 1
    metrics.update(event_metrics(rows.reset_index(drop=True), alarms, interval_s))
    metrics["threshold"] = threshold
    return {k: float(v) for k, v in metrics.items()}


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
    """Evaluate ``model_uri`` (``runs:/...``, ``models:/...``) on ``dataset_path``'s holdout.

    ``run_id`` (default: the run in a ``runs:/`` URI) supplies the holdout fraction and receives
    the metrics, the JSON and the PNG. ``prefix`` namespaces the metrics (``champion_`` when
    ``promote`` re-scores the champion on a challenger's holdout).

    ``with_robustness`` (default) also re-scores the holdout under the seeded perturbations of
    :mod:`pipelines.robustness` (seed ``settings.random_seed``) and adds ``robust_<p>_f1`` /
    ``robust_<p>_pr_auc`` / ``robustness_f1`` to the metrics, so every evaluated run — and the
    champion re-scored by ``promote`` — carries the numbers the robustness gate compares.
    """
    import mlflow

    configure_mlflow(settings)
    if run_id is None and model_uri.startswith("runs:/"):
        run_id = model_uri.split("/")[1]
    fraction = holdout_fraction if holdout_fraction is not None else holdout_fraction_of(settings, run_id)
    frame = read_dataset(dataset_path)
    holdout = time_split(frame, holdout_fraction=fraction).holdout.reset_index(drop=True)
    if holdout.empty:
        raise PipelineError("the holdout is empty")
    try:
        model = mlflow.pyfunc.load_model(model_uri)
    except Exception as exc:
        raise PipelineError(f"cannot load model {model_uri}: {exc}") from exc
    predictions = score_holdout(model, holdout)
    metrics = {
        f"{prefix}{k}": v
        for k, v in holdout_metrics(holdout, predictions, settings.feature_interval_s).items()
    }
    out_dir = Path(out_dir or default_out_dir(settings) / "evaluate" / (run_id or "adhoc"))
    robust_png = None
    if with_robustness:
        from pipelines.robustness import plot_robustness, robustness

        rob = robustness(
            model, holdout, seed=settings.random_seed, clean_f1=metrics[f"{prefix}{PRIMARY_METRIC}"]
        )
        metrics.update({f"{prefix}{k}": v for k, v in rob.metrics.items()})
        robust_png = plot_robustness(rob, out_dir / f"{prefix}robustness.png", title=model_uri)
    png = plot_scores(holdout, predictions, out_dir / f"{prefix}holdout_scores.png", title=model_uri)
    json_path = write_json(out_dir / f"{prefix}holdout_metrics.json", {"model_uri": model_uri, **metrics})
    if run_id and log_to_run:
        client = mlflow_client(settings)
        for key, value in metrics.items():
            if np.isfinite(value):
                client.log_metric(run_id, key, value)
        client.log_artifact(run_id, str(png), artifact_path="evaluation")
        client.log_artifact(run_id, str(json_path), artifact_path="evaluation")
        if robust_png is not None:
            client.log_artifact(run_id, str(robust_png), artifact_path="evaluation")
    log.info(
        "evaluate %s: %s",
        model_uri,
        " ".join(
            f"{k}={v:.3f}"
            for k, v in metrics.items()
            if k.endswith(("holdout_f1", "holdout_pr_auc", "event_recall", "robustness_f1"))
        ),
    )
    return EvaluationResult(model_uri, metrics, png, json_path, len(holdout), robust_png)
