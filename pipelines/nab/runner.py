"""Stream one NAB series through the detector's own serving path and collect per-row results.

No profile of its own: the series is one host with one metric (``value``), fed to
:class:`vigil.serving.ServingPath` with the same :class:`ServingConfig` the detector builds from
its settings, in online-only mode (no champion: what the detector serves before the first
promotion). Rows go in file order, score-then-learn, one pass; labels are never read here.

``anomaly_score`` (NAB's [0, 1] column) is the combined severity ``c`` squashed as ``c / (1 + c)``:
0.5 is exactly the detector's own decision boundary, and NAB's threshold sweep still sees the
ordering around it. Rows the alarm grouping mutes (within ``alarm_group_s`` after a page: the
same incident) score 0, so NAB counts pages, as an operator would; so do rows above the boundary
that the decision itself refuses (a host in warm-up, or what is usual for this hour: rules 3-5 of
:mod:`vigil.decision`), so NAB's threshold sweep cannot count a detection the detector would not
raise.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from vigil.decision import COMBINED_THRESHOLD
from vigil.serving.path import ServingConfig, ServingPath

HOST = "nab"
METRIC = "value"


def series_clock(timestamps: Sequence[str] | pd.Series) -> pd.DatetimeIndex:
    """The series' own timestamps made strictly increasing (NAB repeats stamps at a DST change
    and once goes back in time; the serving path keys rows by time): a stamp at or before its
    predecessor becomes the predecessor + 1 s. File order is kept."""
    t = pd.to_datetime(pd.Series(list(timestamps)), utc=True).astype("int64").to_numpy()
    out = t.copy()
    for i in range(1, len(out)):
        if out[i] <= out[i - 1]:
            out[i] = out[i - 1] + 1_000_000_000
    return pd.DatetimeIndex(pd.to_datetime(out, utc=True))


def interval_of(clock: pd.DatetimeIndex, probe: int = 20) -> float:
    """The series' sampling interval in seconds, from its first rows only (no look-ahead)."""
    t = clock.asi8[: probe + 1]
    if len(t) < 2:
        return 300.0
    return float(np.median(np.diff(t)) / 1e9)


def detect(
    timestamps: Sequence[str] | pd.Series, values: Sequence[float], config: ServingConfig
) -> pd.DataFrame:
    """Per-row anomaly_score in [0, 1], is_anomaly (the flag), alarm (a page) and the combined
    score, in file order."""
    clock = series_clock(timestamps)
    cfg = ServingConfig(**{**config.__dict__, "interval_s": interval_of(clock)})
    base = pd.DataFrame({"host": HOST, "time": clock, METRIC: np.asarray(values, dtype=float)})
    served = ServingPath(cfg, metrics=(METRIC,)).update_base(base)
    n = len(base)
    if served.scored is None:
        zeros = np.zeros(n)
        return pd.DataFrame(
            {
                "anomaly_score": zeros,
                "is_anomaly": zeros.astype(int),
                "alarm": zeros.astype(int),
                "score": zeros,
            }
        )
    combined = served.scored.combined.sort_values("time", kind="stable").reset_index(drop=True)
    muted = served.scored.muted[np.argsort(served.scored.combined["time"].to_numpy(), kind="stable")]
    if len(combined) != n:
        raise ValueError(f"the serving path returned {len(combined)} rows for {n}")
    sev = combined["score"].to_numpy(dtype=float)
    flagged = combined["is_anomaly"].to_numpy(dtype=bool)
    refused = muted | ((sev > COMBINED_THRESHOLD) & ~flagged)
    return pd.DataFrame(
        {
            "anomaly_score": np.where(refused, 0.0, sev / (1.0 + sev)),
            "is_anomaly": combined["is_anomaly"].to_numpy(dtype=int),
            "alarm": combined["alarm"].to_numpy(dtype=int),
            "score": sev,
        }
    )
