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


def nab_online_config() -> OnlineConfig:
    """The NAB profile of the online model: OnlineConfig defaults except where NAB differs.

    Why it differs from the fleet detector's defaults: NAB scores each series alone (one
    host, univariate, two weeks, one or two incidents) and punishes every false alarm, so
    a point must be a *record* of its whole series on one of two members: the deviation
    from the week-long baseline (level/spike, ``slow_value_z``) or the hour-smoothed
    deviation from the 12-hour baseline (a sustained change, ``mid_value_zmean``). The
    fleet detector keeps the rolling-quantile threshold: it scores many multivariate hosts
    with one model, where a fixed alarm share is what operators tune. HalfSpaceTrees (the
    River model) is the third member of the score, with a stricter record: its raw score
    must beat its history's maximum by 3 % (``hst_record_margin``) and it counts only where
    an extreme member is also elevated (rank >= 0.95, ``hst_gate``). Alone or as a plain
    max member it ranks NAB's windows below the extreme members and adds false alarms
    (docs/nab.md, tuning log); gated this way it costs < 1 point.
    """
    return OnlineConfig(
        extreme_features=("slow_value_z", "mid_value_zmean"),
        hst_record_margin=0.03,
        hst_gate=0.95,
        threshold_mode="record",
        calibration_window=1_000_000,  # the whole series: records relative to everything seen
    )


@dataclass
class RunnerConfig:
    """How the NAB runner uses the models (the online model's own tunables live in OnlineConfig)."""

    online: OnlineConfig = field(default_factory=nab_online_config)
    scales: tuple[Scale, ...] = DEFAULT_SCALES
    #: the detector's inputs: HST's (the z-scores of every scale) plus the extreme members'
    model_features: tuple[str, ...] = ("fast_value_z", "mid_value_z", "slow_value_z", "mid_value_zmean")
    #: the batch IsolationForest's inputs (unchanged from the first NAB run)
    batch_features: tuple[str, ...] = ("fast_value_z", "mid_value_z", "slow_value_z")
    seeds: tuple[int, ...] = (42,)  # >1: a small ensemble, severities averaged

    def to_dict(self) -> dict[str, Any]:
        return {
            "online": self.online.to_dict(),
            "scales": [asdict(s) for s in self.scales],
            "model_features": list(self.model_features),
            "batch_features": list(self.batch_features),
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
    all_feats = build_features(values, config.scales)
    feats = all_feats[list(config.model_features)]
    batch_feats = all_feats[list(config.batch_features)]
    if detector == "online":
        pred = _online(feats, config)
    elif detector == "batch":
        pred = detect_batch(batch_feats, probation)
    else:
        online = _online(feats, config)
        batch = detect_batch(batch_feats, probation)
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
