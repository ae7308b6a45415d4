"""Every tunable of the online model, with its default, in one place.

The defaults serve the fleet-wide detector (the fleet model of :mod:`vigil.decision`, which
only confirms the champion) under its per-sample cost budget (< ~100 µs for score + learn).
``vigil evaluate nab`` runs these same defaults through the serving path; there is no NAB
profile.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Literal


@dataclass
class OnlineConfig:
    """Tunables of :class:`vigil.online.OnlineDetector`.

    >>> OnlineConfig().height <= 8   # tree height dominates the cost (STACK_NOTES)
    True
    >>> OnlineConfig.from_dict({"n_trees": 5, "unknown": 1}).n_trees
    5
    """

    # --- HalfSpaceTrees (river.anomaly.HalfSpaceTrees) ---------------------------------------
    n_trees: int = 10
    height: int = 8
    window_size: int = 250
    # --- scaler: exponentially weighted standardisation, then squashed into [0, 1] ------------
    scaler_window: int = 1000  # effective memory of the running mean / variance (samples)
    scale_clip: float = 4.0  # |z| at which a feature reaches the edge of [0, 1]
    # --- score calibration -------------------------------------------------------------------
    #: "none": the HST score as is; "rank": the empirical CDF of the HST score among the last
    #: ``calibration_window`` HST scores (1.0 = higher than anything seen in that window;
    #: distribution-free, so heavy-tailed score histories do not fool it);
    #: "likelihood": how unlikely the short-term mean of recent HST scores is under a
    #: Gaussian fit of their long-term distribution (Numenta's anomaly-likelihood idea),
    #: as -log10(tail probability) / likelihood_log_scale, clipped to [0, 1].
    calibration: Literal["none", "rank", "likelihood"] = "rank"
    calibration_window: int = 2000
    #: the second ensemble member: "extreme" = the largest |x| over the features whose name
    #: ends with ``extreme_suffix`` (the host-relative z-scores, ``<metric>_z``), rank-calibrated
    #: like HST. It ranks points far beyond anything seen, where HST, whose inputs are clipped
    #: at ``scale_clip``, sees them all at the same edge. If no feature name matches, it uses
    #: the scaler's z of every feature. "none" = HST only.
    extreme_member: Literal["none", "extreme"] = "extreme"
    extreme_suffix: str = "_z"
    #: if not empty: these features (by exact name) are the extreme members instead, each
    #: rank-calibrated on its own |x| (so a smoothed feature, whose |x| is naturally smaller,
    #: is not drowned by a raw z in one max). Default empty: the suffix rule above.
    extreme_features: tuple[str, ...] = ()
    #: whether the HalfSpaceTrees member enters the score (the trees still learn and score;
    #: False lets a caller rely on the extreme members alone, e.g. a univariate series).
    hst_member: bool = True
    #: a stricter record for the HST member: it is ranked on ``raw / (1 + hst_record_margin)``,
    #: so it beats its history's maximum only when ``raw`` exceeds it by this fraction
    #: (0 = the plain rank, the default).
    hst_record_margin: float = 0.0
    #: if > 0: the HST member counts only on rows where the largest extreme member's rank is
    #: at least this (an extreme member is also elevated); elsewhere it is 0. 0 = always counts.
    hst_gate: float = 0.0
    #: how the calibrated members combine: "max" (either member is sure) or "mean".
    member_mix: Literal["max", "mean"] = "max"
    calibration_min_history: int = 100
    likelihood_long_window: int = 1000
    likelihood_short_window: int = 5
    likelihood_log_scale: float = 10.0
    # --- adaptive threshold ------------------------------------------------------------------
    threshold_quantile: float = 0.995  # rolling quantile of recent (calibrated) scores
    threshold_window: int = 2000  # how many recent scores the quantile looks at
    min_threshold: float = 0.5  # never flag below this score, whatever the quantile says
    #: "quantile": the rolling ``threshold_quantile`` of recent scores (flags a fixed share of
    #: points, about 1 - q, whatever the data). "record" (rank calibration only): flag a point
    #: only when a member is beyond everything in its calibration history (a new record);
    #: in a stable series records get rarer as the history grows (about ln n of n points),
    #: so with a long ``calibration_window`` the false-alarm rate falls over time.
    threshold_mode: Literal["quantile", "record"] = "quantile"
    # --- decision rule -----------------------------------------------------------------------
    warmup: int = 300  # samples seen before any point may be flagged
    #: rows muted after an alarm, per host (applied with AlarmCooldown by the caller)
    cooldown: int = 144
    #: after this many consecutive flagged points the model learns anyway: a lasting level
    #: shift becomes the new normal instead of an alarm that never ends.
    max_unlearned_run: int = 60

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold_quantile < 1.0:
            raise ValueError(f"threshold_quantile must be in (0, 1), got {self.threshold_quantile}")
        for name in (
            "n_trees",
            "height",
            "window_size",
            "scaler_window",
            "threshold_window",
            "calibration_window",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.calibration not in ("none", "rank", "likelihood"):
            raise ValueError(f"calibration must be 'none', 'rank' or 'likelihood', got {self.calibration!r}")
        if self.threshold_mode not in ("quantile", "record"):
            raise ValueError(f"threshold_mode must be 'quantile' or 'record', got {self.threshold_mode!r}")
        if self.threshold_mode == "record" and self.calibration != "rank":
            raise ValueError("threshold_mode='record' needs calibration='rank'")
        self.extreme_features = tuple(self.extreme_features)
        if self.hst_record_margin < 0:
            raise ValueError(f"hst_record_margin must be >= 0, got {self.hst_record_margin}")
        if not 0.0 <= self.hst_gate <= 1.0:
            raise ValueError(f"hst_gate must be in [0, 1], got {self.hst_gate}")
        if self.scale_clip <= 0:
            raise ValueError("scale_clip must be > 0")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> OnlineConfig:
        """Build from a dict, ignoring keys this version does not know (old checkpoints/configs)."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})
