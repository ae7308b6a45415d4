"""``vigil incidents list`` / ``vigil incidents show ID``: the detector's incident bundles."""

from __future__ import annotations

import json

import click

from vigil.settings import FeatureSettings, InfluxSettings, get_settings


@click.group()
def incidents() -> None:
    """Incident bundles the detector recorded (run_dir/incidents)."""


@incidents.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per incident.")
def list_cmd(as_json: bool) -> None:
    """Every incident, newest first: id, status, first alarm, hosts, raw points, verdict (from
    operators' labels: unreviewed, false positive, confirmed: <kind>); damaged ones flagged."""
    from detector.incidents.bundles import list_incidents
    from detector.incidents.model import incidents_root

    settings = get_settings()
    root = incidents_root(settings.incidents)
    found = list_incidents(root)
    if not found:
        click.echo(f"no incidents in {root}")
        return
    verdicts = _verdicts(
        settings.features, settings.influx, [meta for _, meta, _ in found if meta is not None]
    )
    for folder, meta, error in found:
        if as_json:
            click.echo(
                json.dumps(
                    {"id": folder.name, "error": error}
                    if meta is None
                    else {**_summary(meta), "verdict": verdicts.get(meta["id"], "unreviewed")}
                )
            )
        elif meta is None:
            click.echo(f"{folder.name:28}  DAMAGED  {error}")
        else:
            s = _summary(meta)
            click.echo(
                f"{s['id']:28}  {s['status']:8}  {s['first_alarm']}  {len(s['hosts'])} host(s): "
                f"{', '.join(s['hosts'][:5])}{' …' if len(s['hosts']) > 5 else ''}  {s['events']} raw points  "
                f"[{verdicts.get(meta['id'], 'unreviewed')}]"
            )


def _verdicts(features: FeatureSettings, influx: InfluxSettings, metas: list[dict]) -> dict[str, str]:
    """Incident id -> verdict from the labels around it (``vigil.labels.verdicts``): operators'
    ``vigil label`` / ``POST /labels``, stress ground truth. InfluxDB unreachable: said per incident."""
    from vigil.influx import InfluxClient, InfluxError
    from vigil.labels import load_labels, verdicts

    spans = {}
    for meta in metas:
        step = int(meta.get("interval_s", features.interval_s)) * 1_000_000_000
        spans[meta["id"]] = {
            host: (int(ep["first_alarm_ns"]), int(ep["last_alarm_ns"]) + step)
            for host, ep in (meta.get("hosts") or {}).items()
        }
    windows = [w for s in spans.values() for w in s.values()]
    if not windows:
        return {}
    lo, hi = min(w[0] for w in windows), max(w[1] for w in windows)
    try:
        labels = load_labels(InfluxClient(influx, retries=0, timeout_s=5), influx, lo, hi, details=True)
    except InfluxError as exc:
        click.echo(f"warning: verdicts unknown, InfluxDB unreachable ({exc})", err=True)
        return {i: "verdict unknown (InfluxDB unreachable)" for i in spans}
    return {i: verdicts(labels, hosts, i) for i, hosts in spans.items()}


def _summary(meta: dict) -> dict:
    return {
        "id": meta["id"],
        "status": meta["status"],
        "first_alarm": meta.get("first_alarm"),
        "last_alarm": meta.get("last_alarm"),
        "hosts": sorted(meta.get("hosts") or {}),
        "events": meta.get("events", 0),
    }


@incidents.command("show")
@click.argument("incident_id")
def show_cmd(incident_id: str) -> None:
    """The report of one incident (its report.md, or its meta while it is still open)."""
    from detector.incidents.bundles import load_incident
    from detector.incidents.model import REPORT, IncidentError, incidents_root

    root = incidents_root(get_settings().incidents)
    if "/" in incident_id or incident_id in ("", ".", ".."):
        raise click.ClickException(f"not an incident id: {incident_id!r}")
    folder = root / incident_id
    try:
        meta = load_incident(folder)
    except IncidentError as exc:
        raise click.ClickException(str(exc)) from exc
    if meta["status"] == "complete":
        click.echo((folder / REPORT).read_text())
        click.echo(f"bundle: {folder}")
    else:
        click.echo(f"incident {meta['id']} is open (its after-window has not passed yet); meta so far:")
        click.echo(json.dumps(meta, indent=2))
