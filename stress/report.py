"""Detection report of one scenario run: what the detector said about a known window.

Built only from what is in InfluxDB (the detector's ``vigil_predictions`` and the
raw metrics), so a report can be rebuilt later for any window, and tests build
it from real points in a real InfluxDB.

Definitions (also printed in every report):

* the **window** is the ground truth: ``[start, end)`` while the load ran;
* an alarm counts as a detection if it falls in ``[start, end + grace)`` — the
  detector works on whole intervals and a scenario's effect outlasts its load a little;
* **time to detect** = end of the first alarmed interval − window start: the earliest
  moment the detector had the data it alarmed on (interval start + interval width);
* **false alarms** = alarmed intervals in the lookback before the window, and after
  ``end + grace`` when the predictions reach that far;
* **features that drove it** = the ``top1..top3`` features of the alarmed intervals,
  ranked by summed contribution; **own-metric alarms** = alarmed intervals in which one of
  those features belongs to a metric the scenario should move (a check that an alarm is
  about this load, not the tail of an earlier one);
* **quiet before** = the detector's last intervals before the window had no alarm (the
  suite rests between scenarios until they do, ``rest before`` seconds).
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from vigil import schema
from vigil.features import base_metrics, fetch_raw, metric_of
from vigil.influx import InfluxClient, quote_ident, quote_literal, time_range
from vigil.numbers import finite_or_none
from vigil.plotting import save_figure

COMBINED = "combined"


@dataclass(frozen=True)
class Window:
    """The ground-truth window and the margins around it, all in ns / seconds."""

    start_ns: int
    end_ns: int
    grace_s: float
    lookback_s: float
    lookahead_s: float = 0.0  # how far after end+grace predictions are also examined for false alarms

    @property
    def detect_end_ns(self) -> int:
        return self.end_ns + int(self.grace_s * 1e9)

    @property
    def view_start_ns(self) -> int:
        return self.start_ns - int(self.lookback_s * 1e9)

    @property
    def view_end_ns(self) -> int:
        return self.detect_end_ns + int(self.lookahead_s * 1e9)


@dataclass
class DetectionReport:
    scenario: str
    description: str
    anomalous: bool
    host: str
    intensity: float
    planned_duration_s: float
    window_start: str
    window_end: str
    duration_s: float
    grace_s: float
    lookback_s: float
    interval_s: int
    label_id: str | None
    predictions_in_window: int
    predictions_total: int
    covered_until: str | None  # time of the newest combined prediction seen
    detected: bool
    alarms_in_window: int
    first_alarm: str | None
    time_to_detect_s: float | None
    wall_clock_detect_s: float | None  # when the runner's poll first saw the alarm (None: not watched)
    peak_score: float | None
    peak_score_time: str | None
    threshold_at_peak: float | None
    false_alarms: int
    false_alarm_times: list[str]
    top_features: list[dict[str, Any]]
    load: list[dict[str, Any]] = field(default_factory=list)
    load_errors: list[str] = field(default_factory=list)
    interrupted: bool = False
    files: dict[str, str] = field(default_factory=dict)
    incident: dict[str, Any] | None = None  # the detector's incident bundle for this host and window
    own_metric_alarms: int = 0  # alarms in the window naming a feature of the scenario's metrics
    rest_before_s: float | None = None  # the suite's rest before this scenario (None: run alone)
    quiet_before: bool | None = None  # whether that rest ended with the host quiet
    #: 0/1 per interval after the load ended (from the window's end to the end of the view): how
    #: long an alarm outlived its cause (vigil.decision rule 4 ends it with the cause)
    after_end: list[int] = field(default_factory=list)

    @property
    def alarmed_after_end(self) -> int:
        """Intervals still flagged after the load ended."""
        return int(sum(self.after_end))

    @property
    def outcome(self) -> str:
        """One word: detected | missed | quiet (normal, no alarm) | false_alarm | no_data."""
        if self.predictions_in_window == 0:
            return "no_data"
        if self.anomalous:
            return "detected" if self.detected else "missed"
        return "false_alarm" if self.detected else "quiet"

    @property
    def passed(self) -> bool:
        """Anomalous: detected. Normal: no alarm in the window nor around it."""
        if self.anomalous:
            return self.outcome == "detected"
        return self.outcome == "quiet" and self.false_alarms == 0

    def to_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "outcome": self.outcome,
            "passed": self.passed,
            "alarmed_after_end": self.alarmed_after_end,
        }


_PLOTTING_READY = False


def preload_plotting() -> bool:
    """Import matplotlib and draw one throwaway figure now, before any scenario runs; True if
    this call did the loading (False: this process had done it already).

    Why: the first report's plot reads tens of MB (matplotlib, numpy's plotting paths, fonts)
    from a disk whose cache this VM drops every few minutes; drawn between two scenarios, that
    read is the harness's own disk burst on the monitored host (seen: a demo's suite began
    with the host alarming on ``disk_read_vol``).
    """
    global _PLOTTING_READY
    if _PLOTTING_READY:
        return False
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(2, 1))
    ax.plot([0, 1], [0, 1])
    ax.set_title("warm-up")
    try:
        fig.savefig(io.BytesIO(), format="png")
    finally:
        plt.close(fig)
    _PLOTTING_READY = True
    return True


# --- reading InfluxDB ----------------------------------------------------------------------------------


def predictions_query(host: str, start_ns: int, end_ns: int) -> str:
    """The combined decisions of ``host`` in ``[start, end)``: the only predictions a report judges
    (``source = 'combined'``: one model's solo flag never pages, see ``vigil.decision``)."""
    return (
        f"SELECT * FROM {quote_ident(schema.PREDICTIONS.name)} "
        f"WHERE {quote_ident('host')} = {quote_literal(host)} AND {quote_ident('source')} = {quote_literal(COMBINED)} "
        f"AND {time_range(start_ns, end_ns)} "
        f'GROUP BY "source", "model", "version"'
    )


def model_scores_query(host: str, start_ns: int, end_ns: int) -> str:
    """The two models' own scores and thresholds (no decision) of ``host``, for the report's plot."""
    return (
        f"SELECT {quote_ident('score')}, {quote_ident('threshold')} FROM {quote_ident(schema.PREDICTIONS.name)} "
        f"WHERE {quote_ident('host')} = {quote_literal(host)} "
        f"AND ({quote_ident('source')} = 'batch' OR {quote_ident('source')} = 'online') "
        f"AND {time_range(start_ns, end_ns)} "
        f'GROUP BY "source", "model", "version"'
    )


def fetch_predictions(
    client: InfluxClient, db: str, host: str, start_ns: int, end_ns: int, *, with_model_scores: bool = False
) -> pd.DataFrame:
    """The combined predictions of ``host`` in ``[start, end)`` with the tags as columns; with
    ``with_model_scores`` also the batch and online models' score and threshold rows (no
    ``is_anomaly``: they are drawn, never judged)."""
    frames = [client.query_df(db, predictions_query(host, start_ns, end_ns))]
    if with_model_scores:
        frames.append(client.query_df(db, model_scores_query(host, start_ns, end_ns)))
    frames = [f for f in frames if not f.empty]
    if not frames:
        return pd.DataFrame(columns=["time", "source", "score", "threshold", "is_anomaly"])
    frame = pd.concat(frames, ignore_index=True)
    return frame.sort_values("time", kind="stable").reset_index(drop=True)


def fetch_metrics(
    client: InfluxClient, raw_db: str, host: str, start_ns: int, end_ns: int, interval_s: int
) -> pd.DataFrame:
    """Base metrics (the feature definitions' physical units) of ``host`` for the plot."""
    start = pd.Timestamp(start_ns, unit="ns", tz="UTC")
    end = pd.Timestamp(end_ns, unit="ns", tz="UTC")
    frame = base_metrics(fetch_raw(client, raw_db, start, end, interval_s))
    if frame.empty:
        return frame
    return frame[frame["host"] == host].reset_index(drop=True)


# --- analysis --------------------------------------------------------------------------------------------


def _iso(ts: pd.Timestamp | int | None) -> str | None:
    if ts is None:
        return None
    return pd.Timestamp(ts, unit="ns", tz="UTC").isoformat() if isinstance(ts, int) else ts.isoformat()


def combined_of(predictions: pd.DataFrame) -> pd.DataFrame:
    if predictions.empty or "source" not in predictions:
        return predictions.iloc[0:0]
    frame = predictions[predictions["source"] == COMBINED].copy()
    frame["is_anomaly"] = pd.to_numeric(frame["is_anomaly"], errors="coerce").fillna(0).astype(int)
    return frame


def top_features(alarms: pd.DataFrame, limit: int = 3) -> list[dict[str, Any]]:
    """Features named in top1..top3 of alarmed intervals, ranked by summed contribution."""
    total: dict[str, float] = defaultdict(float)
    count: dict[str, int] = defaultdict(int)
    for rank in (1, 2, 3):
        fcol, ccol = f"top{rank}_feature", f"top{rank}_contribution"
        if fcol not in alarms:
            continue
        for feature, contribution in zip(alarms[fcol], alarms.get(ccol, [None] * len(alarms)), strict=True):
            if not isinstance(feature, str) or not feature:
                continue
            total[feature] += finite_or_none(contribution) or 0.0
            count[feature] += 1
    ranked = sorted(total, key=lambda f: (-total[f], -count[f], f))[:limit]
    return [{"feature": f, "alarms": count[f], "total_contribution": round(total[f], 4)} for f in ranked]


def own_metric_alarms(alarms: pd.DataFrame, metrics: tuple[str, ...]) -> int:
    """Alarmed intervals whose top1..top3 features include one derived from ``metrics``."""
    if alarms.empty or not metrics:
        return 0
    own = pd.Series(False, index=alarms.index)
    for rank in (1, 2, 3):
        column = f"top{rank}_feature"
        if column in alarms:
            own |= alarms[column].map(lambda f: isinstance(f, str) and metric_of(f) in metrics)
    return int(own.sum())


def analyse(
    *,
    scenario: str,
    description: str,
    anomalous: bool,
    host: str,
    intensity: float,
    planned_duration_s: float,
    window: Window,
    interval_s: int,
    predictions: pd.DataFrame,
    label_id: str | None = None,
    wall_clock_detect_s: float | None = None,
    load: list[dict[str, Any]] | None = None,
    load_errors: list[str] | None = None,
    interrupted: bool = False,
    metrics: tuple[str, ...] = (),
    rest_before: tuple[float, bool] | None = None,
) -> DetectionReport:
    """The numbers of the report, from the predictions frame (see the module doc for definitions).

    ``metrics``: the scenario's own base metrics; ``rest_before``: the suite's (seconds, quiet).
    """
    combined = combined_of(predictions)
    t_ns = combined["time"].astype("int64") if not combined.empty else pd.Series(dtype="int64")
    # An interval overlapping the window's start counts as in the window.
    in_window = combined[(t_ns + int(interval_s * 1e9) > window.start_ns) & (t_ns < window.detect_end_ns)]
    alarms = in_window[in_window["is_anomaly"] == 1]
    outside = combined[(t_ns + int(interval_s * 1e9) <= window.start_ns) | (t_ns >= window.detect_end_ns)]
    false = outside[outside["is_anomaly"] == 1]
    after = combined[(t_ns >= window.end_ns) & (t_ns < window.view_end_ns)]

    first = alarms["time"].iloc[0] if not alarms.empty else None
    ttd = None
    if first is not None:
        ttd = max(0.0, (first.value + interval_s * 1e9 - window.start_ns) / 1e9)
    peak_row = None
    if not in_window.empty:
        scores = pd.to_numeric(in_window["score"], errors="coerce")
        if scores.notna().any():
            peak_row = in_window.loc[scores.idxmax()]
    return DetectionReport(
        scenario=scenario,
        description=description,
        anomalous=anomalous,
        host=host,
        intensity=intensity,
        planned_duration_s=planned_duration_s,
        window_start=_iso(window.start_ns),
        window_end=_iso(window.end_ns),
        duration_s=round((window.end_ns - window.start_ns) / 1e9, 2),
        grace_s=window.grace_s,
        lookback_s=window.lookback_s,
        interval_s=interval_s,
        label_id=label_id,
        predictions_in_window=len(in_window),
        predictions_total=len(combined),
        covered_until=_iso(combined["time"].iloc[-1]) if not combined.empty else None,
        detected=not alarms.empty,
        alarms_in_window=len(alarms),
        first_alarm=_iso(first),
        time_to_detect_s=round(ttd, 1) if ttd is not None else None,
        wall_clock_detect_s=round(wall_clock_detect_s, 1) if wall_clock_detect_s is not None else None,
        peak_score=finite_or_none(peak_row["score"]) if peak_row is not None else None,
        peak_score_time=_iso(peak_row["time"]) if peak_row is not None else None,
        threshold_at_peak=finite_or_none(peak_row["threshold"]) if peak_row is not None else None,
        false_alarms=len(false),
        false_alarm_times=[_iso(t) for t in false["time"]],
        top_features=top_features(alarms),
        own_metric_alarms=own_metric_alarms(alarms, metrics),
        rest_before_s=round(rest_before[0], 1) if rest_before else None,
        quiet_before=rest_before[1] if rest_before else None,
        after_end=[int(v) for v in after["is_anomaly"].tolist()],
        load=list(load or []),
        load_errors=list(load_errors or []),
        interrupted=interrupted,
    )


# --- rendering -------------------------------------------------------------------------------------------


def verdict(report: DetectionReport) -> str:
    o = report.outcome
    if o == "no_data":
        return (
            f"NO DATA — no combined predictions for host {report.host!r} in the window: "
            "is the detector running and scoring this host?"
        )
    if o == "detected":
        return f"DETECTED — first alarm {report.time_to_detect_s:g} s after the window started"
    if o == "missed":
        return "NOT DETECTED — no alarm in the window or its grace period"
    if o == "quiet":
        return "NO ALARM (as expected for a normal period)"
    return f"FALSE ALARM — {report.alarms_in_window} alarmed interval(s) during a normal period"


def _fmt(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _secs(value: float | None) -> str:
    return "—" if value is None else f"{value:g} s"


def _incident_cell(incident: dict[str, Any] | None) -> str:
    if not incident:
        return "none recorded"
    return f"[`{incident['id']}`]({incident['path']}) ({incident['status']}; `vigil incidents show {incident['id']}`)"


def link_incident(report: DetectionReport, window: Window, incidents_dir: Path | None) -> None:
    """Set ``report.incident`` to the incident in which the report's host alarmed during the
    window (start to end + grace): the earliest such alarm among the bundles' ``meta.json``.

    Read from the bundle format (docs/api_and_incidents.md), not through ``detector``: stress
    imports only ``vigil``. An unreadable meta is skipped (``vigil incidents list`` flags it).
    """
    if incidents_dir is None or not incidents_dir.is_dir():
        return
    best: tuple[int, dict[str, Any]] | None = None
    for meta_path in sorted(incidents_dir.glob("*/meta.json")):
        try:
            meta = json.loads(meta_path.read_text())
            ep = (meta.get("hosts") or {}).get(report.host)
            first, last = (int(ep["first_alarm_ns"]), int(ep["last_alarm_ns"])) if ep else (0, -1)
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            continue
        if (
            ep
            and first < window.detect_end_ns
            and last >= window.start_ns
            and (best is None or first < best[0])
        ):
            best = (first, {"id": meta.get("id"), "status": meta.get("status"), "path": str(meta_path.parent),
                            "first_alarm": ep.get("first_alarm"), "last_alarm": ep.get("last_alarm")})  # fmt: skip
    if best:
        report.incident = best[1]


def find_incidents_dir(out_dir: Path) -> Path | None:
    """``<run_dir>/incidents`` for a report written under ``<run_dir>/reports/...`` (the default)."""
    for parent in out_dir.resolve().parents:
        if (parent / "incidents").is_dir():
            return parent / "incidents"
    return None


def _rest_cell(r: DetectionReport) -> str:
    if r.rest_before_s is None:
        return "— (run on its own)"
    return (
        f"{r.rest_before_s:g} s ({'quiet' if r.quiet_before else 'NOT quiet: still alarming when it began'})"
    )


def render_markdown(report: DetectionReport, plot_name: str | None = "report.png") -> str:
    r = report
    rows = [
        ("outcome", f"**{r.outcome}** ({'pass' if r.passed else 'FAIL'})"),
        ("host", r.host),
        ("ground-truth window", f"{r.window_start} → {r.window_end} ({r.duration_s:g} s)"),
        ("intensity", r.intensity),
        ("label id", r.label_id),
        ("detected", "yes" if r.detected else "no"),
        ("time to detect (data time)", _secs(r.time_to_detect_s)),
        ("seen by the runner after (wall clock)", _secs(r.wall_clock_detect_s)),
        ("first alarm", r.first_alarm),
        ("alarmed intervals in window + grace", r.alarms_in_window),
        ("of which name a feature of this scenario's metrics", r.own_metric_alarms),
        ("rest before (host quiet at its end)", _rest_cell(r)),
        (
            "peak score (threshold)",
            f"{_fmt(r.peak_score)} ({_fmt(r.threshold_at_peak)}) at {_fmt(r.peak_score_time)}",
        ),
        (f"false alarms ({r.lookback_s:g} s before, and after the grace)", r.false_alarms),
        (
            "alarmed intervals after the load ended (in order)",
            f"{r.alarmed_after_end} of {len(r.after_end)}: {''.join(str(v) for v in r.after_end[:30]) or '—'}",
        ),
        ("predictions in window / total examined", f"{r.predictions_in_window} / {r.predictions_total}"),
        ("predictions cover until", r.covered_until),
        ("incident bundle", _incident_cell(r.incident)),
    ]
    lines = [
        f"# Stress report: `{r.scenario}`",
        "",
        f"**{verdict(r)}**",
        "",
        r.description,
        "",
        "| | |",
        "| --- | --- |",
        *[f"| {k} | {_fmt(v)} |" for k, v in rows],
        "",
        "## Features that drove the alarms",
        "",
    ]
    if r.top_features:
        lines += ["| feature | alarms naming it | summed contribution |", "| --- | --- | --- |"]
        lines += [
            f"| `{f['feature']}` | {f['alarms']} | {f['total_contribution']:.4g} |" for f in r.top_features
        ]
    else:
        lines.append("No alarm in the window, so no driving features.")
    if r.false_alarm_times:
        lines += ["", "## False alarms", "", *[f"- {t}" for t in r.false_alarm_times[:20]]]
    lines += ["", "## Load", ""]
    if r.load:
        lines += [f"- `{json.dumps(s, sort_keys=True)}`" for s in r.load]
    else:
        lines.append("No load summary (report rebuilt from InfluxDB only).")
    if r.load_errors:
        lines += ["", "Load errors:", *[f"- {e}" for e in r.load_errors]]
    if r.interrupted:
        lines += ["", "The run was interrupted: the window ends where the load was stopped."]
    if plot_name:
        lines += ["", "## Plot", "", f"![affected metrics, scores and the ground-truth window]({plot_name})"]
    lines += [
        "",
        "## Definitions",
        "",
        f"Alarms count as detections in [start, end + {r.grace_s:g} s). Time to detect = end of the first "
        f"alarmed {r.interval_s} s interval − window start. Only `source=combined` predictions count.",
        "",
    ]
    return "\n".join(lines)


def plot_report(
    report: DetectionReport,
    window: Window,
    predictions: pd.DataFrame,
    metrics: pd.DataFrame,
    metric_names: tuple[str, ...],
    path: Path,
) -> Path:
    """PNG: one panel per affected metric, then scores vs threshold with alarms; window shaded."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [m for m in metric_names if not metrics.empty and m in metrics and metrics[m].notna().any()]
    n = len(shown) + 1
    fig, axes = plt.subplots(n, 1, figsize=(11, 2.2 * n + 0.8), sharex=True, squeeze=False)
    axes = axes[:, 0]
    start = pd.Timestamp(window.start_ns, unit="ns", tz="UTC")
    end = pd.Timestamp(window.end_ns, unit="ns", tz="UTC")
    grace_end = pd.Timestamp(window.detect_end_ns, unit="ns", tz="UTC")
    for ax in axes:
        ax.axvspan(start, end, color="tab:orange", alpha=0.25, label="ground truth")
        ax.axvspan(end, grace_end, color="tab:orange", alpha=0.08, label="grace")
        ax.grid(alpha=0.3)
    for ax, name in zip(axes, shown, strict=False):
        ax.plot(metrics["time"], metrics[name], color="tab:blue", lw=1.4, marker=".", ms=3)
        ax.set_ylabel(name, fontsize=8)
    ax = axes[-1]
    combined = combined_of(predictions)
    for source, style in (("batch", ":"), ("online", "--")):
        part = (
            predictions[predictions["source"] == source] if "source" in predictions else predictions.iloc[0:0]
        )
        if not part.empty:
            ax.plot(
                part["time"],
                pd.to_numeric(part["score"], errors="coerce"),
                style,
                lw=1,
                label=f"{source} score",
            )
    if not combined.empty:
        ax.plot(
            combined["time"],
            pd.to_numeric(combined["score"], errors="coerce"),
            color="black",
            lw=1.4,
            label="combined score",
        )
        ax.plot(
            combined["time"],
            pd.to_numeric(combined["threshold"], errors="coerce"),
            color="tab:red",
            lw=1,
            ls="--",
            label="threshold",
        )
        alarms = combined[combined["is_anomaly"] == 1]
        ax.scatter(
            alarms["time"],
            pd.to_numeric(alarms["score"], errors="coerce"),
            color="tab:red",
            zorder=5,
            s=28,
            label="alarm",
        )
    else:
        ax.text(0.5, 0.5, "no combined predictions", transform=ax.transAxes, ha="center", va="center")
    ax.set_ylabel("anomaly score", fontsize=8)
    ax.legend(loc="upper left", fontsize=7, ncol=3)
    ax.set_xlim(
        pd.Timestamp(window.view_start_ns, unit="ns", tz="UTC"),
        pd.Timestamp(window.view_end_ns, unit="ns", tz="UTC"),
    )
    fig.suptitle(f"{report.scenario} on {report.host}: {verdict(report)}", fontsize=10)
    fig.autofmt_xdate()
    return save_figure(fig, path, dpi=90)


def write_report(
    out_dir: Path,
    report: DetectionReport,
    window: Window,
    predictions: pd.DataFrame,
    metrics: pd.DataFrame,
    metric_names: tuple[str, ...],
    incidents_dir: Path | None = None,
) -> DetectionReport:
    """Write report.md, report.json and report.png into ``out_dir``; the paths go into ``report.files``.

    The incident the detector recorded for this host in the window is linked; its folder is
    ``incidents_dir``, by default the ``incidents`` folder of the run folder holding ``out_dir``.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    link_incident(report, window, incidents_dir or find_incidents_dir(out_dir))
    png = plot_report(report, window, predictions, metrics, metric_names, out_dir / "report.png")
    md = out_dir / "report.md"
    js = out_dir / "report.json"
    report.files = {"markdown": str(md), "json": str(js), "plot": str(png)}
    md.write_text(render_markdown(report, png.name))
    js.write_text(json.dumps(report.to_dict(), indent=2, default=str))
    return report
