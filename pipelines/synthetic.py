"""Synthetic labelled feature datasets (the extract schema) for tests and benchmarks.

Normal rows are correlated Gaussian z-scores (what per-host baselines produce on a healthy
fleet); anomalies are windows where a few features of one host move by several sigmas. It
needs no InfluxDB, so the grid-search tests and the benchmark can use any size quickly.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipelines.common import DATASET_COLUMNS
from vigil.features import FEATURE_COLUMNS


def synthetic_dataset(
    rows: int,
    hosts: int = 8,
    seed: int = 0,
    anomaly_rate: float = 0.03,
    window: int = 30,
    shift: float = 6.0,
    interval_s: int = 10,
    start: str = "2026-01-01",
) -> pd.DataFrame:
    """About ``rows`` rows (rounded to whole intervals of ``hosts`` hosts) in DATASET_COLUMNS."""
    rng = np.random.default_rng(seed)
    n_t = max(rows // hosts, window * 4)
    f = len(FEATURE_COLUMNS)
    mix = rng.normal(size=(f, f)) * 0.3 + np.eye(f)
    frames = []
    times = pd.date_range(start, periods=n_t, freq=f"{interval_s}s", tz="UTC")
    for h in range(hosts):
        x = rng.normal(size=(n_t, f)) @ mix.T * 0.5
        label = np.zeros(n_t, dtype=np.int64)
        label_id = np.full(n_t, "", dtype=object)
        kind = np.full(n_t, "", dtype=object)
        n_windows = max(1, int(anomaly_rate * n_t / window))
        starts = np.sort(rng.choice(np.arange(window, n_t - window), size=n_windows, replace=False))
        for k, s in enumerate(starts):
            if label[s : s + window].any():
                continue
            cols = rng.choice(f, size=3, replace=False)
            x[s : s + window, cols] += shift * rng.choice([-1.0, 1.0], size=3)
            label[s : s + window] = 1
            label_id[s : s + window] = f"syn-{h}-{k}"
            kind[s : s + window] = "shift"
        frame = pd.DataFrame(x, columns=list(FEATURE_COLUMNS))
        frame.insert(0, "time", times)
        frame.insert(0, "host", f"host-{h:02d}")
        frame["warmup"] = np.zeros(n_t, dtype=np.int64)
        frame.loc[:4, "warmup"] = 1
        frame["label"], frame["label_id"], frame["label_kind"] = label, label_id, kind
        frames.append(frame)
    out = pd.concat(frames, ignore_index=True)[list(DATASET_COLUMNS)]
    out["time"] = out["time"].astype("datetime64[ns, UTC]")
    return out
