"""A simple, self-contained batch detector for NAB: IsolationForest fit only on the
probationary period's features (the rows NAB lets a detector learn from), scoring the rest.

Its output has the prediction columns of ``vigil.schema.PREDICTIONS`` (score, threshold,
is_anomaly) so it can go through ``vigil.decision`` like the champion model does.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.ensemble import IsolationForest

BATCH_QUANTILE = 0.995  # threshold: this quantile of the training (probationary) scores


def detect_batch(features: pd.DataFrame, probation: int, seed: int = 42) -> pd.DataFrame:
    """score (higher = more anomalous), threshold, is_anomaly, warmup (the fitted-on rows)."""
    if probation < 10:
        raise ValueError(f"probationary period too short to fit on ({probation} rows)")
    x = features.fillna(0.0).to_numpy(dtype=float)
    model = IsolationForest(n_estimators=100, random_state=seed).fit(x[:probation])
    score = -model.score_samples(x)  # in (0, 1]; ~0.5 normal, -> 1 anomalous
    threshold = float(np.quantile(score[:probation], BATCH_QUANTILE))
    warm = np.arange(len(x)) < probation
    return pd.DataFrame(
        {
            "score": score,
            "threshold": threshold,
            "is_anomaly": ((score > threshold) & ~warm).astype(int),
            "warmup": warm.astype(int),
        },
        index=features.index,
    )
