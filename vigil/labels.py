"""Labels: windows of a host's history that someone has judged, in ``vigil_labels``.

Why a module of its own in the core: labels come from four places — the seeder's ground truth
(``source=seed``), the stress scenarios (``stress``), operators (``operator``: ``vigil label``
and the detector's ``POST /labels``) and older hand-written ones (``manual``) — and three
readers use them: ``extract`` (joined onto the dataset), ``vigil incidents list`` (each
incident's verdict) and the label commands. One definition of what a label is, how it is
checked and how it is read keeps them agreeing.

A label is a verdict on ``[start, end)`` of one host: ``kind=false_positive`` says the window is
**normal** (an operator looked at an alarm and dismissed it); any other kind says it is an
**anomaly** of that kind. Labels are a bonus: Vigil trains and judges without any
(``docs/pipelines.md#labels-optional``); where they exist, a retrain keeps confirmed anomalies
out of what it learns as normal and holds its threshold above the false positives.

Bad labels are refused before anything is written (:class:`LabelError`, naming the field): an
empty host, a kind that is not a plain word, an end not after the start, a time outside
1970-2200 or more than a day ahead, or a window that overlaps another label of the same host
(two verdicts on one interval cannot both be true; the message names the label already there).

>>> lab = Label("web-1", "2026-03-01T10:00:00Z", "2026-03-01T10:05:00Z", FALSE_POSITIVE).validated()
>>> lab.label_id.startswith("op-web-1-20260301T100000Z-"), lab.is_false_positive
(True, True)
>>> Label("web-1", "2026-03-01T10:05:00Z", "2026-03-01T10:00:00Z", "spike").validated()
Traceback (most recent call last):
...
vigil.labels.LabelError: end: 2026-03-01 10:00:00+00:00 is not after start 2026-03-01 10:05:00+00:00
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import pandas as pd

from vigil.errors import VigilError
from vigil.influx import InfluxClient, InfluxError, quote_ident, quote_literal, time_literal
from vigil.lineprotocol import Point
from vigil.schema import LABELS
from vigil.settings import InfluxSettings, TrainingSettings

#: ``source`` of labels written by ``vigil label`` and ``POST /labels``.
OPERATOR = "operator"
#: Sources a label may carry (``manual``: written by hand before the label commands existed).
SOURCES = ("seed", "stress", OPERATOR, "manual")
#: The kind that marks a window as normal.
FALSE_POSITIVE = "false_positive"
#: Columns of :func:`load_labels`'s frame.
LABEL_COLUMNS = ["host", "kind", "start", "end", "label_id", "source"]
EARLIEST, LATEST = pd.Timestamp("1970-01-01", tz="UTC"), pd.Timestamp("2200-01-01", tz="UTC")
#: How far ahead of now a label may end (clocks differ; a label of next week is a mistake).
MAX_AHEAD = pd.Timedelta(days=1)
_KIND = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
MAX_HOST_CHARS = 253  # a DNS name
MAX_NOTE_CHARS = 2000


class LabelError(VigilError, ValueError):
    """A label cannot be accepted; the message starts with the field that is wrong."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field or message.split(":", 1)[0]


def to_utc(value: Any, field: str = "time") -> pd.Timestamp:
    """``value`` (ISO text, datetime, epoch ns int) as a UTC timestamp; naive times are UTC."""
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError, OverflowError) as exc:
        raise LabelError(f"{field}: cannot read {value!r} as a time ({exc})", field) from exc
    if ts is pd.NaT:
        raise LabelError(f"{field}: {value!r} is not a time", field)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


