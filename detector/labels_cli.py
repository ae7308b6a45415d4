"""``vigil label add | false-positive | list``: operators' verdicts become labels (``source=operator``).

* ``add --host H --from T --to T --kind K [--note N]`` — ``[T, T)`` of ``H`` was an anomaly of
  kind ``K`` (or, with ``--kind false_positive``, was normal);
* ``false-positive INCIDENT_ID [--note N]`` — every host of an incident bundle was normal over its
  alarmed span (first alarm to the end of the last alarmed interval): one ``false_positive``
  label per host, naming the incident;
* ``list [--host H] [--from T] [--to T] [--source S] [--json]`` — labels overlapping a window
  (default: the last 7 days), every source.

The next retrain learns from them (``docs/pipelines.md#labels-optional``): confirmed anomalies are
kept out of what it learns as normal, false positives must stay below its threshold.

Bad input exits with status 2 and ``error: <field>: <why>``, writing nothing: a malformed time, an
end not after the start, an unknown incident, a window overlapping a label already stored for the
host, or InfluxDB unreachable.
"""

from __future__ import annotations

import json
from typing import NoReturn

import click
import pandas as pd

from vigil.cli_errors import CliError
from vigil.influx import InfluxClient, InfluxError
from vigil.labels import FALSE_POSITIVE, OPERATOR, SOURCES, Label, LabelError, add_labels, load_labels, to_utc
from vigil.settings import get_settings


def _fail(message: str) -> NoReturn:
    raise CliError(message)


def _write(labels: list[Label]) -> list[Label]:
    settings = get_settings()
    try:
        return add_labels(InfluxClient(settings.influx), settings.influx, labels)
    except LabelError as exc:
        _fail(str(exc))
    except InfluxError as exc:
        _fail(f"InfluxDB at {settings.influx.base_url}: {exc} (nothing written)")
    return []


def _show(stored: list[Label]) -> None:
    for lab in stored:
        verdict = "normal (false positive)" if lab.is_false_positive else f"anomaly ({lab.kind})"
        click.echo(f"{lab.label_id}  {lab.host}  {lab.start.isoformat()} .. {lab.end.isoformat()}  {verdict}")


@click.group("label")
def label() -> None:
    """Operators' verdicts on windows of history (vigil_labels, source=operator)."""


@label.command("add")
@click.option("--host", required=True, help="Host the window belongs to.")
@click.option("--from", "start", required=True, help="Window start (ISO time, UTC when no zone).")
@click.option("--to", "end", required=True, help="Window end (ISO time, exclusive).")
@click.option(
    "--kind", required=True, help=f"What happened (e.g. cpu_spike), or {FALSE_POSITIVE} for normal."
)
@click.option("--note", default="", help="Free text kept with the label.")
def add_cmd(host: str, start: str, end: str, kind: str, note: str) -> None:
    """Label [--from, --to) of --host as an anomaly of --kind (or normal: --kind false_positive)."""
    _show(_write([Label(host, start, end, kind, OPERATOR, note)]))


@label.command("false-positive")
@click.argument("incident_id")
@click.option("--note", default="", help="Why it was not an incident.")
def false_positive_cmd(incident_id: str, note: str) -> None:
    """Mark every host of incident INCIDENT_ID as normal over its alarmed span."""
    from detector.incidents import IncidentError, incidents_root, load_incident

    if "/" in incident_id or incident_id in ("", ".", ".."):
        _fail(f"incident: not an incident id: {incident_id!r}")
    settings = get_settings()
    try:
        meta = load_incident(incidents_root(settings.incidents) / incident_id)
    except IncidentError as exc:
        _fail(f"incident: {exc}")
    interval_ns = int(meta.get("interval_s", settings.features.interval_s)) * 1_000_000_000
    hosts = meta.get("hosts") or {}
    if not hosts:
        _fail(f"incident: {incident_id} names no host")
    labels = [
        Label(
            host,
            pd.Timestamp(int(ep["first_alarm_ns"]), unit="ns", tz="UTC"),
            pd.Timestamp(int(ep["last_alarm_ns"]) + interval_ns, unit="ns", tz="UTC"),
            FALSE_POSITIVE,
            OPERATOR,
            note or f"false positive: incident {incident_id}",
            incident_id,
        )
        for host, ep in sorted(hosts.items())
    ]
    _show(_write(labels))


@label.command("list")
@click.option("--host", "hosts", multiple=True, help="Only these hosts (repeatable).")
@click.option("--from", "start", default=None, help="Window start (default: 7 days ago).")
@click.option("--to", "end", default=None, help="Window end (default: now).")
@click.option("--source", type=click.Choice(SOURCES), default=None, help="Only labels of this source.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per label.")
def list_cmd(
    hosts: tuple[str, ...], start: str | None, end: str | None, source: str | None, as_json: bool
) -> None:
    """Labels overlapping a window, oldest first, with their source and verdict."""
    settings = get_settings()
    try:
        end_ts = to_utc(end, "to") if end else pd.Timestamp.now(tz="UTC")
        start_ts = to_utc(start, "from") if start else end_ts - pd.Timedelta(days=7)
        if start_ts >= end_ts:
            raise LabelError(f"from: {start_ts} is not before --to {end_ts}", "from")
        frame = load_labels(
            InfluxClient(settings.influx),
            settings.influx,
            start_ts,
            end_ts,
            source=source,
            hosts=hosts or None,
            details=True,
        )
    except LabelError as exc:
        _fail(str(exc))
    except InfluxError as exc:
        _fail(f"InfluxDB at {settings.influx.base_url}: {exc}")
    if frame.empty:
        click.echo(f"no labels between {start_ts.isoformat()} and {end_ts.isoformat()}")
        return
    for row in frame.sort_values("start").itertuples(index=False):
        verdict = "normal" if row.kind == FALSE_POSITIVE else "anomaly"
        if as_json:
            click.echo(
                json.dumps(
                    {
                        "label_id": row.label_id,
                        "host": row.host,
                        "start": row.start.isoformat(),
                        "end": row.end.isoformat(),
                        "kind": row.kind,
                        "verdict": verdict,
                        "source": row.source,
                        "incident_id": row.incident_id,
                        "note": row.description,
                    }
                )
            )
        else:
            extra = f"  incident {row.incident_id}" if row.incident_id else ""
            click.echo(
                f"{row.start.isoformat()} .. {row.end.isoformat()}  {row.host:20}  {verdict:7}  {row.kind:16}  "
                f"{row.source:8}  {row.label_id}{extra}"
            )
