"""Score one batch of feature rows with both models and combine them (``vigil.decision``).

Kept apart from the loop so tests and the benchmark can call exactly what the service runs.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from vigil.decision import combine_frames
from vigil.features import FEATURE_COLUMNS
from vigil.model import LoadedModel
from vigil.online import OnlineConfig, OnlineDetector
from vigil.online.batch import TOP_K
from vigil.serving.calibration import HostCalibration

log = logging.getLogger(__name__)

#: The online model's inputs: each base metric's deviation from the host's baseline. One
#: fleet-wide HalfSpaceTrees over all 27 columns costs ~3x more per sample (see docs/detector.md).
ONLINE_FEATURES: tuple[str, ...] = tuple(c for c in FEATURE_COLUMNS if c.endswith("_z"))
ONLINE_MODEL_NAME, ONLINE_MODEL_VERSION = "river-hst", "1"


def online_config() -> OnlineConfig:
    """The fleet model's settings: ``OnlineConfig``'s defaults — rank calibration (per point, so
    hosts interleaved in one stream do not mix) with the "extreme" member, the largest host-
    relative |z| ranked against recent history. Why the extreme member matters here: HalfSpaceTrees
    sees every input beyond ``scale_clip`` at the same edge of [0, 1], so a CPU at 100 % on a host
    idle at 2 % (``cpu_busy_z`` ~ 50) looked no stranger to it than a mild rise; ranked by |z| it is
    a record, and the online model can confirm the champion's flag (the raw HST score with a
    quantile threshold, used before, never flagged a single stress scenario on a live host)."""
    return OnlineConfig()


@dataclass
class Scored:
    """Per-source prediction frames (host, time + PREDICTIONS fields), same row order.

    ``online`` is the fleet model; ``combined`` the decision (with ``alarm``: the row pages);
    ``muted``: rows within a page's grouping window (vigil.serving.grouping); ``series``: each
    row's strongest per-series evidence (score, metric) when it was computed.
    """

    online: pd.DataFrame
    batch: pd.DataFrame | None
    combined: pd.DataFrame
    muted: np.ndarray | None = None
    series: pd.DataFrame | None = None


def host_warmup(features: pd.DataFrame, seen: Callable[[str], int], warmup_intervals: int) -> np.ndarray:
    """True for rows of hosts with at most ``warmup_intervals`` intervals of history at that row.

    ``seen(host)`` is the count *after* the batch, so a row's count is that minus the host's
    later rows in the batch. The baseline's own warm-up flag (``features.warmup``) also counts.
    """
    if features.empty:
        return np.zeros(0, dtype=bool)
    hosts = features["host"].astype(str)
    after = hosts.map(seen).to_numpy()
    grp = features.groupby(hosts.to_numpy(), sort=False)["time"]
    later = (grp.transform("size") - grp.cumcount() - 1).to_numpy()
    at_row = after - later
    flag = at_row <= warmup_intervals
    if "warmup" in features.columns:
        flag |= features["warmup"].to_numpy().astype(bool)
    return flag


def learn_mask(features: pd.DataFrame, learn_max: int) -> np.ndarray:
    """A deterministic subsample of at most ~``learn_max`` rows (by a stable hash of host and time).

    Deterministic so that re-scoring an interval after a restart gives the same model state,
    hence the same scores (idempotent writes depend on it).
    """
    n = len(features)
    if n <= learn_max:
        return np.ones(n, dtype=bool)
    keep = learn_max / n
    times = pd.to_datetime(features["time"], utc=True, cache=False).astype("int64").to_numpy()
    hosts = features["host"].astype(str).to_numpy()
    h = np.fromiter(
        (zlib.crc32(f"{host}|{t}".encode()) for host, t in zip(hosts, times, strict=True)),
        dtype=np.uint64,
        count=n,
    )
    return (h % 1_000_000) < keep * 1_000_000


def time_order(features: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Each row's time (ns) and the stable order that sorts rows by time."""
    # cache=False here and wherever a datetime column is converted: with pandas' default cache,
    # to_datetime walks an already-datetime column element by element (~9 ms per 30,000 rows)
    times = pd.to_datetime(features["time"], utc=True, cache=False).astype("int64").to_numpy()
    return times, np.argsort(times, kind="stable")


