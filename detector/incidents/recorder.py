"""The recorder the detector loop drives: alarms into incidents (cool-down, grouping), captures
off the loop's thread, open incidents restored after a restart."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pandas as pd

from detector.incidents.capture import capture
from detector.incidents.model import (
    META,
    NS,
    HostEpisode,
    Incident,
    _iso,
    incident_id,
    incidents_root,
    write_json_atomic,
)
from vigil.influx import InfluxClient
from vigil.settings import Settings

log = logging.getLogger(__name__)


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
            return capture(incident, self.settings.influx, client, self._folder(incident.id), self.max_events)
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
