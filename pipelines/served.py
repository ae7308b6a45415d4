"""Judge a model by the decision the detector would serve with it, not by the bare model.

What pages people is the combined decision: features (per-host baselines), the online model,
the champion with its per-host calibration and the combined rule of :mod:`vigil.decision`. That
path lives in the core as :class:`vigil.serving.ServingPath`, and this module runs **it** — never
a copy of its logic — over a window of raw history:

1. a fresh path absorbs the raw history before the window (baselines and counters warm, the
   online model taught its most recent rows: what the detector does for a host it meets);
2. the window is fed to ``ServingPath.update`` in time order, ``settings.training.served_eval_step_s``
   (300 s) at a time — a detector catching up (it reads up to ``detector_max_catchup_intervals``,
   10 min at 10 s, per iteration) — with the model under test as champion. Why not one interval
   at a time as a detector in step does: each update has a fixed cost (~0.1-0.2 s here), so 6 h
   of 10 s intervals took 79 s at 60 s steps and 27 s at 300 s steps, and the decisions differed
   on 6 of 21,520 host-intervals (the host calibration learns once per update);
3. only ``scored.combined`` is judged: host, time, is_anomaly and warmup of the decision.

The window's raw metrics carry anomalies injected into a copy of them (:mod:`pipelines.inject`,
kept clear of labelled windows), and whatever label windows exist (any source: here they only
score). Figures (:func:`served_metrics`):

* ``injected_event_recall`` / ``real_event_recall`` / ``event_recall`` (both pooled): share of
  events with at least one combined alarm in ``[start, end + CATCH_GRACE_S)``;
* ``median_ttd_s`` (and per kind of event): end of the first alarmed interval minus the event's
  start (data time: the earliest the alarm can exist), over caught events;
* ``false_alarms_per_host_day``: runs of consecutive alarmed intervals of a host that touch no
  event window (nor its grace), per host-day of such untouched time — or, when the path says which
  rows page (an ``alarm`` column: incidents grouped, one page each), the pages outside event
  windows; alarms inside an operator's false-positive window count as false, and are also counted
  apart (``fp_window_alarms``).

The promotion gate (:func:`served_gate`) compares a challenger and the champion on those
figures, both replayed over the same window, data and injected events.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from pipelines.common import slice_raw
from pipelines.inject import CATCH_GRACE_S, InjectedEvent, inject
from vigil.features.source import RawFrames, base_metrics
from vigil.model import LoadedModel
from vigil.serving.path import ServingConfig, ServingPath
from vigil.settings import Settings

log = logging.getLogger(__name__)

DAY_S = 86_400.0
#: A challenger may detect this much slower (median) than the champion, plus one interval, and pass
#: (the default of ``settings.training.promotion_ttd_slack``).
TTD_SLACK = 1.5
#: Columns of the combined frame the judgement reads (the public surface of ``Scored.combined``).
JUDGED = ["host", "time", "score", "threshold", "is_anomaly", "warmup"]
#: Read when the path provides it: ``alarm`` = the row pages (a decision path that groups flagged
#: rows into incidents pages once per incident; then a false alarm is a page, not a run of flags).
OPTIONAL = ["alarm"]


@dataclass
class Replay:
    """The combined decision over the window (``JUDGED`` columns) and, if asked, the features."""

    combined: pd.DataFrame
    features: pd.DataFrame | None
    seconds: float


def _chunks(raw: RawFrames, start: pd.Timestamp, step_s: float) -> list[RawFrames]:
    """``raw`` cut into consecutive ``step_s`` slices from ``start`` (time order)."""
    step = pd.Timedelta(seconds=step_s)
    keyed = {}
    keys: set[int] = set()
    for name, frame in raw.items():
        if frame.empty:
            keyed[name] = {}
            continue
        k = ((pd.to_datetime(frame["time"], utc=True) - start) // step).to_numpy()
        keyed[name] = {int(key): part for key, part in frame.groupby(k, sort=True)}
        keys |= set(keyed[name])
    empty = {name: frame.iloc[0:0] for name, frame in raw.items()}
    return [{name: keyed[name].get(key, empty[name]) for name in raw} for key in sorted(keys)]


def replay(
    settings: Settings,
    raw: RawFrames,
    start: Any,
    end: Any,
    champion: LoadedModel | None,
    *,
    warm_from: Any = None,
    keep_features: bool = False,
) -> Replay:
    """Run :class:`vigil.serving.ServingPath` over ``raw`` (see the module doc): warm on
    ``[warm_from, start)``, score ``[start, end)`` with ``champion``."""
    began = time.perf_counter()
    start, end = pd.Timestamp(start), pd.Timestamp(end)
    path = ServingPath(ServingConfig.from_settings(settings))
    history = slice_raw(raw, warm_from, start)
    if any(not f.empty for f in history.values()):
        path.teach_online(path.absorb(history))
    combined, features = [], []
    chunks = _chunks(slice_raw(raw, start, end), start, settings.training.served_eval_step_s)
    every = max(1, len(chunks) // 10)
    for i, chunk in enumerate(chunks):
        if i % every == 0 and len(chunks) > 20:  # long replays show progress
            log.info("replay: %d/%d updates of %g s (%.0f s so far)", i, len(chunks), settings.training.served_eval_step_s,
                     time.perf_counter() - began)  # fmt: skip
        served = path.update(chunk, champion)
        if served.scored is None:
            continue
        frame = served.scored.combined
        combined.append(frame[[*JUDGED, *(c for c in OPTIONAL if c in frame.columns)]])
        if keep_features:
            features.append(served.features)
    out = (
        pd.concat(combined, ignore_index=True)
        if combined
        else pd.DataFrame({c: pd.Series(dtype=float) for c in JUDGED})
    )
    feats = pd.concat(features, ignore_index=True) if features else None
    return Replay(out, feats, time.perf_counter() - began)


# ------------------------------------------------------------------------------------------------
# Windows: injected events, real labels


def label_windows(frame: pd.DataFrame, interval_s: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(anomaly windows, false-positive windows) of a dataset frame's label columns: one row per
    label id with host, kind, source, start, end (end = last labelled interval's end)."""
    cols = ["event_id", "host", "kind", "source", "start", "end"]
    if "label_id" not in frame or frame.empty:
        empty = pd.DataFrame(columns=cols)
        return empty, empty.copy()
    rows = frame[frame["label_id"].astype(str) != ""]
    if rows.empty:
        empty = pd.DataFrame(columns=cols)
        return empty, empty.copy()
    agg = (
        rows.groupby("label_id", sort=True)
        .agg(
            host=("host", "first"),
            kind=("label_kind", "first"),
            source=("label_source", "first") if "label_source" in rows else ("label_kind", "first"),
            label=("label", "max"),
            start=("time", "min"),
            end=("time", "max"),
        )
        .reset_index()
        .rename(columns={"label_id": "event_id"})
    )
    agg["end"] = agg["end"] + pd.Timedelta(seconds=interval_s)
    anomalies = agg[agg["label"] == 1][cols].reset_index(drop=True)
    normal = agg[agg["label"] == 0][cols].reset_index(drop=True)
    return anomalies, normal


