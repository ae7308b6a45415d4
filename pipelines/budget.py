"""Thresholds from an alarm budget, and recall of events at those thresholds (no labels needed).

What pages people is bounded first: ``VIGIL_TRAINING__ALARM_BUDGET_PER_HOST_DAY`` (default 1) alarms per
host and day on rows nobody has reason to call anomalous. A threshold is then the score that
leaves at most that many of those rows above it, and a model is as good as the share of known
anomalies (injected ones, and real labels where there are any) it catches *at that threshold*.

* :func:`budget_threshold` — over ``days`` of untouched rows, ``k = floor(budget x days)`` rows may
  be above: the threshold is the (k+1)-th highest score (anomaly when ``score > threshold``), and
  never below the highest score of an operator's false positive (those rows *must* stay below).
  Counting rows, not alarm runs, is the conservative reading: a run of several rows is one alarm.
* :func:`host_thresholds` — the same per host, on that host's rows (what model selection uses:
  each host is judged against its own normal, as the budget is per host).
* :func:`event_recall` — the share of events with at least one row above its host's threshold.

>>> s = np.array([0.1, 0.2, 0.9, 0.3, 0.8, 0.4])
>>> budget_threshold(s, days=2.0, budget=1.0)   # two rows may be above: the third highest
0.4
>>> budget_threshold(s, days=2.0, budget=1.0, must_exceed=np.array([0.85]))   # a false positive at 0.85
0.8500000000000001
"""

from __future__ import annotations

import numpy as np

DAY_S = 86_400.0


def budget_threshold(
    scores: np.ndarray, *, days: float, budget: float, must_exceed: np.ndarray | None = None
) -> float:
    """The lowest threshold leaving at most ``floor(budget * days)`` of ``scores`` above it, raised
    just above every score in ``must_exceed``; ``-inf`` when there is nothing to judge."""
    values = np.asarray(scores, dtype=float)
    values = values[np.isfinite(values)]
    k = int(np.floor(max(budget, 0.0) * max(days, 0.0) + 1e-9))
    if len(values) == 0:
        threshold = -np.inf
    elif k >= len(values):
        threshold = float(values.min()) - 1e-12 if k > 0 else float(values.max())
    else:
        threshold = float(np.partition(values, len(values) - 1 - k)[len(values) - 1 - k])
    if must_exceed is not None:
        fp = np.asarray(must_exceed, dtype=float)
        fp = fp[np.isfinite(fp)]
        if len(fp):
            threshold = max(threshold, float(np.nextafter(fp.max(), np.inf)))
    return threshold


def host_thresholds(
    hosts: np.ndarray,
    scores: np.ndarray,
    untouched: np.ndarray,
    normal: np.ndarray,
    *,
    interval_s: float,
    budget: float,
) -> dict[object, float]:
    """Per host: :func:`budget_threshold` over its ``untouched`` rows, above its ``normal``
    (operator false-positive) rows. ``hosts`` is any per-row key (names or integer codes)."""
    out: dict[object, float] = {}
    for host in np.unique(hosts):
        mine = hosts == host
        rows = mine & untouched
        days = rows.sum() * interval_s / DAY_S
        out[host] = budget_threshold(
            scores[rows], days=days, budget=budget, must_exceed=scores[mine & normal]
        )
    return out


def event_recall(
    event_of_row: np.ndarray, hosts: np.ndarray, scores: np.ndarray, thresholds: dict[object, float] | float
) -> tuple[float, float, int]:
    """(event recall, row recall, events): ``event_of_row`` is each row's event index (-1: none)."""
    inside = event_of_row >= 0
    n_events = len(np.unique(event_of_row[inside]))
    if n_events == 0:
        return float("nan"), float("nan"), 0
    if isinstance(thresholds, dict):
        thr = np.array([thresholds.get(h, np.inf) for h in hosts[inside]], dtype=float)
    else:
        thr = np.full(int(inside.sum()), float(thresholds))
    hit = scores[inside] > thr
    caught = len(np.unique(event_of_row[inside][hit]))
    return caught / n_events, float(hit.mean()), n_events