def score_online(
    online: OnlineDetector,
    features: pd.DataFrame,
    warm: np.ndarray,
    learn_max: int,
    learn: bool = True,
    order: tuple[np.ndarray, np.ndarray] | None = None,
) -> pd.DataFrame:
    """Score every row, one interval (time) at a time in time order: all rows of an interval
    against the model as it was before that interval, then learn the interval's rows that are
    not in warm-up (``vigil.online.batch``; ``OnlineDetector.learn`` itself refuses rows it flagged).

    ``learn=False`` scores only: the scoring API must never teach the model. ``order``:
    :func:`time_order` of ``features`` if the caller has it already.
    """
    cols = ["score", "threshold", "is_anomaly", "warmup"] + [
        f"top{k}_{p}" for k in (1, 2, 3) for p in ("feature", "contribution")
    ]
    if features.empty:
        return pd.DataFrame(columns=cols)
    n = len(features)
    times, order = order if order is not None else time_order(features)
    bounds = np.flatnonzero(np.diff(times[order])) + 1
    x = features[list(online.feature_names)].to_numpy(dtype=float)
    learnable = learn_mask(features, learn_max) & ~warm if learn else np.zeros(n, dtype=bool)
    score, threshold = np.zeros(n), np.zeros(n)
    flagged, young = np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
    top_names = np.full((n, TOP_K), "", dtype=object)
    top_share = np.zeros((n, TOP_K))
    for idx in np.split(order, bounds):
        xs = x[idx]
        r = online.score_many(xs)
        score[idx], threshold[idx] = r.score, r.threshold
        flagged[idx], young[idx] = r.is_anomaly, r.warmup
        top_names[idx], top_share[idx] = r.top_features, r.top_contributions
        if learnable[idx].any():
            online.learn_many(xs, r, learnable[idx])
    out = pd.DataFrame(
        {
            "score": score,
            "threshold": threshold,
            "is_anomaly": (flagged & ~warm).astype(np.int64),
            "warmup": (warm | young).astype(np.int64),
        },
        index=features.index,
    )
    for k in range(TOP_K):
        out[f"top{k + 1}_feature"] = top_names[:, k]
        out[f"top{k + 1}_contribution"] = top_share[:, k]
    return out[cols]


def score_batch(model: LoadedModel, features: pd.DataFrame, warm: np.ndarray) -> pd.DataFrame:
    """The champion's predictions (contract of ``vigil.model``); warm-up rows cannot alarm."""
    pred = model.predict(features[list(FEATURE_COLUMNS)])
    pred = pd.DataFrame(pred).reset_index(drop=True)
    pred.index = features.index
    pred["is_anomaly"] = (pred["is_anomaly"].astype(int).to_numpy() & ~warm).astype(np.int64)
    pred["warmup"] = warm.astype(np.int64)
    return pred


def score_features(
    features: pd.DataFrame,
    online: OnlineDetector,
    champion: LoadedModel | None,
    warm: np.ndarray,
    learn_max: int,
    on_error: Callable[[str, int], None] | None = None,
    learn: bool = True,
    calibration: HostCalibration | None = None,
    series: pd.DataFrame | None = None,
    now: np.ndarray | None = None,
    fleet_confirms: bool = True,
) -> Scored:
    """Both models and the combined decision for every feature row (``learn=False``: the online
    model only scores and ``calibration`` is only read, as the scoring API needs).

    ``fleet_confirms=False`` leaves the fleet model out of the decision (it is still scored and
    written as ``source=online``). ``calibration`` raises the champion's threshold for a host to that host's typical champion
    score (``vigil.serving.calibration``) and learns from every row (flagged ones capped).
    """
    keys = features[["host", "time"]].reset_index(drop=True)
    features = features.reset_index(drop=True)
    by_time = time_order(features)
    on = score_online(online, features, warm, learn_max, learn=learn, order=by_time)
    batch = None
    if champion is not None and not features.empty:
        try:
            batch = score_batch(champion, features, warm)
        except Exception as exc:  # noqa: BLE001 - a model that fails on some input must not stop the loop
            if on_error:
                on_error("champion_predict_failed", 1)
            log.error("champion version %s failed to score %d rows: %s", champion.version, len(features), exc)
            batch = None
    hosts = features["host"].astype(str).tolist()
    if batch is not None and calibration is not None:
        effective = calibration.thresholds(hosts, batch["threshold"].to_numpy(dtype=float))
        batch["threshold"] = effective
        above = batch["score"].to_numpy(dtype=float) > effective
        batch["is_anomaly"] = (batch["is_anomaly"].to_numpy().astype(bool) & above).astype(np.int64)
    # while the online model itself is young its score says nothing: it counts as 0 in the rule
    online_young = on["warmup"].to_numpy().astype(bool) & ~warm
    on_for_rule = on.copy()
    on_for_rule.loc[online_young, "score"] = 0.0
    combined = combine_frames(on_for_rule, batch, warm, series=series, now=now, fleet_confirms=fleet_confirms)
    if batch is not None and calibration is not None and learn:
        order = by_time[1]
        calibration.update(
            [hosts[i] for i in order],
            batch["score"].to_numpy(dtype=float)[order],
            combined["is_anomaly"].to_numpy().astype(bool)[order],
            batch["threshold"].to_numpy(dtype=float)[order],
        )
    with_keys = lambda f: pd.concat([keys, f.reset_index(drop=True)], axis=1)  # noqa: E731
    return Scored(
        online=with_keys(on),
        batch=with_keys(batch) if batch is not None else None,
        combined=with_keys(combined),
        series=series,
    )