def concat_windows(*frames: pd.DataFrame) -> pd.DataFrame:
    """Window frames one after the other (empty ones left out, so dtypes stay those of the rest)."""
    kept = [f for f in frames if len(f)]
    return pd.concat(kept, ignore_index=True) if kept else frames[0].iloc[0:0].copy()


def events_frame(events: list[InjectedEvent]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "event_id": e.event_id,
                "host": e.host,
                "kind": e.kind,
                "source": "injected",
                "start": e.start,
                "end": e.end,
            }
            for e in events
        ],
        columns=["event_id", "host", "kind", "source", "start", "end"],
    )


def inject_window(
    settings: Settings,
    raw: RawFrames,
    start: Any,
    end: Any,
    *,
    warm_from: Any = None,
    avoid: pd.DataFrame | None = None,
) -> tuple[RawFrames, list[InjectedEvent]]:
    """``raw`` with anomalies injected into ``[start, end)`` (sized by the history before ``start``),
    seeded with ``settings.random_seed + 1`` (other events than the search's validation ones)."""
    before = base_metrics(slice_raw(raw, warm_from, start))
    window = slice_raw(raw, start, end)
    injection = inject(
        window,
        (pd.Timestamp(start), pd.Timestamp(end)),
        before,
        interval_s=settings.features.interval_s,
        seed=settings.random_seed + 1,
        avoid=avoid,
        prefix="hold",
    )
    history = slice_raw(raw, None, start)
    # rows after the window are left out: the injected counters' offsets stop at its end
    merged = {name: pd.concat([history[name], injection.raw[name]], ignore_index=True) for name in raw}
    return merged, injection.events


