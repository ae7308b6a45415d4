"""The whole feature path with its state: raw frames in, feature rows out.

Training calls :meth:`FeaturePipeline.from_influx` once over its window; the
detector keeps one instance alive and calls :meth:`FeaturePipeline.update` every
poll. Same object, same recursion, same features.
"""

from __future__ import annotations

import pickle
from collections.abc import Sequence
from datetime import datetime

import pandas as pd

from vigil.features.baseline import BaselineConfig, FeatureBuilder
from vigil.features.definitions import BASE_METRIC_NAMES
from vigil.features.source import CounterState, RawFrames, base_metrics, fetch_raw
from vigil.influx import InfluxClient


class FeaturePipeline:
    """Counter state + per-host baselines.

    ``metrics``: the base metrics the baselines are kept for; Telegraf's by default (what
    :meth:`update` derives from raw frames). Other series (a NAB file's ``value``) come in as
    base metrics through :meth:`update_base`.
    """

    def __init__(
        self,
        config: BaselineConfig | None = None,
        interval_s: float = 10.0,
        metrics: Sequence[str] = BASE_METRIC_NAMES,
    ) -> None:
        self.counters = CounterState()
        self.builder = FeatureBuilder(metrics, config, interval_s=interval_s)

    @property
    def metrics(self) -> tuple[str, ...]:
        return self.builder.metrics

    @property
    def columns(self) -> tuple[str, ...]:
        return self.builder.columns

    def update(self, raw: RawFrames) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Absorb raw frames (complete intervals only); return (base metrics, features)."""
        base = base_metrics(raw, self.counters)
        return base, self.builder.transform(base)

    def update_base(self, base: pd.DataFrame) -> pd.DataFrame:
        """Absorb base-metric rows (host, time, metrics...) directly; return their features."""
        return self.builder.transform(base)

    def update_from_influx(
        self,
        client: InfluxClient,
        db: str,
        start: datetime | pd.Timestamp,
        end: datetime | pd.Timestamp,
        interval_s: int,
    ) -> tuple[pd.DataFrame, pd.DataFrame]:
        return self.update(fetch_raw(client, db, start, end, interval_s))

    def state(self) -> tuple:
        """(counter state, baseline state): what a checkpoint keeps, not serialised yet (see
        :meth:`FeatureBuilder.state`)."""
        return (self.counters, self.builder.state())

    def to_bytes(self) -> bytes:
        return pickle.dumps(self.state(), protocol=5)

    @classmethod
    def from_bytes(cls, data: bytes) -> FeaturePipeline:
        return cls.from_state(pickle.loads(data))  # noqa: S301 - our own checkpoint

    @classmethod
    def from_state(cls, saved: tuple) -> FeaturePipeline:
        """Inverse of :meth:`state`; also takes the nested bytes that :meth:`to_bytes` wrote
        before :meth:`state` existed (checkpoint format 1)."""
        counters, builder = saved
        pipe = cls()
        pipe.counters = counters
        pipe.builder = (
            FeatureBuilder.from_bytes(builder)
            if isinstance(builder, bytes)
            else FeatureBuilder.from_state(builder)
        )
        return pipe
