"""Seed labelled synthetic history into InfluxDB (``vigil seed``, the demo, the tests), and read
the labels back.

The hosts come from the core's generator (:func:`vigil.synthetic.generate_host`); this module is
the writing: metrics through parallel writers, label windows as ``vigil_labels`` (source=seed).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import pandas as pd
from tqdm import tqdm

from toolkit.seed.writer import ParallelWriter
from vigil.influx import InfluxClient
from vigil.lineprotocol import Point
from vigil.schema import LABELS
from vigil.settings import CollectionSettings, InfluxSettings
from vigil.synthetic.history import generate_host, host_names
from vigil.synthetic.lines import MEASUREMENTS, host_lines
from vigil.synthetic.profiles import HostProfile

log = logging.getLogger(__name__)

LABEL_COLUMNS = ["host", "kind", "start", "end", "label_id"]


@dataclass
class SeedResult:
    hosts: list[str]
    points: int
    labels: pd.DataFrame  # host, kind, start, end, label_id (+ injected_start/end, severity)
    start: pd.Timestamp
    end: pd.Timestamp
    seconds: float
    anomalous_share: float
    interval_s: int = 10
    seed: int = 0
    anomalies: bool = True
    profiles: dict[str, HostProfile] = field(default_factory=dict)


def _start_seconds(start: datetime | pd.Timestamp | str | None, hours: float, dt: int) -> int:
    if start is None:
        now = int(time.time())
        return (now - int(hours * 3600)) // dt * dt
    ts = pd.Timestamp(start)
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return int(ts.value // 1_000_000_000) // dt * dt


def seed_history(
    client: InfluxClient,
    influx: InfluxSettings,
    collection: CollectionSettings,
    *,
    start: datetime | pd.Timestamp | str | None = None,
    hours: float = 24.0,
    hosts: int | Sequence[str] = 5,
    seed: int = 42,
    anomalies: bool = True,
    progress: bool = True,
    db: str | None = None,
    threads: int = 2,
    batch_size: int | None = None,
) -> SeedResult:
    """Write ``hours`` of 10 s Telegraf-schema history for ``hosts`` and their labels.

    Raw metrics go to ``db`` (default ``influx.raw_db``), label windows to
    ``influx.vigil_db`` (measurement ``vigil_labels``, source=seed).
    """
    if hours <= 0:
        raise ValueError("hours must be positive")
    dt = int(collection.interval_s)
    names = host_names(hosts)
    start_s = _start_seconds(start, hours, dt)
    n = int(hours * 3600 // dt)
    raw_db = db or influx.raw_db
    if influx.create_databases:
        client.create_database(raw_db)
        client.create_database(influx.vigil_db)
    total_points = n * len(names) * len(MEASUREMENTS)
    began = time.perf_counter()
    bar = tqdm(total=total_points, unit="pt", unit_scale=True, desc="seeding", disable=not progress)
    lines_per_write = batch_size or client.batch_size
    writer = ParallelWriter(
        client,
        influx,
        raw_db,
        threads=threads,
        precision="s",
        batch_size=lines_per_write,
        on_written=bar.update,
    )
    all_labels: list[dict[str, object]] = []
    anomalous = 0
    profiles: dict[str, HostProfile] = {}
    try:
        for index, name in enumerate(names):
            hist = generate_host(index, name, start_s=start_s, n=n, dt=dt, seed=seed, anomalies=anomalies)
            profiles[name] = hist.profile
            all_labels += hist.labels
            anomalous += int(hist.anomalous.sum())
            for chunk in host_lines(name, hist.values, hist.t_s, hist.profile.n_cpus, lines_per_write):
                writer.put(chunk)
        written = writer.close()
    finally:
        bar.close()
    labels = pd.DataFrame(all_labels, columns=[*LABEL_COLUMNS, "injected_start", "injected_end", "severity"])
    if len(labels):
        client.write_points(influx.vigil_db, _label_points(labels))
    seconds = time.perf_counter() - began
    log.info("seeded %d points for %d hosts in %.1fs; %d labels", written, len(names), seconds, len(labels))
    return SeedResult(
        hosts=names,
        points=written,
        labels=labels,
        start=pd.Timestamp(start_s, unit="s", tz="UTC"),
        end=pd.Timestamp(start_s + n * dt, unit="s", tz="UTC"),
        seconds=seconds,
        anomalous_share=anomalous / max(1, n * len(names)),
        interval_s=dt,
        seed=seed,
        anomalies=anomalies,
        profiles=profiles,
    )


def _label_points(labels: pd.DataFrame) -> Iterator[Point]:
    for row in labels.itertuples(index=False):
        start_ns, end_ns = int(row.start.value), int(row.end.value)
        yield LABELS.point(
            {"host": row.host, "kind": row.kind, "source": "seed", "label_id": row.label_id},
            {
                "end_ns": end_ns,
                "duration_s": (end_ns - start_ns) / 1e9,
                "severity": float(row.severity),
                "description": f"seeded {row.kind}; injected {row.injected_start.isoformat()} .. "
                f"{row.injected_end.isoformat()}",
            },
            start_ns,
        )