@dataclass(frozen=True)
class Label:
    """One verdict on ``[start, end)`` of ``host``."""

    host: str
    start: Any
    end: Any
    kind: str
    source: str = OPERATOR
    note: str = ""
    incident_id: str = ""
    label_id: str = ""

    @property
    def is_false_positive(self) -> bool:
        return self.kind == FALSE_POSITIVE

    def validated(self, now: pd.Timestamp | None = None) -> Label:
        """A checked copy with UTC timestamps and a ``label_id``; raises :class:`LabelError`."""
        host = (self.host or "").strip() if isinstance(self.host, str) else ""
        if not host:
            raise LabelError("host: must be a non-empty string", "host")
        if len(host) > MAX_HOST_CHARS or any(ch in host for ch in "\n\r\t"):
            raise LabelError(f"host: {host[:40]!r}... is not a host name", "host")
        if not isinstance(self.kind, str) or not _KIND.match(self.kind):
            raise LabelError(
                f"kind: {self.kind!r} must be 1-64 letters, digits, '_', '.' or '-' "
                f"(e.g. cpu_spike, or {FALSE_POSITIVE})",
                "kind",
            )
        if self.source not in SOURCES:
            raise LabelError(f"source: {self.source!r} is not one of {SOURCES}", "source")
        start, end = to_utc(self.start, "start"), to_utc(self.end, "end")
        now = now if now is not None else pd.Timestamp.now(tz="UTC")
        for name, ts in (("start", start), ("end", end)):
            if not EARLIEST <= ts < LATEST:
                raise LabelError(f"{name}: {ts} is outside 1970-2200", name)
        if end <= start:
            raise LabelError(f"end: {end} is not after start {start}", "end")
        if end > now + MAX_AHEAD:
            raise LabelError(f"end: {end} is more than a day ahead of now ({now:%Y-%m-%d %H:%M}Z)", "end")
        note = str(self.note or "")
        if len(note) > MAX_NOTE_CHARS:
            raise LabelError(f"note: {len(note)} characters, at most {MAX_NOTE_CHARS}", "note")
        label_id = self.label_id or new_label_id(host, start, end, self.kind)
        return replace(self, host=host, start=start, end=end, note=note, label_id=label_id)

    def point(self) -> Point:
        start, end = int(self.start.value), int(self.end.value)
        return LABELS.point(
            {"host": self.host, "kind": self.kind, "source": self.source, "label_id": self.label_id},
            {
                "end_ns": end,
                "duration_s": (end - start) / 1e9,
                "description": self.note or None,
                "incident_id": self.incident_id or None,
            },
            start,
        )


def new_label_id(host: str, start: pd.Timestamp, end: pd.Timestamp, kind: str) -> str:
    """``op-<host>-<start>-<hash6>``: readable, and the same verdict twice gets the same id."""
    digest = hashlib.blake2b(f"{host}|{start.value}|{end.value}|{kind}".encode(), digest_size=3).hexdigest()
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", host)[:40]
    return f"op-{safe}-{start:%Y%m%dT%H%M%SZ}-{digest}"


def training_sources(training: TrainingSettings) -> tuple[str, ...]:
    """The label sources a retrain learns from (``training.label_sources``)."""
    return tuple(s.strip() for s in training.label_sources.split(",") if s.strip())


# ------------------------------------------------------------------------------------------------
# Reading and writing


def load_labels(
    client: InfluxClient,
    influx: InfluxSettings,
    start: datetime | pd.Timestamp | str,
    end: datetime | pd.Timestamp | str,
    *,
    source: str | None = None,
    hosts: Sequence[str] | None = None,
    details: bool = False,
) -> pd.DataFrame:
    """Label windows overlapping ``[start, end)``: columns host, kind, start, end, label_id, source
    (``details``: also description, incident_id). No ``vigil`` database or no label yet: empty."""
    start_ts, end_ts = to_utc(start, "start"), to_utc(end, "end")
    where = f"time < {time_literal(end_ts)} AND {quote_ident('end_ns')} > {int(start_ts.value)}"
    if source is not None:
        where += f" AND {quote_ident('source')} = {quote_literal(source)}"
    if hosts:
        where += " AND (" + " OR ".join(f"{quote_ident('host')} = {quote_literal(h)}" for h in hosts) + ")"
    fields = ["end_ns", "host", "kind", "label_id", "source"] + (
        ["description", "incident_id"] if details else []
    )
    q = f"SELECT {', '.join(quote_ident(f) for f in fields)} FROM {quote_ident(LABELS.name)} WHERE {where}"
    columns = LABEL_COLUMNS + (["description", "incident_id"] if details else [])
    try:
        df = client.query_df(influx.vigil_db, q)
    except InfluxError as exc:
        if "database not found" in str(exc):
            return pd.DataFrame(columns=columns)
        raise
    if df.empty:
        return pd.DataFrame(columns=columns)
    out = pd.DataFrame(
        {
            "host": df["host"],
            "kind": df["kind"],
            "start": df["time"],
            "end": pd.to_datetime(df["end_ns"].astype("int64"), unit="ns", utc=True),
            "label_id": df["label_id"],
            "source": df["source"] if "source" in df else "",
        }
    )
    if details:
        for col in ("description", "incident_id"):
            out[col] = df[col].fillna("").astype(str) if col in df else ""
    return out.sort_values(["host", "start"]).reset_index(drop=True)[columns]