# ------------------------------------------------------------------------------------------------
# Figures


def _hits(combined: pd.DataFrame, windows: pd.DataFrame, grace_s: float) -> np.ndarray:
    """Per combined row: inside any window's ``[start, end + grace)`` of its host."""
    inside = np.zeros(len(combined), dtype=bool)
    if windows.empty or combined.empty:
        return inside
    hosts = combined["host"].astype(str).to_numpy()
    times = pd.to_datetime(combined["time"], utc=True).astype("int64").to_numpy()
    grace = int(grace_s * 1e9)
    for host, rows in windows.groupby("host"):
        mine = hosts == str(host)
        if not mine.any():
            continue
        t = times[mine]
        hit = np.zeros(len(t), dtype=bool)
        for a, b in zip(rows["start"], rows["end"], strict=True):
            hit |= (t >= pd.Timestamp(a).value) & (t < pd.Timestamp(b).value + grace)
        inside[np.flatnonzero(mine)[hit]] = True
    return inside


def _detections(
    combined: pd.DataFrame, windows: pd.DataFrame, grace_s: float, interval_s: float
) -> tuple[int, list[float]]:
    """(events caught, time to detect of each caught one in seconds: from the event's start to the
    end of its first alarmed interval, the earliest moment that interval can be judged)."""
    if windows.empty:
        return 0, []
    alarms = combined[combined["is_anomaly"].astype(int) == 1]
    by_host = {str(h): pd.to_datetime(g["time"], utc=True) for h, g in alarms.groupby("host")}
    caught, ttd = 0, []
    for row in windows.itertuples(index=False):
        t = by_host.get(str(row.host))
        if t is None:
            continue
        start = pd.Timestamp(row.start)
        hit = t[(t >= start) & (t < pd.Timestamp(row.end) + pd.Timedelta(seconds=grace_s))]
        if len(hit):
            caught += 1
            ttd.append((hit.min() - start).total_seconds() + interval_s)
    return caught, ttd


