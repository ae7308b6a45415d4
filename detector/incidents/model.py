"""What an incident is: its bundle's files, the host episodes and the incident ``meta.json`` holds,
its id, and the models block recorded when it opens."""

from __future__ import annotations

import hashlib
import json
import os
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from vigil.decision import COMBINED_THRESHOLD, CONVICTION
from vigil.errors import VigilError
from vigil.settings import IncidentSettings, Settings

NS = 1_000_000_000
META, EVENTS, REPORT, PLOT = "meta.json", "events.jsonl", "report.md", "incident.png"
#: Files a complete bundle holds.
BUNDLE_FILES = (META, EVENTS, REPORT, PLOT)


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
