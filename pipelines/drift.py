"""drift: has the feature distribution moved since the champion was trained?

Reference = the champion's training dataset, found through its MLflow tags
(``vigil.dataset_path``, checked against ``vigil.dataset_hash``); current = the latest window.

Per feature, ``scipy.stats.ks_2samp``; the p-values are corrected with **Holm-Bonferroni**
(step-down, controls the family-wise error rate at ``alpha``): under no drift the chance that
*any* feature is flagged is at most ``alpha``, so "drifted" (= at least one feature rejected) has
a false-alarm rate of at most ``alpha`` per check — uniformly more powerful than plain
Bonferroni and valid under any dependence between features (ours are correlated).

Why samples are capped (``max_rows``): KS assumes independent draws, but consecutive intervals of
a host are autocorrelated; with tens of thousands of rows any tiny, harmless shift is
"significant". A seeded random sample of at most ``max_rows`` rows per side keeps the test about
shifts an operator would care about.

Evidently's ``DataDriftPreset(method="ks")`` renders the same comparison as an HTML report logged
to MLflow; per-feature statistic, p-value, adjusted p-value and verdict go to InfluxDB
(``vigil_drift``), the verdict and drifted share to ``vigil_drift_summary``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import ks_2samp

from pipelines.common import (
    TAG_DATASET_HASH,
    TAG_DATASET_PATH,
    PipelineError,
    configure_mlflow,
    dataset_hash,
    default_out_dir,
    mlflow_client,
    read_dataset,
    usable_rows,
    write_json,
)
from vigil.features import FEATURE_COLUMNS
from vigil.influx import InfluxClient
from vigil.model import CHAMPION
from vigil.schema import DRIFT, DRIFT_SUMMARY
from vigil.settings import InfluxSettings, MlflowSettings, Settings

log = logging.getLogger(__name__)


@dataclass
class FeatureDrift:
    feature: str
    statistic: float
    p_value: float
    p_adjusted: float
    drifted: bool


@dataclass
class DriftResult:
    drifted: bool
    share: float
    alpha: float
    n_features: int
    n_drifted: int
    reference_version: str
    features: list[FeatureDrift] = field(default_factory=list)
    html_path: Path | None = None
    json_path: Path | None = None
    run_id: str | None = None


def holm(p_values: np.ndarray) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values (monotone, capped at 1)."""
    p = np.asarray(p_values, dtype=float)
    m = len(p)
    order = np.argsort(p, kind="stable")
    adjusted = np.empty(m)
    running = 0.0
    for rank, idx in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[idx]))
        adjusted[idx] = running
    return adjusted


def ks_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    features: tuple[str, ...] = FEATURE_COLUMNS,
    alpha: float = 0.05,
) -> list[FeatureDrift]:
    """KS per feature with Holm correction; constant-on-both-sides features are 'no drift' (p = 1)."""
    stats, pvals = [], []
    for col in features:
        ref = reference[col].dropna().to_numpy(dtype=float)
        cur = current[col].dropna().to_numpy(dtype=float)
        if len(ref) == 0 or len(cur) == 0:
            raise PipelineError(f"feature {col!r} has no values on one side of the drift check")
        res = ks_2samp(ref, cur)
        stats.append(float(res.statistic))
        pvals.append(float(res.pvalue))
    adjusted = holm(np.array(pvals))
    return [
        FeatureDrift(col, s, p, float(a), bool(a < alpha))
        for col, s, p, a in zip(features, stats, pvals, adjusted, strict=True)
    ]


def sample_rows(frame: pd.DataFrame, max_rows: int, seed: int) -> pd.DataFrame:
    frame = usable_rows(frame)
    if len(frame) > max_rows:
        frame = frame.sample(n=max_rows, random_state=seed)
    return frame.reset_index(drop=True)


def champion_reference(registry: MlflowSettings) -> tuple[pd.DataFrame, str]:
    """The champion's training dataset and its version, via the model version's tags."""
    from mlflow.exceptions import MlflowException

    client = mlflow_client(registry)
    try:
        champion = client.get_model_version_by_alias(registry.model_name, CHAMPION)
    except MlflowException as exc:
        raise PipelineError(f"{registry.model_name} has no champion: no reference for drift") from exc
    path, digest = champion.tags.get(TAG_DATASET_PATH), champion.tags.get(TAG_DATASET_HASH)
    if not path or not Path(path).exists():
        raise PipelineError(
            f"champion version {champion.version}'s training dataset {path!r} is not available"
        )
    frame = read_dataset(path)
    if digest and dataset_hash(frame) != digest:
        raise PipelineError(f"{path} no longer matches the champion's dataset hash {digest[:12]}")
    return frame, str(champion.version)


