"""Incident bundles: the detector's flight recorder.

When a host's **combined** alarm fires, the evidence is kept under
``settings.run_dir/incidents/<ID>/`` so an operator can see — and ``vigil replay --source
bundle`` can reproduce — what the detector saw:

* ``events.jsonl`` — the raw points of the incident's hosts from ``incident_before_min``
  before the first alarm to ``incident_after_min`` after the last one, one JSON object per
  line ``{"measurement", "tags", "fields", "time_ns"}`` (the format ``stress/replay_source.py``
  reads), then the predictions of those hosts in the window as
  ``{"kind": "prediction", ...}`` lines (skipped by replay);
* ``meta.json`` — id, status (``open`` until the after-window has passed, then ``complete``),
  window, hosts with their alarms, peak score and top features, the models (champion name,
  version, threshold; online model and its threshold) and the decision rule in force, the
  settings used, the stored type of every field (``field_types``, so a replay writes ``5.0``
  as a float, not an integer), and the files;
* ``report.md`` and ``incident.png`` — the same, for people.

Rules:

* **Cool-down** — a host's alarms less than ``incident_cooldown_min`` apart are one episode:
  they extend the host's entry in its incident, never open a new one. An alarm of a host in
  cool-down whose incident is already complete is counted there (``suppressed_alarms``).
* **Grouping** — while an incident is open (its after-window has not passed yet), an alarm of
  any other host joins it: overlapping hosts in one time span make one incident.
* **Not blocking** — nothing waits for the after-window: each loop iteration hands incidents
  whose window the watermark has passed to one background thread, which reads InfluxDB and
  writes the files; ``meta.json`` is written first as ``open`` (visible at once in
  ``vigil incidents list``) and last as ``complete``, atomically. A capture that fails (e.g.
  InfluxDB down) stays open and is retried at the next iteration. Open incidents are restored
  from their ``meta.json`` after a restart.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from vigil import schema
from vigil.decision import COMBINED_THRESHOLD, CONVICTION
from vigil.errors import VigilError
from vigil.features.source import QUERY_GROUPS
from vigil.influx import InfluxClient, InfluxError, InfluxUnavailable, quote_ident, tag_in, time_range
from vigil.plotting import save_figure
from vigil.settings import IncidentSettings, Settings

log = logging.getLogger(__name__)

NS = 1_000_000_000
META, EVENTS, REPORT, PLOT = "meta.json", "events.jsonl", "report.md", "incident.png"
#: Files a complete bundle holds.
BUNDLE_FILES = (META, EVENTS, REPORT, PLOT)
#: Vigil's own measurements are never captured as raw input.
_VIGIL_NAMES = frozenset(m.name for m in schema.VIGIL_MEASUREMENTS)
#: Raw measurements the features read (always captured, even if SHOW MEASUREMENTS fails).
_FEATURE_MEASUREMENTS = sorted({k[0] for k in QUERY_GROUPS})


class IncidentError(VigilError, RuntimeError):
    """An incident (bundle) is missing or damaged; the message says which file and why."""


def incidents_root(incidents: IncidentSettings) -> Path:
    return incidents.root


def _iso(ns: int | None) -> str | None:
    return None if ns is None else pd.Timestamp(int(ns), unit="ns", tz="UTC").isoformat()


def write_json_atomic(path: Path, payload: Any) -> None:
    tmp = path.with_name(path.name + f".tmp{os.getpid()}-{threading.get_ident()}")
    tmp.write_text(json.dumps(payload, indent=2, default=str, allow_nan=False) + "\n")
    os.replace(tmp, path)


@dataclass
class HostEpisode:
    """One host's alarms in an incident."""

    host: str
    first_alarm_ns: int
    last_alarm_ns: int
    alarms: int = 0
    peak_score: float = 0.0
    peak_time_ns: int = 0
    top_features: dict[str, float] = field(default_factory=dict)  # feature -> summed contribution
    captured: bool = True  # False past incident_max_hosts: listed, raw points not captured

    def add(self, t_ns: int, score: float, top: list[tuple[str, float]]) -> None:
        self.first_alarm_ns = min(self.first_alarm_ns, t_ns)
        self.last_alarm_ns = max(self.last_alarm_ns, t_ns)
        self.alarms += 1
        if score >= self.peak_score:
            self.peak_score, self.peak_time_ns = score, t_ns
        for name, contribution in top:
            if name:
                self.top_features[name] = round(self.top_features.get(name, 0.0) + contribution, 6)


