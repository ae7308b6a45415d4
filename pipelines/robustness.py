"""Robustness: the holdout metrics again, with the holdout's *feature frame* perturbed.

A model that wins on a clean holdout by a hair can lose everything when a sensor gets noisy,
a collector drops fields or a deploy moves a baseline. This module re-scores the holdout under
four seeded perturbations and reports the primary metric (F1 at the model's own threshold,
the metric ``promote`` compares) under each, beside the clean one:

============== ==============================================================================
perturbation   what changes (sigma_f = std of feature f over the clean holdout's normal rows)
============== ==============================================================================
gaussian_noise every feature value + N(0, (0.3 sigma_f)^2) — measurement jitter
missing        10 % of the feature cells set to NaN, completely at random; the model contract
               reads NaN as 0 ("at the host's baseline") — dropped fields, late counters
outliers       2 % of the rows get one feature (chosen at random) set to +/- 8 sigma_f — single
               glitches (a counter reset, a bogus sample) that are not incidents
level_shift    a third of the features (chosen at random, the same for every row) + 1 sigma_f —
               a fleet-wide step, e.g. a deploy that moves a baseline the model never saw
============== ==============================================================================

Why the feature frame and not the raw metrics: the gate judges the *model*; perturbing raw
metrics would mostly measure the feature pipeline (per-host baselines absorb a level shift
within their window, rate computation changes NaN handling), would need an InfluxDB round
trip and re-extraction per perturbation, and ``evaluate`` has only the feature frame anyway.
Labels, hosts and times are never changed, so every perturbation is judged against the same
ground truth as the clean holdout.

Each perturbation draws from its own generator seeded by ``(seed, perturbation index)``, so
the same holdout and seed give the same perturbed frame for every model: the challenger and
the champion are re-scored on identical noise.

Metrics: ``robust_<perturbation>_f1`` and ``robust_<perturbation>_pr_auc`` per perturbation,
and the summary ``robustness_f1`` = the **minimum** of the per-perturbation F1s (worst case:
a mean would let one catastrophic failure hide behind three harmless perturbations), and
``robustness_drop_f1`` = clean F1 - ``robustness_f1``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipelines.common import PipelineError
from pipelines.metrics import point_metrics
from vigil.features import FEATURE_COLUMNS
from vigil.plotting import save_figure

log = logging.getLogger(__name__)

#: The worst-case F1 under the perturbations.
ROBUSTNESS_METRIC = "robustness_f1"
#: What the promotion gate compares: F1 lost under the worst perturbation (fragility, not sensitivity).
ROBUSTNESS_DROP = "robustness_drop_f1"


@dataclass(frozen=True)
class Perturbation:
    """One documented perturbation of the feature frame; ``magnitude`` in the unit its doc names."""

    name: str
    magnitude: float
    doc: str
    apply: Callable[[np.ndarray, np.ndarray, float, np.random.Generator], np.ndarray]


def _noise(x: np.ndarray, sigma: np.ndarray, m: float, rng: np.random.Generator) -> np.ndarray:
    return x + rng.normal(size=x.shape) * (m * sigma)


def _missing(x: np.ndarray, sigma: np.ndarray, m: float, rng: np.random.Generator) -> np.ndarray:
    out = x.copy()
    out[rng.random(x.shape) < m] = np.nan
    return out


def _outliers(x: np.ndarray, sigma: np.ndarray, m: float, rng: np.random.Generator) -> np.ndarray:
    out = x.copy()
    rows = np.flatnonzero(rng.random(len(x)) < 0.02)
    cols = rng.integers(0, x.shape[1], size=len(rows))
    signs = rng.choice([-1.0, 1.0], size=len(rows))
    out[rows, cols] = signs * m * sigma[cols]
    return out


def _level_shift(x: np.ndarray, sigma: np.ndarray, m: float, rng: np.random.Generator) -> np.ndarray:
    cols = rng.choice(x.shape[1], size=max(1, x.shape[1] // 3), replace=False)
    out = x.copy()
    out[:, cols] += m * sigma[cols]
    return out


PERTURBATIONS: dict[str, Perturbation] = {
    p.name: p
    for p in (
        Perturbation("gaussian_noise", 0.3, "+ N(0, (m*sigma_f)^2) on every cell", _noise),
        Perturbation("missing", 0.1, "share m of the cells set to NaN", _missing),
        Perturbation("outliers", 8.0, "2% of rows: one feature set to +/- m*sigma_f", _outliers),
        Perturbation("level_shift", 1.0, "a third of the features + m*sigma_f", _level_shift),
    )
}


def feature_scales(frame: pd.DataFrame) -> np.ndarray:
    """sigma_f per feature: std over the normal rows (all rows if none are labelled normal); 1 if 0/NaN."""
    normal = frame[frame["label"] == 0] if "label" in frame.columns else frame
    normal = normal if len(normal) > 1 else frame
    x = normal.reindex(columns=list(FEATURE_COLUMNS)).to_numpy(dtype=float, na_value=np.nan)
    sigma = np.nanstd(x, axis=0) if len(x) else np.ones(len(FEATURE_COLUMNS))
    return np.where(np.isfinite(sigma) & (sigma > 0), sigma, 1.0)


def perturb(frame: pd.DataFrame, name: str, seed: int, magnitude: float | None = None) -> pd.DataFrame:
    """A copy of ``frame`` with perturbation ``name`` applied to its feature columns (seeded)."""
    if name not in PERTURBATIONS:
        raise PipelineError(f"unknown perturbation {name!r}; known: {sorted(PERTURBATIONS)}")
    p = PERTURBATIONS[name]
    rng = np.random.default_rng([seed, list(PERTURBATIONS).index(name)])
    cols = list(FEATURE_COLUMNS)
    x = frame.reindex(columns=cols).to_numpy(dtype=float, na_value=np.nan)
    out = frame.copy()
    out[cols] = p.apply(x, feature_scales(frame), p.magnitude if magnitude is None else magnitude, rng)
    return out


@dataclass
class RobustnessResult:
    metrics: dict[str, float]  # robust_<p>_f1, robust_<p>_pr_auc, robustness_f1, robustness_drop_f1
    clean_f1: float
    png_path: Path | None = None


def robustness(
    model: Any,
    holdout: pd.DataFrame,
    *,
    seed: int,
    clean_f1: float | None = None,
    magnitudes: Mapping[str, float] | None = None,
) -> RobustnessResult:
    """Score ``model`` (anything with the contract's ``predict``) on each perturbed copy of ``holdout``.

    ``clean_f1`` (the holdout F1 ``evaluate`` already computed) saves one scoring pass.
    """
    if holdout.empty:
        raise PipelineError("robustness: the holdout is empty")
    holdout = holdout.reset_index(drop=True)
    y = holdout["label"].to_numpy(dtype=np.int64)
    metrics: dict[str, float] = {}
    if clean_f1 is None:
        clean = model.predict(holdout)
        clean_f1 = point_metrics(y, clean["score"].to_numpy(float), float(clean["threshold"].iloc[0]))["f1"]
    for name in PERTURBATIONS:
        frame = perturb(holdout, name, seed, (magnitudes or {}).get(name))
        out = model.predict(frame)
        if len(out) != len(frame):
            raise PipelineError(f"model returned {len(out)} rows for {len(frame)} perturbed rows")
        m = point_metrics(y, out["score"].to_numpy(float), float(out["threshold"].iloc[0]))
        metrics[f"robust_{name}_f1"] = m["f1"]
        metrics[f"robust_{name}_pr_auc"] = m["pr_auc"]
    worst = min(metrics[f"robust_{n}_f1"] for n in PERTURBATIONS)
    metrics[ROBUSTNESS_METRIC] = worst
    metrics[ROBUSTNESS_DROP] = float(clean_f1) - worst
    log.info(
        "robustness: clean f1=%.3f, %s",
        clean_f1,
        " ".join(f"{n}={metrics[f'robust_{n}_f1']:.3f}" for n in PERTURBATIONS),
    )
    return RobustnessResult(metrics, float(clean_f1))


def plot_robustness(result: RobustnessResult, path: Path, title: str) -> Path:
    """Bar chart: F1 clean and under each perturbation (the worst one highlighted)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = ["clean", *PERTURBATIONS]
    values = [result.clean_f1, *(result.metrics[f"robust_{n}_f1"] for n in PERTURBATIONS)]
    worst = result.metrics[ROBUSTNESS_METRIC]
    colors = ["tab:green"] + ["tab:red" if v == worst else "tab:blue" for v in values[1:]]
    fig, ax = plt.subplots(figsize=(7, 3.2))
    bars = ax.bar(names, values, color=colors)
    for bar, value in zip(bars, values, strict=True):
        ax.text(bar.get_x() + bar.get_width() / 2, value + 0.01, f"{value:.3f}", ha="center", fontsize=8)
    ax.set_ylim(0, 1.08)
    ax.set_ylabel("F1 at the model's threshold")
    ax.set_title(f"{title} — robustness (red: worst = robustness_f1)", fontsize=9)
    save_figure(fig, path, dpi=90)
    result.png_path = path
    return path
