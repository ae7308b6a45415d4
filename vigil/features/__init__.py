"""Vigil's one feature definition, used by training, the detector, the API and the NAB runner.

``raw InfluxDB points --source--> base metrics --baseline--> host-relative features``
"""

from vigil.features.baseline import BaselineConfig, FeatureBuilder
from vigil.features.definitions import (
    BASE_METRIC_NAMES,
    BASE_METRICS,
    FEATURE_COLUMNS,
    FEATURE_KINDS,
    KEY_COLUMNS,
    feature_names,
    metric_of,
)
from vigil.features.pipeline import FeaturePipeline
from vigil.features.source import CounterState, base_metrics, fetch_raw, per_interval, raw_queries

__all__ = [
    "BASE_METRICS",
    "BASE_METRIC_NAMES",
    "BaselineConfig",
    "CounterState",
    "FEATURE_COLUMNS",
    "FEATURE_KINDS",
    "FeatureBuilder",
    "FeaturePipeline",
    "KEY_COLUMNS",
    "base_metrics",
    "feature_names",
    "metric_of",
    "fetch_raw",
    "per_interval",
    "raw_queries",
]