@dataclass
class Incident:
    """An open or complete incident (what ``meta.json`` holds)."""

    id: str
    status: str  # "open" | "complete"
    first_alarm_ns: int
    last_alarm_ns: int
    before_s: float
    after_s: float
    interval_s: int
    hosts: dict[str, HostEpisode] = field(default_factory=dict)
    models: dict[str, Any] = field(default_factory=dict)
    suppressed_alarms: int = 0
    events: int = 0
    predictions: int = 0
    field_types: dict[str, dict[str, str]] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    truncated: bool = False

    @property
    def start_ns(self) -> int:
        return self.first_alarm_ns - int(self.before_s * NS)

    @property
    def end_ns(self) -> int:
        """End (exclusive) of the capture: the last alarmed interval, plus the after-window."""
        return self.last_alarm_ns + self.interval_s * NS + int(self.after_s * NS)

    def to_meta(self) -> dict[str, Any]:
        d = asdict(self)
        d["window"] = {"start": _iso(self.start_ns), "end": _iso(self.end_ns)}
        d["first_alarm"], d["last_alarm"] = _iso(self.first_alarm_ns), _iso(self.last_alarm_ns)
        for ep in d["hosts"].values():
            ep["first_alarm"], ep["last_alarm"] = _iso(ep["first_alarm_ns"]), _iso(ep["last_alarm_ns"])
            ep["peak_time"] = _iso(ep["peak_time_ns"])
            ranked = sorted(ep["top_features"].items(), key=lambda kv: (-kv[1], kv[0]))
            ep["top_features"] = [{"feature": f, "total_contribution": c} for f, c in ranked[:5]]
        d["replay"] = "vigil replay --source bundle --bundle <this folder> --into SCRATCH_DB --speed 0"
        return d

    @classmethod
    def from_meta(cls, meta: dict[str, Any]) -> Incident:
        hosts = {}
        for name, ep in (meta.get("hosts") or {}).items():
            hosts[name] = HostEpisode(
                host=name,
                first_alarm_ns=int(ep["first_alarm_ns"]),
                last_alarm_ns=int(ep["last_alarm_ns"]),
                alarms=int(ep.get("alarms", 0)),
                peak_score=float(ep.get("peak_score", 0.0)),
                peak_time_ns=int(ep.get("peak_time_ns", 0)),
                top_features={
                    t["feature"]: float(t["total_contribution"]) for t in ep.get("top_features", [])
                },
                captured=bool(ep.get("captured", True)),
            )
        return cls(
            id=str(meta["id"]),
            status=str(meta["status"]),
            first_alarm_ns=int(meta["first_alarm_ns"]),
            last_alarm_ns=int(meta["last_alarm_ns"]),
            before_s=float(meta["before_s"]),
            after_s=float(meta["after_s"]),
            interval_s=int(meta["interval_s"]),
            hosts=hosts,
            models=dict(meta.get("models") or {}),
            suppressed_alarms=int(meta.get("suppressed_alarms", 0)),
        )


def incident_id(first_alarm_ns: int, host: str) -> str:
    """``20260303T001500Z-1a2b3c``: the first alarm's time and a hash of the first host (folder-safe)."""
    stamp = pd.Timestamp(first_alarm_ns, unit="ns", tz="UTC").strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{hashlib.blake2b(host.encode(), digest_size=3).hexdigest()}"


# ------------------------------------------------------------------------------------------------
# Capture: raw points + predictions from InfluxDB into the bundle's files.


def field_types(client: InfluxClient, db: str, measurement: str) -> dict[str, str]:
    series = client.query(db, f"SHOW FIELD KEYS FROM {quote_ident(measurement)}")
    return {row[0]: row[1] for s in series for row in s.get("values", [])}


