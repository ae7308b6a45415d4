"""The decision the detector serves, as one object: metrics in, the prediction frames out.

Why one object in the core: what pages people is not one model's output but the whole path —
features (per-host baselines), the per-series evidence, the fleet model, the champion with its
per-host calibration, the combined rule of :mod:`vigil.decision` and the alarm grouping. The
detector runs it live; the batch loop judges a challenger on exactly this path (backtest,
evaluate, the promotion gate); ``vigil evaluate nab`` scores it on public series. So it lives
here, below all of them, and none re-implements it.

State (what a checkpoint keeps): the feature pipeline (counters + baselines), the per-series
evidence, the fleet model, the host calibration and the alarm grouping; :meth:`ServingPath.state`
returns them as plain picklable parts.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from vigil.decision import out_of_band
from vigil.features import BASE_METRIC_NAMES, FeaturePipeline
from vigil.features.baseline import BaselineConfig
from vigil.features.source import RawFrames
from vigil.model import LoadedModel
from vigil.online import OnlineDetector
from vigil.online.series import SeriesConfig, SeriesEvidence
from vigil.serving.calibration import HostCalibration
from vigil.serving.grouping import AlarmGrouping
from vigil.serving.scoring import (
    Scored,
    host_warmup,
    online_config,
    score_features,
    score_online,
)

NS = 1_000_000_000


@dataclass(frozen=True)
class ServingConfig:
    """The settings of the served decision (a section of :class:`vigil.settings.Settings`).

    Time is in seconds: the same configuration serves 10 s host metrics and 5-minute series.
    """

    interval_s: float = 10.0  # width of one host-interval (the features' unit)
    warmup_s: float = 300.0  # a new host is scored but may not flag for this long
    online_learn_max: int = 2000
    host_calibration_window: int = 30
    seed: int = 42
    #: a host pages at most once per this many seconds (vigil.serving.grouping)
    alarm_group_s: float = 3600.0
    #: rule 4 of vigil.decision: a row flags only while some metric is this many sigmas out now
    band_z: float = 3.0
    #: rule 1 of vigil.decision: the fleet model may confirm the champion (False: it is ignored)
    fleet_confirms: bool = True
    series: SeriesConfig = field(default_factory=SeriesConfig)

    @classmethod
    def from_settings(cls, settings: Any) -> ServingConfig:
        return cls(
            interval_s=float(settings.features.interval_s),
            warmup_s=float(settings.detector.warmup_s),
            online_learn_max=int(settings.detector.online_learn_max),
            host_calibration_window=int(settings.detector.host_calibration_window),
            seed=int(settings.random_seed),
            alarm_group_s=float(settings.detector.alarm_group_s),
            band_z=float(settings.detector.band_z),
            fleet_confirms=bool(settings.detector.fleet_confirms),
        )

    @property
    def warmup_intervals(self) -> int:
        return max(0, round(self.warmup_s / self.interval_s))


@dataclass
class Served:
    """One update of the path: base metrics, features and the scored frames (``scored`` is None
    when no complete feature row came out)."""

    base: pd.DataFrame
    features: pd.DataFrame
    scored: Scored | None


class ServingPath:
    """Features → series evidence + fleet model + champion → calibration → decision → grouping.

    ``champion`` is passed per call rather than held: the detector swaps it on a registry alias
    change, a backtest passes the version under test. ``metrics``: the base metrics served
    (Telegraf's by default; a NAB file is one host with the metric ``value``).
    """

    def __init__(
        self,
        config: ServingConfig | None = None,
        *,
        metrics: Sequence[str] = BASE_METRIC_NAMES,
        pipeline: FeaturePipeline | None = None,
        online: OnlineDetector | None = None,
        calibration: HostCalibration | None = None,
        series: SeriesEvidence | None = None,
        grouping: AlarmGrouping | None = None,
    ) -> None:
        self.config = config or ServingConfig()
        c = self.config
        self.pipeline = pipeline or FeaturePipeline(
            BaselineConfig(), interval_s=c.interval_s, metrics=metrics
        )
        self.metrics = self.pipeline.metrics
        fleet_features = [f"{m}_z" for m in self.metrics]
        self.online = online or OnlineDetector(fleet_features, online_config(), seed=c.seed)
        self.calibration = calibration or HostCalibration(c.host_calibration_window)
        self.series = series or SeriesEvidence(self.metrics, c.series)
        self.grouping = grouping or AlarmGrouping(c.alarm_group_s)

    # --- scoring -----------------------------------------------------------------------------
    def warm(self, features: pd.DataFrame) -> np.ndarray:
        """Rows that are scored but may not flag (their host's baseline is still young)."""
        return host_warmup(features, self.pipeline.builder.seen, self.config.warmup_intervals)

    def score(
        self,
        features: pd.DataFrame,
        champion: LoadedModel | None,
        *,
        base: pd.DataFrame | None = None,
        learn: bool = True,
        on_error: Callable[[str, int], None] | None = None,
        warm: np.ndarray | None = None,
    ) -> Scored:
        """Score feature rows the pipeline has just produced; ``base``: their base-metric rows
        (same host/time keys) for the per-series evidence (None: that evidence is not used, as
        for feature rows sent to the scoring API). ``learn=False``: read-only. ``warm``: the rows'
        warm-up flags when the caller knows better than this path's baselines (the API's copies)."""
        features = features.reset_index(drop=True)
        series = self._series(features, base, learn) if base is not None else None
        band = out_of_band(features, self.config.band_z)
        scored = score_features(
            features,
            self.online,
            champion,
            self.warm(features) if warm is None else np.asarray(warm, dtype=bool),
            self.config.online_learn_max,
            on_error,
            learn=learn,
            calibration=self.calibration,
            series=series,
            now=band,
            fleet_confirms=self.config.fleet_confirms,
        )
        self._group(scored, band, learn)
        return scored

    def update(
        self,
        raw: RawFrames,
        champion: LoadedModel | None,
        *,
        on_error: Callable[[str, int], None] | None = None,
    ) -> Served:
        """Absorb raw frames (complete intervals, any number of them) and score what comes out."""
        base, features = self.pipeline.update(raw)
        scored = None if features.empty else self.score(features, champion, base=base, on_error=on_error)
        return Served(base=base, features=features, scored=scored)

    def update_base(
        self,
        base: pd.DataFrame,
        champion: LoadedModel | None = None,
        *,
        on_error: Callable[[str, int], None] | None = None,
    ) -> Served:
        """Like :meth:`update` for base-metric rows (host, time, one column per metric)."""
        features = self.pipeline.update_base(base)
        scored = None if features.empty else self.score(features, champion, base=base, on_error=on_error)
        return Served(base=base, features=features, scored=scored)

    def absorb(self, raw: RawFrames) -> pd.DataFrame:
        """Feed history to the baselines and the series evidence without scoring it (a host's
        warm start); returns its features."""
        base, features = self.pipeline.update(raw)
        if not features.empty:
            self._series(features.reset_index(drop=True), base, learn=True)
        return features

    def teach_online(self, features: pd.DataFrame) -> int:
        """Teach a young fleet model the most recent history rows; return how many it saw.

        Why: the fleet model only leaves its warm-up after ``config.warmup`` samples; on a small
        fleet that takes hours of live data. History is what the hosts looked like, so it is learnt
        exactly as live rows are (score, then learn; flagged rows and rows of young baselines are
        not learnt). A model already past its warm-up is left alone.
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

    # --- the per-series evidence and the grouping ---------------------------------------------
    def _series(self, features: pd.DataFrame, base: pd.DataFrame, learn: bool) -> pd.DataFrame:
        """Per feature row: the host's strongest series evidence (score), its metric, and whether
        what is out of line is usual for this hour of the day (rule 5 of vigil.decision); one
        interval at a time in time order (score, then learn)."""
        n = len(features)
        out_score = np.zeros(n)
        out_metric = np.full(n, "", dtype=object)
        out_usual = np.zeros(n, dtype=bool)
        if n == 0:
            return pd.DataFrame({"score": out_score, "metric": out_metric, "usual": out_usual})
        metrics = list(self.metrics)
        b = base.copy()
        b["time"] = pd.to_datetime(b["time"], utc=True, cache=False)
        b["host"] = b["host"].astype(str)
        for m in metrics:
            if m not in b.columns:
                b[m] = np.nan
        b = b.drop_duplicates(["host", "time"], keep="last").set_index(["host", "time"])[metrics]
        z_cols = [f"{m}_z" for m in metrics]
        deviating = (
            np.abs(np.nan_to_num(features[z_cols].to_numpy(dtype=float))) >= self.config.band_z
            if all(c in features.columns for c in z_cols)
            else np.ones((n, len(metrics)), dtype=bool)
        )
        keys = pd.MultiIndex.from_arrays(
            [features["host"].astype(str), pd.to_datetime(features["time"], utc=True, cache=False)]
        )
        values = b.reindex(keys).to_numpy(dtype=float)
        values[~np.isfinite(values)] = np.nan
        t_ns = keys.get_level_values(1).astype("int64").to_numpy()
        hosts = keys.get_level_values(0).to_numpy()
        order = np.argsort(t_ns, kind="stable")
        bounds = np.flatnonzero(np.diff(t_ns[order])) + 1
        series = self.series if learn else self.series.subset(list(dict.fromkeys(hosts)))
        names = np.asarray(metrics, dtype=object)
        for rows in np.split(order, bounds):
            idx = series.index(list(hosts[rows]))
            t = t_ns[rows[0]] / NS
            x = values[rows]
            r = series.score(idx, x, t)
            best = np.argmax(r.score, axis=1)
            top = r.score[np.arange(len(rows)), best]
            out_score[rows] = top
            out_metric[rows] = np.where(top > 0, names[best], "")
            # usual for this hour: every metric that is out of line now lies within what its series
            # did at this hour over the past days (and at least one is out of line)
            dev = deviating[rows] & np.isfinite(x)
            out_usual[rows] = dev.any(axis=1) & (r.usual | ~dev).all(axis=1)
            series.learn(idx, x, t)  # on the copy when read-only
        return pd.DataFrame({"score": out_score, "metric": out_metric, "usual": out_usual})

    def _group(self, scored: Scored, band: np.ndarray, learn: bool) -> None:
        """Incidents (vigil.serving.grouping): flags held while out of band, one page each."""
        combined = scored.combined
        t_ns = pd.to_datetime(combined["time"], utc=True, cache=False).astype("int64").to_numpy()
        order = np.argsort(t_ns, kind="stable")
        hosts = combined["host"].astype(str).to_numpy()[order]
        flags = combined["is_anomaly"].to_numpy().astype(bool)[order]
        warm = combined["warmup"].to_numpy().astype(bool)[order]
        usual = (
            scored.series["usual"].to_numpy().astype(bool)[order]
            if scored.series is not None and "usual" in scored.series
            else np.zeros(len(order), dtype=bool)
        )
        flag, alarm, muted = self.grouping.step(
            list(hosts), t_ns[order] / NS, flags, band[order] & ~warm & ~usual, update=learn
        )
        f = np.zeros(len(order), dtype=np.int64)
        a = np.zeros(len(order), dtype=np.int64)
        m = np.zeros(len(order), dtype=bool)
        f[order], a[order], m[order] = flag, alarm, muted
        combined["is_anomaly"] = f
        combined["alarm"] = a
        scored.muted = m

    # --- state -------------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """Plain parts for a checkpoint (the feature arrays are not copied; see FeatureBuilder.state)."""
        return {
            "features": self.pipeline.state(),
            "online": self.online.to_bytes(),
            "host_calibration": self.calibration.state(),
            "series": self.series.state(),
            "grouping": self.grouping.state(),
        }

    @classmethod
    def from_state(cls, config: ServingConfig, state: dict[str, Any]) -> ServingPath:
        """Inverse of :meth:`state`; parts missing from older checkpoints start fresh."""
        pipeline = FeaturePipeline.from_state(state["features"])
        calibration = state.get("host_calibration")
        series = state.get("series")
        grouping = state.get("grouping")
        return cls(
            config,
            metrics=pipeline.metrics,
            pipeline=pipeline,
            online=OnlineDetector.from_bytes(state["online"]),
            calibration=HostCalibration.from_state(calibration) if calibration else None,
            series=SeriesEvidence.from_state(series) if series else None,
            grouping=AlarmGrouping.from_state(grouping) if grouping else None,
        )
