"""The online model: HalfSpaceTrees behind a scaler, with a calibrated, adaptive threshold.

One model serves the whole fleet: the detector feeds host-relative features (z-scores
against per-host baselines), so "normal" looks alike on every host and one model can
learn it. ``score`` is pure, ``learn`` mutates; ``process`` is both, in that order, which
is the only order that keeps the evaluation honest (a point never helps score itself).
"""

from __future__ import annotations

import math
import pickle
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from river.anomaly import HalfSpaceTrees

from vigil.online.batch import BatchScores, learn_batch, score_batch
from vigil.online.config import OnlineConfig
from vigil.online.scaler import EwStandardScaler
from vigil.online.state import OnlineParts, OnlineScore
from vigil.online.threshold import RollingQuantile, ScoreLikelihood

CHECKPOINT_VERSION = 1


@dataclass
class _State:
    n_seen: int = 0
    n_learned: int = 0
    unlearned_run: int = 0
    extra: dict = field(default_factory=dict)


class OnlineDetector:
    """HalfSpaceTrees (river.anomaly.HalfSpaceTrees) behind a scaler, with an adaptive
    threshold (rolling quantile of recent scores).

    The score is calibrated (``OnlineConfig.calibration``, default "rank": the empirical
    CDF of the HST score over recent history) and, by default, is the max of two
    rank-calibrated members: HST (joint novelty of the scaled features) and "extreme"
    (the largest |z| among the ``*_z`` features: how far beyond recent history a deviation
    is, which HST cannot rank once inputs hit the edge of [0, 1]).

    >>> import random
    >>> rng = random.Random(0)
    >>> det = OnlineDetector(["cpu_z", "mem_z"], OnlineConfig(warmup=200, window_size=100))
    >>> for _ in range(600):
    ...     r = det.process({"cpu_z": rng.gauss(0, 1), "mem_z": rng.gauss(0, 1)})
    >>> det.n_seen
    600
    >>> normal = det.score({"cpu_z": 0.1, "mem_z": -0.2})
    >>> spike = det.score({"cpu_z": 9.0, "mem_z": 0.0})
    >>> spike.raw_score > normal.raw_score, spike.contributions[0][0]
    (True, 'cpu_z')
    >>> det.n_seen   # score() is pure
    600
    >>> OnlineDetector.from_bytes(det.to_bytes()).score({"cpu_z": 9.0, "mem_z": 0.0}) == spike
    True
    """

    def __init__(self, feature_names: Sequence[str], config: OnlineConfig | None = None, seed: int = 42):
        if not feature_names:
            raise ValueError("OnlineDetector needs at least one feature name")
        if len(set(feature_names)) != len(feature_names):
            raise ValueError(f"duplicate feature names: {list(feature_names)}")
        self.feature_names = list(feature_names)
        self.config = config or OnlineConfig()
        self.seed = seed
        c = self.config
        self._scaler = EwStandardScaler(self.feature_names, c.scaler_window, c.scale_clip)
        self._hst = HalfSpaceTrees(n_trees=c.n_trees, height=c.height, window_size=c.window_size, seed=seed)
        self._quantile = RollingQuantile(c.threshold_quantile, c.threshold_window)
        self._likelihood = ScoreLikelihood(
            c.likelihood_long_window, c.likelihood_short_window, c.likelihood_log_scale
        )
        self._ranks = RollingQuantile(0.5, c.calibration_window)
        self._ext_ranks = RollingQuantile(0.5, c.calibration_window)
        if c.extreme_features:
            unknown = [f for f in c.extreme_features if f not in self.feature_names]
            if unknown:
                raise ValueError(
                    f"extreme_features {unknown} are not among the features {self.feature_names}"
                )
            self._extreme_features = list(c.extreme_features)
        else:
            self._extreme_features = [f for f in self.feature_names if f.endswith(c.extreme_suffix)]
        #: one calibration history per named extreme member (empty with the suffix rule)
        self._member_ranks = {f: RollingQuantile(0.5, c.calibration_window) for f in c.extreme_features}
        self._state = _State()

    # --- public API --------------------------------------------------------------------------
    @property
    def n_seen(self) -> int:
        """Points passed to :meth:`learn` (learned or not)."""
        return self._state.n_seen

    @property
    def n_learned(self) -> int:
        """Points the trees and scaler actually learned from."""
        return self._state.n_learned

    @property
    def parts(self) -> OnlineParts:
        """The model's parts (scaler, trees, calibration histories), for the batch path to score
        with; read them, never change them (only :meth:`learn` does)."""
        return OnlineParts(
            scaler=self._scaler,
            trees=self._hst,
            extreme_features=self._extreme_features,
            ranks=self._ranks,
            extreme_ranks=self._ext_ranks,
            member_ranks=self._member_ranks,
            likelihood=self._likelihood,
        )

    @property
    def threshold(self) -> float:
        """The current decision threshold."""
        c = self.config
        if c.threshold_mode == "record":
            # a rank beyond the history's maximum is >= n / (n + 1) (RollingQuantile.rank)
            n = len(self._ranks)
            return max(c.min_threshold, n / (n + 1.0)) if n else max(c.min_threshold, 1.0)
        if len(self._quantile) == 0:
            return max(c.min_threshold, 1.0)
        return max(c.min_threshold, self._quantile.value())

    def score(self, x: Mapping[str, float]) -> OnlineScore:
        """Score one point without learning from it."""
        c = self.config
        z = self._scaler.zscores(x)
        squashed = {f: min(1.0, max(0.0, (v + c.scale_clip) / (2 * c.scale_clip))) for f, v in z.items()}
        raw = float(self._hst.score_one(squashed)) if squashed else 0.0
        extreme = self._extreme(x, z)
        if c.calibration == "rank":
            ready = len(self._ranks) >= c.calibration_min_history
            members = self._member_scores(x, raw, extreme) if ready else [0.0]
            score = max(members) if c.member_mix == "max" else sum(members) / len(members)
        elif c.calibration == "likelihood":
            score = self._likelihood.calibrate(raw)
        else:
            score = raw
        warm = self._state.n_seen < c.warmup
        threshold = self.threshold
        is_anomaly = (not warm) and score > threshold
        return OnlineScore(
            score=score,
            threshold=threshold,
            is_anomaly=bool(is_anomaly),
            contributions=_contributions(z),
            raw_score=raw,
            warmup=warm,
            extreme_score=extreme,
        )

    def _member_scores(self, x: Mapping[str, float], raw: float, extreme: float) -> list[float]:
        """Rank-calibrated scores of the ensemble members (HST, then the extreme member(s))."""
        c = self.config
        ext: list[float] = []
        if c.extreme_member == "extreme":
            if self._member_ranks:
                ext = [ranks.rank(_abs_or_zero(x.get(f))) for f, ranks in self._member_ranks.items()]
            else:
                ext = [self._ext_ranks.rank(extreme)]
        members = []
        if c.hst_member:
            hst = self._ranks.rank(raw / (1.0 + c.hst_record_margin))
            if c.hst_gate > 0 and ext and max(ext) < c.hst_gate:
                hst = 0.0  # HST counts only where an extreme member is also elevated
            members.append(hst)
        members += ext
        return members or [0.0]

    def _extreme(self, x: Mapping[str, float], z: Mapping[str, float]) -> float:
        if self._extreme_features:
            vals = [x.get(f) for f in self._extreme_features]
            return max((abs(v) for v in vals if v is not None and math.isfinite(v)), default=0.0)
        return max((abs(v) for v in z.values()), default=0.0)

    def learn(self, x: Mapping[str, float], result: OnlineScore) -> None:
        """Update threshold statistics with ``result``; learn ``x`` unless it was flagged.

        Not learning flagged points keeps an ongoing incident from becoming "normal"; after
        ``max_unlearned_run`` flagged points in a row the model learns anyway, so a lasting
        change of regime stops alarming.
        """
        c = self.config
        st = self._state
        st.n_seen += 1
        if c.calibration == "rank" and not result.warmup:
            self._ranks.update(result.raw_score)
            self._ext_ranks.update(result.extreme_score)
            for f, ranks in self._member_ranks.items():
                ranks.update(_abs_or_zero(x.get(f)))
        elif c.calibration == "likelihood":
            self._likelihood.update(result.raw_score)
        if not result.warmup:
            self._quantile.update(result.score)
        if result.is_anomaly:
            st.unlearned_run += 1
            if st.unlearned_run <= c.max_unlearned_run:
                return
        else:
            st.unlearned_run = 0
        self._scaler.learn(x)
        squashed = self._scaler.squash(x)
        if squashed:
            self._hst.learn_one(squashed)
        st.n_learned += 1

    def process(self, x: Mapping[str, float]) -> OnlineScore:
        """Score, then learn: the streaming order."""
        result = self.score(x)
        self.learn(x, result)
        return result

    def score_many(self, x: np.ndarray) -> BatchScores:
        """Score every row of ``x`` (rows × ``feature_names``, NaN = missing) against the current
        state, vectorised; row ``i`` equals ``score`` of that row (``vigil.online.batch``)."""
        return score_batch(self, x)

    def learn_many(self, x: np.ndarray, scores: BatchScores, mask: np.ndarray | None = None) -> int:
        """:meth:`learn` the rows of ``x`` (where ``mask`` holds), in order, with their ``scores``."""
        return learn_batch(self, x, scores, np.ones(len(x), dtype=bool) if mask is None else mask)

    def process_many(self, rows: Iterable[Mapping[str, float]]) -> list[OnlineScore]:
        return [self.process(x) for x in rows]

    def process_frame(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Process rows in order; one output row per input row, same index.

        Columns are ``vigil.schema.PREDICTIONS`` field names: score, threshold, is_anomaly,
        warmup, top{k}_feature, top{k}_contribution (k = 1..3), plus raw_score.
        """
        missing = [f for f in self.feature_names if f not in frame.columns]
        if missing:
            raise ValueError(f"frame lacks feature column(s) {missing}; has {list(frame.columns)}")
        records = frame[self.feature_names].to_dict("records")
        out = [_as_row(self.process(x)) for x in records]
        columns = ["score", "threshold", "is_anomaly", "warmup", "raw_score"]
        for k in (1, 2, 3):
            columns += [f"top{k}_feature", f"top{k}_contribution"]
        return pd.DataFrame(out, index=frame.index, columns=columns)

    # --- checkpoints -------------------------------------------------------------------------
    def __setstate__(self, state: dict) -> None:
        # checkpoints written before named extreme members existed load with none
        state.setdefault("_member_ranks", {})
        self.__dict__.update(state)

    def to_bytes(self) -> bytes:
        """Serialise the whole model state (trees, scaler, threshold window, counters)."""
        return pickle.dumps(
            {"version": CHECKPOINT_VERSION, "detector": self}, protocol=pickle.HIGHEST_PROTOCOL
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> OnlineDetector:
        """Inverse of :meth:`to_bytes`. Only load checkpoints you wrote (pickle)."""
        payload = pickle.loads(data)  # noqa: S301 - our own checkpoints only
        if not isinstance(payload, dict) or payload.get("version") != CHECKPOINT_VERSION:
            raise ValueError("not an OnlineDetector checkpoint of a known version")
        detector = payload["detector"]
        if not isinstance(detector, cls):
            raise ValueError(f"checkpoint holds {type(detector).__name__}, not {cls.__name__}")
        return detector


def _abs_or_zero(v: float | None) -> float:
    return abs(v) if v is not None and math.isfinite(v) else 0.0


def _contributions(z: Mapping[str, float]) -> list[tuple[str, float]]:
    """Each feature's share of the total |z|: which features are out of line, largest first."""
    total = sum(abs(v) for v in z.values())
    if total <= 0:
        return [(f, 0.0) for f in z]
    return sorted(((f, abs(v) / total) for f, v in z.items()), key=lambda kv: -kv[1])


def _as_row(r: OnlineScore) -> dict:
    row = {
        "score": r.score,
        "threshold": r.threshold,
        "is_anomaly": int(r.is_anomaly),
        "warmup": int(r.warmup),
        "raw_score": r.raw_score,
    }
    for k in (1, 2, 3):
        if len(r.contributions) >= k:
            row[f"top{k}_feature"], row[f"top{k}_contribution"] = r.contributions[k - 1]
        else:
            row[f"top{k}_feature"], row[f"top{k}_contribution"] = "", 0.0
    return row