def _typed(value: Any, kind: str | None) -> Any:
    if kind in ("integer", "unsigned") and isinstance(value, (int, float)) and not isinstance(value, bool):
        return int(value)
    if kind == "float" and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return value


def read_raw_events(
    client: InfluxClient, db: str, hosts: list[str], start_ns: int, end_ns: int, limit: int
) -> tuple[list[dict[str, Any]], dict[str, dict[str, str]], bool]:
    """Raw points of ``hosts`` in ``[start, end)`` as events, the field types, and whether cut at ``limit``."""
    try:
        measurements = [m for m in client.measurements(db) if m not in _VIGIL_NAMES]
    except InfluxUnavailable:
        raise
    except InfluxError:
        measurements = list(_FEATURE_MEASUREMENTS)
    events: list[dict[str, Any]] = []
    types: dict[str, dict[str, str]] = {}
    where = f"{time_range(start_ns, end_ns)} AND {tag_in(schema.HOST_TAG, hosts)}"
    for m in measurements:
        kinds = field_types(client, db, m)
        q = f"SELECT * FROM {quote_ident(m)} WHERE {where} GROUP BY *"
        for s in client.query(db, q, epoch="ns"):
            tags = {k: v for k, v in (s.get("tags") or {}).items() if v not in (None, "")}
            cols = s["columns"]
            for row in s.get("values", []):
                fields = {
                    c: _typed(v, kinds.get(c))
                    for c, v in zip(cols[1:], row[1:], strict=True)
                    if v is not None
                }
                if fields:
                    events.append({"measurement": m, "tags": tags, "fields": fields, "time_ns": int(row[0])})
                    for c in fields:
                        if c in kinds:
                            types.setdefault(m, {})[c] = kinds[c]
    events.sort(key=lambda e: (e["time_ns"], e["measurement"], sorted(e["tags"].items())))
    truncated = len(events) > limit
    return events[:limit], types, truncated


def read_predictions(
    client: InfluxClient, db: str, hosts: list[str], start_ns: int, end_ns: int
) -> pd.DataFrame:
    q = (
        f"SELECT * FROM {quote_ident(schema.PREDICTIONS.name)} WHERE {time_range(start_ns, end_ns)} "
        f'AND {tag_in(schema.HOST_TAG, hosts)} GROUP BY "host", "source", "model", "version"'
    )
    try:
        return client.query_df(db, q)
    except InfluxUnavailable:
        raise
    except InfluxError:
        return pd.DataFrame()  # no predictions database yet


def _prediction_events(frame: pd.DataFrame) -> list[dict[str, Any]]:
    if frame.empty:
        return []
    tag_keys = [k for k in ("host", "model", "version", "source") if k in frame.columns]
    field_keys = [c for c in schema.PREDICTIONS.fields if c in frame.columns]
    out = []
    for rec in frame.to_dict("records"):
        fields = {}
        for k in field_keys:
            v = rec[k]
            if v is None or (isinstance(v, float) and v != v):
                continue
            fields[k] = v.item() if hasattr(v, "item") else v
        out.append(
            {
                "kind": "prediction",
                "measurement": schema.PREDICTIONS.name,
                "tags": {k: str(rec[k]) for k in tag_keys if rec[k] is not None},
                "fields": fields,
                "time_ns": int(pd.Timestamp(rec["time"]).value),
            }
        )
    return out


def capture(
    incident: Incident, settings: Settings, client: InfluxClient, folder: Path, max_events: int
) -> Incident:
    """Read the window from InfluxDB and write events.jsonl, report.md, the PNG, then meta.json."""
    hosts = sorted(h for h, ep in incident.hosts.items() if ep.captured)
    events, types, truncated = read_raw_events(
        client, settings.influx.raw_db, hosts, incident.start_ns, incident.end_ns, max_events
    )
    preds = read_predictions(client, settings.influx.vigil_db, hosts, incident.start_ns, incident.end_ns)
    pred_events = _prediction_events(preds)
    tmp = folder / (EVENTS + ".tmp")
    with tmp.open("w") as fh:
        for e in events + pred_events:
            fh.write(json.dumps(e, allow_nan=False) + "\n")
    os.replace(tmp, folder / EVENTS)
    incident.events, incident.predictions = len(events), len(pred_events)
    incident.field_types, incident.truncated = types, truncated
    plot(incident, events, preds, folder / PLOT)
    incident.status = "complete"
    incident.files = {name: str(folder / name) for name in BUNDLE_FILES}
    (folder / REPORT).write_text(render_report(incident, folder))
    write_json_atomic(folder / META, incident.to_meta())
    return incident


