"""The decision the detector serves, as one object: raw metrics in, the three prediction frames out.

Why one object in the core: what pages people is not one model's output but the whole path —
features (per-host baselines), the online model, the champion, the champion's per-host
calibration and the combined rule of :mod:`vigil.decision`. The detector runs it live, and
the batch loop must judge a challenger on exactly the same path (backtest, evaluate, the
promotion gate), so it lives here, below both, and neither re-implements it.

State (what a checkpoint keeps): the feature pipeline (counters + baselines), the online model
and the host calibration. :meth:`ServingPath.state` returns them as plain picklable parts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from vigil.features import FeaturePipeline
from vigil.features.source import RawFrames
from vigil.model import LoadedModel
from vigil.online import OnlineDetector
from vigil.serving.calibration import HostCalibration
from vigil.serving.scoring import (
    ONLINE_FEATURES,
    Scored,
    host_warmup,
    online_config,
    score_features,
    score_online,
)


@dataclass(frozen=True)
class ServingConfig:
    """The settings of the served decision (a section of :class:`vigil.settings.Settings`)."""

    warmup_intervals: int = 30
    online_learn_max: int = 2000
    host_calibration_window: int = 30
    seed: int = 42

    @classmethod
    def from_settings(cls, settings: Any) -> ServingConfig:
        return cls(
            warmup_intervals=int(settings.warmup_intervals),
            online_learn_max=int(settings.detector_online_learn_max),
            host_calibration_window=int(settings.detector_host_calibration_window),
            seed=int(settings.random_seed),
        )


@dataclass
class Served:
    """One update of the path: base metrics, features and the scored frames (``scored`` is None
    when no complete feature row came out)."""

    base: pd.DataFrame
    features: pd.DataFrame
    scored: Scored | None


class ServingPath:
    """Features → online model + champion → host calibration → combined decision.

    ``champion`` is passed per call rather than held: the detector swaps it on a registry alias
    change, a backtest passes the version under test.
    """

    def __init__(
        self,
        config: ServingConfig | None = None,
        *,
        pipeline: FeaturePipeline | None = None,
        online: OnlineDetector | None = None,
        calibration: HostCalibration | None = None,
    ) -> None:
        self.config = config or ServingConfig()
        self.pipeline = pipeline or FeaturePipeline()
        self.online = online or OnlineDetector(list(ONLINE_FEATURES), online_config(), seed=self.config.seed)
        self.calibration = calibration or HostCalibration(self.config.host_calibration_window)

    # --- scoring -----------------------------------------------------------------------------
    def warm(self, features: pd.DataFrame) -> np.ndarray:
        """Rows that are scored but may not alarm (their host's baseline is still young)."""
        return host_warmup(features, self.pipeline.builder.seen, self.config.warmup_intervals)

    def score(
        self,
        features: pd.DataFrame,
        champion: LoadedModel | None,
        *,
        learn: bool = True,
        on_error: Callable[[str, int], None] | None = None,
    ) -> Scored:
        """Score feature rows the pipeline has just produced (``learn=False``: read-only)."""
        return score_features(
            features,
            self.online,
            champion,
            self.warm(features),
            self.config.online_learn_max,
            on_error,
            learn=learn,
            calibration=self.calibration,
        )

    def update(
        self,
        raw: RawFrames,
        champion: LoadedModel | None,
        *,
        on_error: Callable[[str, int], None] | None = None,
    ) -> Served:
        """Absorb raw frames (complete intervals, any number of them) and score what comes out."""
        base, features = self.pipeline.update(raw)
        scored = None if features.empty else self.score(features, champion, on_error=on_error)
        return Served(base=base, features=features, scored=scored)

    def absorb(self, raw: RawFrames) -> pd.DataFrame:
        """Feed history to the baselines without scoring it (a host's warm start); returns its features."""
        return self.pipeline.update(raw)[1]

    def teach_online(self, features: pd.DataFrame) -> int:
        """Teach a young online model the most recent history rows; return how many it saw.

        Why: the online model is fleet-wide and only leaves its warm-up after ``config.warmup``
        samples; on a small fleet that takes hours of live data. History is what the hosts looked
        like, so it is learnt exactly as live rows are (score, then learn; flagged rows and rows of
        young baselines are not learnt). A model already past its warm-up is left alone.
        """
        cfg = self.online.config
        if features.empty or self.online.n_seen >= cfg.warmup:
            return 0
        rows = features
        if "warmup" in rows.columns:
            rows = rows[rows["warmup"].to_numpy().astype(int) == 0]
        times = pd.to_datetime(rows["time"], utc=True, cache=False)
        rows = rows.iloc[np.argsort(times.astype("int64").to_numpy(), kind="stable")].tail(
            cfg.calibration_window
        )
        if rows.empty:
            return 0
        score_online(self.online, rows, np.zeros(len(rows), dtype=bool), learn_max=len(rows))
        return len(rows)

    # --- state -------------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """Plain parts for a checkpoint (the feature arrays are not copied; see FeatureBuilder.state)."""
        return {
            "features": self.pipeline.state(),
            "online": self.online.to_bytes(),
            "host_calibration": self.calibration.state(),
        }

    @classmethod
    def from_state(cls, config: ServingConfig, state: dict[str, Any]) -> ServingPath:
        saved = state.get("host_calibration")  # absent in checkpoints older than it
        return cls(
            config,
            pipeline=FeaturePipeline.from_state(state["features"]),
            online=OnlineDetector.from_bytes(state["online"]),
            calibration=HostCalibration.from_state(saved)
            if saved
            else HostCalibration(config.host_calibration_window),
        )