def conflicts(new: Label, existing: pd.DataFrame) -> pd.DataFrame:
    """Rows of ``existing`` (a :func:`load_labels` frame) of ``new.host`` overlapping ``new``'s window."""
    if existing.empty:
        return existing
    same = existing[(existing["host"] == new.host) & (existing["label_id"] != new.label_id)]
    return same[(same["start"] < new.end) & (same["end"] > new.start)]


def add_labels(
    client: InfluxClient, influx: InfluxSettings, labels: Iterable[Label], *, now: pd.Timestamp | None = None
) -> list[Label]:
    """Check ``labels`` (each, against each other and against those stored) and write them all, or
    none: the first problem raises :class:`LabelError`. Returns the stored labels (with ids).

    Writing the same verdict again (same host, window and kind: same id) is accepted and stores
    one label (InfluxDB keeps one point per series and time).
    """
    checked = [lab.validated(now) for lab in labels]
    if not checked:
        raise LabelError("labels: nothing to add", "labels")
    for i, a in enumerate(checked):
        for b in checked[i + 1 :]:
            if a.host == b.host and a.start < b.end and b.start < a.end and a.label_id != b.label_id:
                raise LabelError(
                    f"start: {a.host} {a.start}..{a.end} overlaps {b.start}..{b.end} in the same request",
                    "start",
                )
    lo = min(lab.start for lab in checked)
    hi = max(lab.end for lab in checked)
    hosts = sorted({lab.host for lab in checked})
    existing = load_labels(client, influx, lo, hi, hosts=hosts)
    for lab in checked:
        clash = conflicts(lab, existing)
        if not clash.empty:
            row = clash.iloc[0]
            raise LabelError(
                f"start: {lab.host} {lab.start}..{lab.end} overlaps label {row['label_id']} "
                f"({row['source']}, {row['kind']}, {row['start']}..{row['end']}); one interval has one verdict",
                "start",
            )
    if influx.create_databases:
        client.create_database(influx.vigil_db)
    client.write_points(influx.vigil_db, [lab.point() for lab in checked])
    return checked


def verdicts(labels: pd.DataFrame, host_windows: dict[str, tuple[int, int]], incident_id: str = "") -> str:
    """An incident's verdict from the labels around it: ``false positive``, ``confirmed: <kind>``,
    ``mixed`` (hosts disagree) or ``unreviewed``.

    ``host_windows``: host -> (first alarm ns, last alarm end ns). A label counts when it names the
    incident (``incident_id``) or overlaps a host's alarmed span.
    """
    found: set[str] = set()
    if labels.empty:
        return "unreviewed"
    for host, (lo, hi) in host_windows.items():
        rows = labels[labels["host"] == host]
        named = rows["incident_id"] == incident_id if incident_id and "incident_id" in rows else False
        hit = rows[named | ((rows["start"].astype("int64") < hi) & (rows["end"].astype("int64") > lo))]
        found |= {"false positive" if k == FALSE_POSITIVE else f"confirmed: {k}" for k in hit["kind"]}
    if not found:
        return "unreviewed"
    return found.pop() if len(found) == 1 else "mixed (" + ", ".join(sorted(found)) + ")"