# ------------------------------------------------------------------------------------------------
# The recorder the detector loop drives.


class IncidentRecorder:
    """Turns combined alarms into incidents; captures them off the loop's thread."""

    def __init__(
        self,
        settings: Settings,
        on_error: Callable[[str], None] | None = None,
        max_events: int = 500_000,
    ) -> None:
        self.settings = settings
        self.root = incidents_root(settings.incidents)
        self.on_error = on_error or (lambda kind: None)
        self.max_events = max_events
        self.interval_s = int(settings.features.interval_s)
        self.cooldown_ns = int(settings.incidents.cooldown_min * 60 * NS)
        self.open: dict[str, Incident] = {}
        self.host_last_alarm: dict[str, tuple[int, str]] = {}  # host -> (last alarm ns, incident id)
        self._suppressed: dict[str, int] = {}  # complete incident id -> alarms suppressed since
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="incident")
        self._inflight: dict[str, Future[Incident]] = {}
        self.completed: list[str] = []
        self._restore()

    # --- state ---------------------------------------------------------------------------------
    def _restore(self) -> None:
        """Reopen incidents left open by a previous run; rebuild recent cool-downs."""
        if not self.root.is_dir():
            return
        for meta_path in sorted(self.root.glob(f"*/{META}"))[-200:]:
            try:
                incident = Incident.from_meta(json.loads(meta_path.read_text()))
            except (OSError, ValueError, KeyError, TypeError) as exc:
                log.warning("incident %s unreadable (%s); ignored", meta_path.parent.name, exc)
                continue
            if incident.status == "open":
                self.open[incident.id] = incident
            for host, ep in incident.hosts.items():
                if ep.last_alarm_ns > self.host_last_alarm.get(host, (0, ""))[0]:
                    self.host_last_alarm[host] = (ep.last_alarm_ns, incident.id)

    def _folder(self, incident_id: str) -> Path:
        return self.root / incident_id

    def _write_open_meta(self, incident: Incident) -> None:
        folder = self._folder(incident.id)
        folder.mkdir(parents=True, exist_ok=True)
        write_json_atomic(folder / META, incident.to_meta())

    # --- alarms --------------------------------------------------------------------------------
    def observe(self, combined: pd.DataFrame, models: dict[str, Any]) -> list[str]:
        """Absorb the alarmed rows of a scored batch (columns host, time, score, is_anomaly, topN_*).

        Returns the ids of incidents opened or extended. ``models`` (versions, thresholds in force)
        is recorded with each incident when it opens.
        """
        if combined.empty or "is_anomaly" not in combined:
            return []
        alarms = combined[combined["is_anomaly"].astype(int) == 1]
        if alarms.empty:
            return []
        alarms = alarms.assign(_t=pd.to_datetime(alarms["time"], utc=True).astype("int64")).sort_values("_t")
        touched: dict[str, Incident] = {}
        for rec in alarms.to_dict("records"):
            host, t = str(rec["host"]), int(rec["_t"])
            score = float(rec.get("score") or 0.0)
            top = [
                (str(rec.get(f"top{k}_feature") or ""), float(rec.get(f"top{k}_contribution") or 0.0))
                for k in (1, 2, 3)
            ]
            incident = self._incident_for(host, t, models)
            if incident is None:
                continue
            ep = incident.hosts.get(host)
            if ep is None:
                ep = incident.hosts[host] = HostEpisode(
                    host, t, t, captured=len(incident.hosts) < self.settings.incidents.max_hosts
                )
            ep.add(t, score, top)
            incident.last_alarm_ns = max(incident.last_alarm_ns, t)
            self.host_last_alarm[host] = (max(t, self.host_last_alarm.get(host, (0, ""))[0]), incident.id)
            touched[incident.id] = incident
        for incident in touched.values():
            self._write_open_meta(incident)
        self._flush_suppressed()
        return list(touched)

    def _incident_for(self, host: str, t: int, models: dict[str, Any]) -> Incident | None:
        last = self.host_last_alarm.get(host)
        # negative differences too: an interval re-scored after a restart is the same episode
        if last is not None and t - last[0] < self.cooldown_ns:
            incident = self.open.get(last[1])
            if incident is not None:
                return incident  # same episode, incident still open: extend it
            # same episode, its bundle is complete: count it there, open nothing
            self._suppressed[last[1]] = self._suppressed.get(last[1], 0) + 1
            self.host_last_alarm[host] = (max(t, last[0]), last[1])
            return None
        for incident in self.open.values():  # grouping: an open incident takes any host
            if incident.id not in self._inflight and t < incident.end_ns:
                return incident
        new = Incident(
            id=incident_id(t, host),
            status="open",
            first_alarm_ns=t,
            last_alarm_ns=t,
            before_s=self.settings.incidents.before_min * 60,
            after_s=self.settings.incidents.after_min * 60,
            interval_s=self.interval_s,
            models=models,
        )
        while new.id in self.open or self._folder(new.id).exists():
            new.id += "x"
        self.open[new.id] = new
        log.warning("incident %s opened by %s at %s", new.id, host, _iso(t))
        return new

    def _flush_suppressed(self) -> None:
        for incident_id_, n in list(self._suppressed.items()):
            path = self._folder(incident_id_) / META
            try:
                meta = json.loads(path.read_text())
                meta["suppressed_alarms"] = int(meta.get("suppressed_alarms", 0)) + n
                write_json_atomic(path, meta)
            except (OSError, ValueError) as exc:
                log.warning("cannot count suppressed alarms in %s: %s", path, exc)
            del self._suppressed[incident_id_]

    # --- capture -------------------------------------------------------------------------------
    def poll(self, watermark_ns: int | None) -> list[str]:
        """Collect finished captures; start those whose after-window the watermark has passed."""
        done = []
        for iid, fut in list(self._inflight.items()):
            if not fut.done():
                continue
            del self._inflight[iid]
            try:
                fut.result()
            except Exception as exc:  # noqa: BLE001 - a failed capture is retried, never fatal
                self.on_error("incident_capture_failed")
                log.warning("incident %s capture failed (%s); retrying next iteration", iid, exc)
                continue
            self.open.pop(iid, None)
            self.completed.append(iid)
            done.append(iid)
            log.warning("incident %s complete: %s", iid, self._folder(iid))
        if watermark_ns is None:
            return done
        for iid, incident in list(self.open.items()):
            if iid not in self._inflight and watermark_ns >= incident.end_ns:
                snapshot = Incident.from_meta(incident.to_meta())
                self._inflight[iid] = self._pool.submit(self._capture, snapshot)
        return done

    def _capture(self, incident: Incident) -> Incident:
        client = InfluxClient(self.settings.influx, retries=1)
        try:
            return capture(incident, self.settings, client, self._folder(incident.id), self.max_events)
        finally:
            client.close()

    def wait(self, timeout_s: float = 60.0) -> list[str]:
        """Wait for running captures (tests, shutdown); returns the ids completed."""
        for fut in list(self._inflight.values()):
            try:
                fut.result(timeout=timeout_s)
            except Exception:  # noqa: BLE001,S110 - reported by poll()
                pass
        return self.poll(None)

    def close(self, timeout_s: float = 30.0) -> None:
        """Finish running captures; open incidents stay open on disk and resume after a restart."""
        self.wait(timeout_s)
        self._pool.shutdown(wait=False)


