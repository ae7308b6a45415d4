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

One job per module: ``model`` (the bundle's files, :class:`Incident`, its models block),
``capture`` (InfluxDB into the files), ``recorder`` (the loop's :class:`IncidentRecorder`),
``report`` / ``plot`` (``report.md`` / ``incident.png``), ``bundles`` (reading bundles back),
``cli`` (``vigil incidents``). The names below are re-exported from them.
"""

from __future__ import annotations

from detector.incidents.bundles import find_incident, list_incidents, load_incident
from detector.incidents.capture import field_types, read_predictions, read_raw_events
from detector.incidents.model import (
    BUNDLE_FILES,
    EVENTS,
    META,
    NS,
    PLOT,
    REPORT,
    HostEpisode,
    Incident,
    IncidentError,
    incident_id,
    incidents_root,
    models_in_force,
    write_json_atomic,
)
from detector.incidents.recorder import IncidentRecorder
from detector.incidents.report import render_report

__all__ = [
    "BUNDLE_FILES",
    "EVENTS",
    "META",
    "NS",
    "PLOT",
    "REPORT",
    "HostEpisode",
    "Incident",
    "IncidentError",
    "IncidentRecorder",
    "field_types",
    "find_incident",
    "incident_id",
    "incidents_root",
    "list_incidents",
    "load_incident",
    "models_in_force",
    "read_predictions",
    "read_raw_events",
    "render_report",
    "write_json_atomic",
]