def served_metrics(
    combined: pd.DataFrame,
    injected: pd.DataFrame,
    real: pd.DataFrame,
    normal: pd.DataFrame,
    interval_s: float,
    grace_s: float = CATCH_GRACE_S,
) -> dict[str, float]:
    """The figures of the module doc; ``injected``/``real``/``normal``: windows (host, start, end)."""
    data = combined[combined["warmup"].astype(int) == 0].sort_values(["host", "time"], kind="stable")
    data = data.reset_index(drop=True)
    alarm = data["is_anomaly"].astype(int).to_numpy() == 1
    events = concat_windows(injected, real)
    in_event = _hits(data, events, grace_s)
    in_fp = _hits(data, normal, 0.0)
    # false alarms: runs of consecutive alarmed intervals of a host touching no event window
    times = pd.to_datetime(data["time"], utc=True).astype("int64").to_numpy()
    hosts = data["host"].astype(str).to_numpy()
    step = int(interval_s * 1e9)
    new_run = alarm & ~(
        np.r_[False, alarm[:-1]]
        & np.r_[False, hosts[1:] == hosts[:-1]]
        & np.r_[False, np.diff(times) <= step]
    )
    run_id = np.cumsum(new_run)
    run_id[~alarm] = 0
    runs = pd.DataFrame({"run": run_id[alarm], "event": in_event[alarm]})
    false_runs = int((~runs.groupby("run")["event"].any()).sum()) if len(runs) else 0
    if "alarm" in data.columns:  # the path says which rows page: a false alarm is a page outside events
        pages = data["alarm"].fillna(0).astype(int).to_numpy() == 1
        false_runs = int((pages & ~in_event).sum())
    untouched_days = float((~in_event).sum()) * interval_s / DAY_S
    inj_caught, inj_ttd = _detections(data, injected, grace_s, interval_s)
    real_caught, real_ttd = _detections(data, real, grace_s, interval_s)
    n_inj, n_real = len(injected), len(real)

    def ratio(a: int, b: int) -> float:
        return a / b if b else float("nan")

    def median(values: list[float]) -> float:
        return float(np.median(values)) if values else float("nan")

    return {
        "injected_events": float(n_inj),
        "injected_event_recall": ratio(inj_caught, n_inj),
        "real_events": float(n_real),
        "real_event_recall": ratio(real_caught, n_real),
        "events": float(n_inj + n_real),
        "event_recall": ratio(inj_caught + real_caught, n_inj + n_real),
        "median_ttd_s": median(inj_ttd + real_ttd),
        "injected_median_ttd_s": median(inj_ttd),
        "real_median_ttd_s": median(real_ttd),
        "false_alarms": float(false_runs),
        "host_days": untouched_days,
        "false_alarms_per_host_day": false_runs / untouched_days if untouched_days > 0 else float("nan"),
        "alarm_rate": float(alarm.mean()) if len(alarm) else 0.0,
        "rows": float(len(data)),
        "fp_windows": float(len(normal)),
        "fp_window_alarms": float((alarm & in_fp).sum()),
    }


# ------------------------------------------------------------------------------------------------
# The promotion gate


@dataclass(frozen=True)
class ServedVerdict:
    passed: bool
    reason: str


def served_gate(
    challenger: dict[str, float],
    champion: dict[str, float],
    *,
    budget: float,
    margin: float,
    interval_s: float,
    ttd_slack: float = TTD_SLACK,
) -> ServedVerdict:
    """Promote the challenger only if, replayed through the served decision on the same window:

    0. it keeps at least as many of the operators' false positives quiet: ``fp_windows_raised``
       (when both figures are given) is not above the champion's;
    1. it pages no more than both the champion and the budget:
       ``false_alarms_per_host_day <= max(champion's, budget)``;
    2. it catches at least as many events: pooled ``event_recall >= champion's + margin`` — waived
       when it raises fewer of the operators' false positives than the champion (an operator's
       verdict on real history outranks synthetic events: silencing what they dismissed costs
       some sensitivity, and that is their call) — and, where there are real labelled events,
       ``real_event_recall >= champion's`` always (a negative margin loosens this too);
    3. it is not much slower: ``median_ttd_s <= ttd_slack x champion's + one interval``
       (``settings.training.promotion_ttd_slack``, 1.5).

    Ties pass: a challenger as good as the champion has seen the newest data.
    """
    fa_c, fa_p = challenger["false_alarms_per_host_day"], champion["false_alarms_per_host_day"]
    rc, rp = challenger["event_recall"], champion["event_recall"]
    limit = max(fa_p if np.isfinite(fa_p) else 0.0, budget)
    summary = (
        f"served decision: catches {_pct(rc)} of {int(challenger['events'])} events (champion {_pct(rp)}), "
        f"{fa_c:.2f} false alarms per host-day (champion {fa_p:.2f}, budget {budget:g}), "
        f"median time to detect {_secs(challenger['median_ttd_s'])} (champion {_secs(champion['median_ttd_s'])})"
    )
    fp_c, fp_p = challenger.get("fp_windows_raised"), champion.get("fp_windows_raised")
    heeds_operators = fp_c is not None and fp_p is not None and fp_c < fp_p
    if heeds_operators:
        summary += f"; raises {fp_c:.0f} of the operators' false positives (champion {fp_p:.0f})"
    if fp_c is not None and fp_p is not None and fp_c > fp_p:
        return ServedVerdict(
            False, f"raises more of the operators' false positives ({fp_c:.0f} > {fp_p:.0f}): {summary}"
        )
    if not np.isfinite(fa_c) or fa_c > limit + 1e-9:
        return ServedVerdict(False, f"pages more: {summary}")
    if not heeds_operators and np.isfinite(rp) and (not np.isfinite(rc) or rc + 1e-9 < rp + margin):
        return ServedVerdict(False, f"catches fewer (margin {margin:g}): {summary}")
    real_c, real_p = challenger.get("real_event_recall", np.nan), champion.get("real_event_recall", np.nan)
    if np.isfinite(real_p) and (not np.isfinite(real_c) or real_c + 1e-9 < real_p + min(margin, 0.0)):
        return ServedVerdict(
            False, f"catches fewer labelled events ({_pct(real_c)} < {_pct(real_p)}): {summary}"
        )
    ttd_c, ttd_p = challenger["median_ttd_s"], champion["median_ttd_s"]
    if np.isfinite(ttd_c) and np.isfinite(ttd_p) and ttd_c > ttd_slack * ttd_p + interval_s:
        return ServedVerdict(False, f"detects slower: {summary}")
    return ServedVerdict(True, summary)