# ------------------------------------------------------------------------------------------------
# Report and plot.


def render_report(incident: Incident, folder: Path) -> str:
    i = incident
    models = i.models or {}
    lines = [
        f"# Incident `{i.id}`",
        "",
        f"**{len(i.hosts)} host(s)** alarmed between {_iso(i.first_alarm_ns)} and {_iso(i.last_alarm_ns)} "
        f"(combined decision of the detector).",
        "",
        "| | |",
        "| --- | --- |",
        f"| status | {i.status} |",
        f"| captured window | {_iso(i.start_ns)} → {_iso(i.end_ns)} |",
        f"| raw points | {i.events}{' (truncated)' if i.truncated else ''} |",
        f"| predictions | {i.predictions} |",
        f"| alarms suppressed by cool-down after capture | {i.suppressed_alarms} |",
        "",
        "## Hosts",
        "",
        "| host | first alarm | last alarm | alarmed intervals | peak score | top features | raw captured |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for ep in sorted(i.hosts.values(), key=lambda e: e.first_alarm_ns):
        ranked = sorted(ep.top_features.items(), key=lambda kv: (-kv[1], kv[0]))[:3]
        tops = ", ".join(f"`{f}` ({c:.2f})" for f, c in ranked) or "—"
        lines.append(
            f"| {ep.host} | {_iso(ep.first_alarm_ns)} | {_iso(ep.last_alarm_ns)} | {ep.alarms} | "
            f"{ep.peak_score:.3g} | {tops} | {'yes' if ep.captured else 'no (host cap)'} |"
        )
    lines += ["", "## Models and thresholds in force", ""]
    for name, info in models.items():
        lines.append(f"- **{name}**: `{json.dumps(info, sort_keys=True, default=str)}`")
    lines += [
        "",
        f"![scores and raw metrics]({PLOT})",
        "",
        "## Reproduce",
        "",
        f"`vigil replay --source bundle --bundle {folder} --into SCRATCH_DB --speed 0`, then run a detector",
        "with `VIGIL_INFLUX__RAW_DB=SCRATCH_DB` and the champion version above.",
        "",
    ]
    return "\n".join(lines)


def plot(incident: Incident, events: list[dict[str, Any]], preds: pd.DataFrame, path: Path) -> Path:
    """Combined score per host (threshold, alarms) above a few raw metrics, the alarm span shaded."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [
        ("cpu", "usage_idle", "cpu busy %"),
        ("mem", "used_percent", "mem used %"),
        ("system", "load1", "load1"),
    ]
    fig, axes = plt.subplots(1 + len(panels), 1, figsize=(11, 8), sharex=True)
    lo, hi = (pd.Timestamp(t, unit="ns", tz="UTC") for t in (incident.first_alarm_ns, incident.last_alarm_ns))
    hi = hi + pd.Timedelta(seconds=incident.interval_s)
    for ax in axes:
        ax.axvspan(lo, hi, color="tab:red", alpha=0.12)
        ax.grid(alpha=0.3)
    ax = axes[0]
    if not preds.empty and "source" in preds:
        comb = preds[preds["source"] == "combined"]
        for host, part in comb.groupby("host"):
            ax.plot(part["time"], pd.to_numeric(part["score"], errors="coerce"), lw=1.2, label=str(host))
            alarm = part[pd.to_numeric(part["is_anomaly"], errors="coerce") == 1]
            ax.scatter(
                alarm["time"], pd.to_numeric(alarm["score"], errors="coerce"), color="tab:red", s=14, zorder=5
            )
        ax.axhline(COMBINED_THRESHOLD, color="tab:red", ls="--", lw=1, label="threshold")
        ax.legend(fontsize=7, ncol=4, loc="upper left")
    else:
        ax.text(0.5, 0.5, "no predictions stored", transform=ax.transAxes, ha="center")
    ax.set_ylabel("combined score", fontsize=8)
    frame = pd.DataFrame(
        [
            {
                "m": e["measurement"],
                "host": e["tags"].get("host"),
                "cpu": e["tags"].get("cpu"),
                "t": e["time_ns"],
                **e["fields"],
            }
            for e in events
            if e["measurement"] in {p[0] for p in panels}
        ]
    )
    for ax, (m, f, label) in zip(axes[1:], panels, strict=True):
        part = frame[(frame["m"] == m)] if not frame.empty else frame
        if m == "cpu" and not part.empty:
            part = part[part["cpu"] == schema.CPU_TOTAL_TAG]
        if not part.empty and f in part:
            for host, p in part.groupby("host"):
                values = pd.to_numeric(p[f], errors="coerce")
                values = 100 - values if f == "usage_idle" else values
                ax.plot(pd.to_datetime(p["t"], unit="ns", utc=True), values, lw=1, label=str(host))
        ax.set_ylabel(label, fontsize=8)
    fig.suptitle(f"incident {incident.id}: {len(incident.hosts)} host(s)", fontsize=10)
    fig.autofmt_xdate()
    return save_figure(fig, path, dpi=80)


# ------------------------------------------------------------------------------------------------
# Reading bundles back (the CLI, stress reports).


def load_incident(folder: Path) -> dict[str, Any]:
    """``meta.json`` of a bundle, checked: a missing or unreadable file is an :class:`IncidentError`."""
    if not folder.is_dir():
        raise IncidentError(f"no incident {folder.name!r} (no folder {folder})")
    path = folder / META
    if not path.is_file():
        raise IncidentError(f"incident {folder.name}: {META} is missing in {folder}")
    try:
        meta = json.loads(path.read_text())
    except ValueError as exc:
        raise IncidentError(f"incident {folder.name}: {path} is not valid JSON ({exc})") from exc
    if not isinstance(meta, dict) or "id" not in meta or "status" not in meta:
        raise IncidentError(f"incident {folder.name}: {path} is not an incident's meta (no id/status)")
    if meta["status"] == "complete":
        missing = [name for name in BUNDLE_FILES if not (folder / name).is_file()]
        if missing:
            raise IncidentError(
                f"incident {folder.name} is damaged: {', '.join(missing)} missing in {folder} "
                f"(a complete bundle holds {', '.join(BUNDLE_FILES)})"
            )
    return meta


def list_incidents(root: Path) -> list[tuple[Path, dict[str, Any] | None, str | None]]:
    """Every bundle folder under ``root``, newest first: (folder, meta or None, error or None)."""
    if not root.is_dir():
        return []
    out = []
    for folder in sorted((p for p in root.iterdir() if p.is_dir()), reverse=True):
        try:
            out.append((folder, load_incident(folder), None))
        except IncidentError as exc:
            out.append((folder, None, str(exc)))
    return out


def find_incident(root: Path, host: str, start_ns: int, end_ns: int) -> dict[str, Any] | None:
    """The incident in which ``host`` alarmed within ``[start, end)`` (earliest such alarm), if any."""
    best: tuple[int, dict[str, Any]] | None = None
    for folder, meta, _ in list_incidents(root):
        if meta is None:
            continue
        ep = (meta.get("hosts") or {}).get(host)
        if not ep:
            continue
        first, last = int(ep["first_alarm_ns"]), int(ep["last_alarm_ns"])
        if first < end_ns and last >= start_ns and (best is None or first < best[0]):
            best = (first, {**meta, "path": str(folder)})
    return best[1] if best else None


def models_in_force(
    champion: Any, champion_threshold: float | None, online_threshold: float, settings: Settings
) -> dict[str, Any]:
    """The models block of an incident: versions and thresholds at the moment it opened."""
    from vigil.serving.scoring import ONLINE_MODEL_NAME, ONLINE_MODEL_VERSION

    return {
        "champion": None
        if champion is None
        else {"name": champion.name, "version": champion.version, "threshold": champion_threshold},
        "online": {"name": ONLINE_MODEL_NAME, "version": ONLINE_MODEL_VERSION, "threshold": online_threshold},
        "combined": {
            "name": settings.mlflow.model_name,
            "threshold": COMBINED_THRESHOLD,
            "conviction": CONVICTION,
            "rule": "alarm when both models flag, or one is CONVICTION times beyond its threshold (vigil.decision)",
        },
        "settings": {
            "incident_before_min": settings.incidents.before_min,
            "incident_after_min": settings.incidents.after_min,
            "incident_cooldown_min": settings.incidents.cooldown_min,
            "warmup_s": settings.detector.warmup_s,
            "feature_interval_s": settings.features.interval_s,
        },
    }
