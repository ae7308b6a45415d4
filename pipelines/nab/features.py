"""Features of a univariate NAB series, built by Vigil's own feature code (``vigil.features``).

Each time scale is one ``vigil.features.FeatureBuilder`` over the metric ``value`` with its
own ``BaselineConfig`` (baseline half-life, short window); the columns are prefixed with
the scale's name. NAB timestamps repeat (DST) and can go backwards, while the builder
keys on (host, time); the series is therefore fed on a synthetic, strictly increasing
clock (one tick per row), which keeps NAB's file order and changes nothing else.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from vigil.features import BaselineConfig, FeatureBuilder

METRIC = "value"


@dataclass(frozen=True)
class Scale:
    """One time scale: a name (column prefix) and the baseline it uses."""

    name: str
    halflife: float  # rows
    window: int  # rows in the short window


#: Default scales for 5-minute NAB rows: a fast baseline (1 h half-life, 15-min window),
#: a mid one (12 h, 1 h) and a slow one (1 week, 4 h): spikes, daily-scale and level changes.
DEFAULT_SCALES: tuple[Scale, ...] = (
    Scale("fast", halflife=12.0, window=3),
    Scale("mid", halflife=144.0, window=12),
    Scale("slow", halflife=2016.0, window=48),
)


def feature_columns(scales: Sequence[Scale] = DEFAULT_SCALES) -> list[str]:
    return [f"{s.name}_{c}" for s in scales for c in FeatureBuilder((METRIC,)).columns]


def build_features(values: Sequence[float], scales: Sequence[Scale] = DEFAULT_SCALES) -> pd.DataFrame:
    """Feature frame, one row per value in order; row i depends only on values[: i + 1]."""
    n = len(values)
    clock = pd.Timestamp("2000-01-01", tz="UTC") + pd.to_timedelta(np.arange(n) * 300, unit="s")
    frame = pd.DataFrame({"host": "nab", "time": clock, METRIC: np.asarray(values, dtype=float)})
    parts = []
    for scale in scales:
        builder = FeatureBuilder(
            (METRIC,), BaselineConfig(halflife=scale.halflife, window=scale.window, warmup=scale.window)
        )
        out = builder.transform(frame)
        out = out[list(builder.columns)].reset_index(drop=True)
        out.columns = [f"{scale.name}_{c}" for c in out.columns]
        parts.append(out)
    return pd.concat(parts, axis=1)