def rank_key(metrics: dict[str, float], budget: float) -> tuple[float, float, float]:
    """Order candidates of one retrain: within budget first, then events caught, then fewer alarms."""
    fa = metrics.get("false_alarms_per_host_day", np.inf)
    fa = fa if np.isfinite(fa) else np.inf
    recall = metrics.get("event_recall", np.nan)
    return (float(fa <= budget), recall if np.isfinite(recall) else -1.0, -fa)


def _pct(value: float) -> str:
    return "n/a" if not np.isfinite(value) else f"{100 * value:.1f} %"


def _secs(value: float) -> str:
    return "n/a" if not np.isfinite(value) else f"{value:.0f} s"


def plot_served(
    combined: pd.DataFrame, windows: pd.DataFrame, normal: pd.DataFrame, path, title: str, max_hosts: int = 8
):
    """Combined score per host over the window (threshold 1 dashed), injected events shaded blue,
    labelled anomalies red, operator false positives grey; alarms as orange dots."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from vigil.plotting import save_figure

    hosts = sorted(combined["host"].astype(str).unique())[:max_hosts]
    fig, axes = plt.subplots(
        max(1, len(hosts)), 1, figsize=(12, 1.8 * max(1, len(hosts)) + 0.8), sharex=True, squeeze=False
    )
    for ax, host in zip(axes[:, 0], hosts, strict=False):
        rows = combined[combined["host"].astype(str) == host].sort_values("time")
        ax.plot(rows["time"], rows["score"], lw=0.7, color="tab:blue")
        ax.axhline(1.0, color="black", ls="--", lw=0.8)
        for frame, color in (
            (windows[windows["source"] == "injected"], "tab:cyan"),
            (windows[windows["source"] != "injected"], "tab:red"),
            (normal, "0.6"),
        ):
            for row in frame[frame["host"].astype(str) == host].itertuples(index=False):
                ax.axvspan(row.start, row.end, color=color, alpha=0.25)
        alarms = rows[rows["is_anomaly"].astype(int) == 1]
        ax.scatter(alarms["time"], alarms["score"], s=4, color="tab:orange", zorder=3)
        ax.set_yscale("symlog", linthresh=2.0)
        ax.set_ylabel(host, fontsize=8)
    axes[0, 0].set_title(
        title + " — served (combined) score; cyan: injected, red: labelled, grey: false positives", fontsize=9
    )
    return save_figure(fig, path, dpi=90)
