"""What the per-row and the batch paths of the online model share: the score of one point, the
model's parts as a public read-only view, and the interface the batch path needs.

Apart from :mod:`vigil.online.detector` so that :mod:`vigil.online.batch` can read the model's
state without importing the detector (which imports the batch path) nor reaching into its
private attributes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from river.anomaly import HalfSpaceTrees

    from vigil.online.config import OnlineConfig
    from vigil.online.scaler import EwStandardScaler
    from vigil.online.threshold import RollingQuantile, ScoreLikelihood


@dataclass
class OnlineScore:
    """One scored point. ``contributions`` holds (feature, share of |z|), largest first."""

    score: float
    threshold: float
    is_anomaly: bool
    contributions: list[tuple[str, float]]
    raw_score: float = 0.0  # the HalfSpaceTrees score before calibration
    warmup: bool = False  # True while the model has seen fewer than config.warmup points
    extreme_score: float = 0.0  # the largest |z| over features (the "extreme" ensemble member)


@dataclass(frozen=True)
class OnlineParts:
    """The online model's parts, read-only by convention: the batch path scores with them (the
    same objects the per-row path uses, so both give the same bits); only the model learns."""

    scaler: EwStandardScaler
    trees: HalfSpaceTrees
    #: features of the "extreme" member (named ones, or those with the extreme suffix)
    extreme_features: list[str]
    #: calibration history of the HST score
    ranks: RollingQuantile
    #: calibration history of the extreme member (suffix rule)
    extreme_ranks: RollingQuantile
    #: one calibration history per named extreme feature (empty with the suffix rule)
    member_ranks: dict[str, RollingQuantile]
    likelihood: ScoreLikelihood


class OnlineModel(Protocol):
    """What :mod:`vigil.online.batch` needs from the online model (:class:`OnlineDetector`)."""

    feature_names: list[str]
    config: OnlineConfig

    @property
    def n_seen(self) -> int: ...

    @property
    def threshold(self) -> float: ...

    @property
    def parts(self) -> OnlineParts: ...

    def score(self, x: Mapping[str, float]) -> OnlineScore: ...

    def learn(self, x: Mapping[str, float], result: OnlineScore) -> None: ...


__all__ = ["OnlineModel", "OnlineParts", "OnlineScore"]