def evidently_report(reference: pd.DataFrame, current: pd.DataFrame, path: Path) -> tuple[float, Path]:
    """Evidently's DataDriftPreset with the KS test over the features; returns (drifted share, html)."""
    from evidently import Report
    from evidently.presets import DataDriftPreset

    cols = list(FEATURE_COLUMNS)
    snapshot = Report([DataDriftPreset(method="ks", columns=cols)]).run(
        reference_data=reference[cols], current_data=current[cols]
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    snapshot.save_html(str(path))
    share = float("nan")
    for metric in snapshot.dict().get("metrics", []):
        value = metric.get("value")
        if isinstance(value, dict) and "share" in value:
            share = float(value["share"])
            break
    return share, path


def drift(
    settings: Settings,
    current_path: str | Path,
    *,
    reference_path: str | Path | None = None,
    alpha: float = 0.05,
    max_rows: int = 2000,
    seed: int | None = None,
    out_dir: Path | None = None,
    influx: InfluxClient | None = None,
    write_influx: bool = True,
    log_mlflow: bool = True,
) -> DriftResult:
    """Compare ``current_path`` with the champion's training data (or ``reference_path``)."""
    import mlflow

    seed = settings.random_seed if seed is None else seed
    configure_mlflow(settings.mlflow)
    if reference_path is not None:
        reference_full, ref_version = read_dataset(reference_path), "file"
    else:
        reference_full, ref_version = champion_reference(settings.mlflow)
    reference = sample_rows(reference_full, max_rows, seed)
    current = sample_rows(read_dataset(current_path), max_rows, seed + 1)
    if len(reference) < 30 or len(current) < 30:
        raise PipelineError(
            f"too few usable rows for a drift check (reference {len(reference)}, current {len(current)})"
        )
    features = ks_drift(reference, current, alpha=alpha)
    n_drifted = sum(f.drifted for f in features)
    result = DriftResult(
        drifted=n_drifted > 0,
        share=n_drifted / len(features),
        alpha=alpha,
        n_features=len(features),
        n_drifted=n_drifted,
        reference_version=ref_version,
        features=features,
    )
    out_dir = Path(out_dir or default_out_dir(settings) / "drift" / time.strftime("%Y%m%dT%H%M%S"))
    result.json_path = write_json(out_dir / "drift.json", result)
    if log_mlflow:
        with mlflow.start_run(run_name=f"drift-vs-v{ref_version}") as run:
            evidently_share, html = evidently_report(reference, current, out_dir / "drift_report.html")
            result.html_path, result.run_id = html, run.info.run_id
            mlflow.set_tags({"vigil.step": "drift", "vigil.reference_version": ref_version})
            mlflow.log_params(
                {"alpha": alpha, "correction": "holm", "max_rows": max_rows, "current": str(current_path)}
            )
            mlflow.log_metrics(
                {"drift_share": result.share, "drifted": float(result.drifted), "n_drifted": float(n_drifted)}
                | ({"evidently_drift_share": evidently_share} if np.isfinite(evidently_share) else {})
                | {f"ks_stat.{f.feature}": f.statistic for f in features}
            )
            mlflow.log_artifact(str(html), artifact_path="drift")
            mlflow.log_artifact(str(result.json_path), artifact_path="drift")
    if write_influx:
        write_drift_points(settings.influx, result, influx)
    log.info(
        "drift: %d/%d features drifted (Holm, alpha=%s) vs version %s",
        n_drifted,
        len(features),
        alpha,
        ref_version,
    )
    return result


def write_drift_points(
    influx_config: InfluxSettings, result: DriftResult, influx: InfluxClient | None = None
) -> None:
    client = influx or InfluxClient(influx_config)
    if influx_config.create_databases:
        client.create_database(influx_config.vigil_db)
    now = time.time_ns()
    points = [
        DRIFT.point(
            {"feature": f.feature, "method": "ks", "reference_version": result.reference_version},
            {
                "statistic": f.statistic,
                "p_value": f.p_value,
                "p_adjusted": f.p_adjusted,
                "drifted": int(f.drifted),
            },
            now,
        )
        for f in result.features
    ]
    points.append(
        DRIFT_SUMMARY.point(
            {"reference_version": result.reference_version},
            {
                "drifted": int(result.drifted),
                "share": result.share,
                "n_features": result.n_features,
                "n_drifted": result.n_drifted,
                "alpha": result.alpha,
            },
            now,
        )
    )
    client.write_points(influx_config.vigil_db, points)
