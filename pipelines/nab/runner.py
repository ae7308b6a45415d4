"""Stream NAB series through Vigil's detection code and collect per-row results.

One pass per series, in file order, score-then-learn (``OnlineDetector.process``): no row
is scored by a model that has seen it or anything after it, and labels are never read
here (the runner receives values only; scoring happens afterwards in ``scorer``).

``anomaly_score`` (NAB's [0, 1] column) is the detector's *severity* ``s = score /
threshold`` from ``vigil.decision`` squashed as ``s / (1 + s)``: 0.5 is exactly Vigil's own
decision boundary, and NAB's threshold sweep still sees the ordering around it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from pipelines.nab.batch import detect_batch
from pipelines.nab.features import DEFAULT_SCALES, Scale, build_features
from vigil import decision
from vigil.online import AlarmCooldown, OnlineConfig, OnlineDetector

Detector = Literal["online", "batch", "combined"]
DETECTORS: tuple[str, ...] = ("online", "batch", "combined")


@dataclass
class RunnerConfig:
    """How the NAB runner uses the models (the online model's own tunables live in OnlineConfig)."""

    #: The extreme member watches the deviation from the slowest (week-long) baseline: on
    #: NAB's files it ranks novel extremes far better than the faster scales, which also
    #: fire on ordinary daily spikes.
    online: OnlineConfig = field(default_factory=lambda: OnlineConfig(extreme_suffix="slow_value_z"))
    scales: tuple[Scale, ...] = DEFAULT_SCALES
    #: HST's inputs: the z-scores of every scale (vol/zmean added noise on NAB)
    model_features: tuple[str, ...] = ("fast_value_z", "mid_value_z", "slow_value_z")
    seeds: tuple[int, ...] = (42,)  # >1: a small ensemble, severities averaged

    def to_dict(self) -> dict[str, Any]:
        return {
            "online": self.online.to_dict(),
            "scales": [asdict(s) for s in self.scales],
            "model_features": list(self.model_features),
            "seeds": list(self.seeds),
        }


def _online(feats: pd.DataFrame, config: RunnerConfig) -> pd.DataFrame:
    frames = []
    for seed in config.seeds:
        det = OnlineDetector(list(feats.columns), config.online, seed=seed)
        frames.append(det.process_frame(feats))
    if len(frames) == 1:
        return frames[0]
    sev = np.mean([decision.severity(f["score"], f["threshold"], f["is_anomaly"]) for f in frames], axis=0)
    out = frames[0].copy()
    out["score"] = sev
    out["threshold"] = 1.0
    out["is_anomaly"] = ((sev > 1.0) & (out["warmup"].to_numpy() == 0)).astype(int)
    return out


def detect(
    values: Sequence[float], probation: int, detector: Detector = "online", config: RunnerConfig | None = None
) -> pd.DataFrame:
    """Per-row anomaly_score in [0, 1] and is_anomaly (0/1), plus score and threshold."""
    if detector not in DETECTORS:
        raise ValueError(f"unknown detector {detector!r}; choose one of {DETECTORS}")
    config = config or RunnerConfig()
    feats = build_features(values, config.scales)[list(config.model_features)]
    if detector == "online":
        pred = _online(feats, config)
    elif detector == "batch":
        pred = detect_batch(feats, probation)
    else:
        online = _online(feats, config)
        batch = detect_batch(feats, probation)
        pred = decision.combine_frames(online, batch, warmup=online["warmup"].to_numpy())
    sev = decision.severity(pred["score"], pred["threshold"], pred["is_anomaly"])
    # one series = one host: after an alarm, its next `cooldown` rows are muted (one incident,
    # one alarm); muted rows also get anomaly_score 0 so NAB's sweep sees the same rule.
    cooldown = AlarmCooldown(config.online.cooldown)
    flags = pred["is_anomaly"].to_numpy().astype(bool)
    alarms = np.zeros(len(flags), dtype=bool)
    muted = np.zeros(len(flags), dtype=bool)
    for i, flagged in enumerate(flags):
        muted[i] = cooldown.in_cooldown("nab")
        alarms[i] = cooldown.step("nab", bool(flagged))
    anomaly_score = np.where(muted, 0.0, sev / (1.0 + sev))
    return pd.DataFrame(
        {
            "anomaly_score": anomaly_score,
            "is_anomaly": alarms.astype(int),
            "score": pred["score"].to_numpy(),
            "threshold": pred["threshold"].to_numpy(),
        }
    )
