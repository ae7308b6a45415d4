"""The collection loop: gather every enabled input on Telegraf's interval grid, buffer, write."""

from __future__ import annotations

import logging
import math
import socket
import threading
import time

from toolkit.collector.base import Gatherer
from toolkit.collector.buffer import WriteBuffer
from toolkit.collector.config import CollectorConfig, load_config
from toolkit.collector.cpu import CpuInput
from toolkit.collector.diskio import DiskioInput
from toolkit.collector.mem import MemInput
from toolkit.collector.net import NetInput
from toolkit.collector.processes import ProcessesInput
from toolkit.collector.procstat import ProcstatInput
from toolkit.collector.system import SystemInput
from vigil.influx import InfluxClient
from vigil.lineprotocol import Point
from vigil.schema import HOST_TAG
from vigil.settings import Settings

log = logging.getLogger(__name__)


def build_inputs(config: CollectorConfig) -> list[Gatherer]:
    """One gatherer per input that telegraf.conf enables and this machine can read."""
    inputs: list[Gatherer] = []
    if config.enabled("cpu"):
        inputs.append(CpuInput(config.inputs["cpu"][0]))
    if config.enabled("mem"):
        inputs.append(MemInput())
    if config.enabled("net"):
        inputs.append(NetInput(config.inputs["net"][0]))
    if config.enabled("diskio"):
        inputs.append(DiskioInput(config.inputs["diskio"][0]))
    if config.enabled("system"):
        inputs.append(SystemInput())
    if config.enabled("processes"):
        inputs.append(ProcessesInput())
    if config.procstat:
        inputs.append(ProcstatInput(config.procstat))
    return inputs


class Collector:
    """Gathers like Telegraf and writes to ``settings.influx.raw_db`` (or ``db``)."""

    def __init__(
        self,
        settings: Settings,
        *,
        config: CollectorConfig | None = None,
        interval_s: float | None = None,
        db: str | None = None,
        host: str | None = None,
    ) -> None:
        self.settings = settings
        self.config = config or load_config(settings.influx, settings.detector)
        self.interval_s = float(interval_s or settings.collection.interval_s or self.config.interval_s)
        self.host = host or settings.collection.hostname or socket.gethostname()
        self.inputs = build_inputs(self.config)
        # One try per flush and a short timeout: the loop must not stall on a dead server.
        client = InfluxClient(
            settings.influx,
            retries=0,
            timeout_s=min(settings.influx.timeout_s, max(1.0, self.interval_s / 2)),
        )
        self.buffer = WriteBuffer(
            client,
            db or settings.influx.raw_db,
            limit=self.config.buffer_limit,
            batch_size=self.config.batch_size,
            create_db=settings.influx.create_databases,
        )
        self.errors = 0

    def collect(self, time_ns: int | None = None) -> list[Point]:
        """One gather of every input (an input that fails is logged and skipped, like Telegraf)."""
        if time_ns is None:
            time_ns = int(time.time()) * 1_000_000_000
        points: list[Point] = []
        for gatherer in self.inputs:
            try:
                gathered = gatherer.gather(time_ns)
            except Exception as exc:  # one broken input must not stop the others
                self.errors += 1
                log.error("input %s failed: %s", gatherer.name, exc)
                continue
            for p in gathered:
                points.append(Point(p.measurement, p.tags | {HOST_TAG: self.host}, p.fields, p.time_ns))
        return points

    def collect_and_flush(self, time_ns: int | None = None) -> int:
        points = self.collect(time_ns)
        self.buffer.add(p.to_line() for p in points)
        self.buffer.flush()
        return len(points)

    def once(self, prime_s: float = 1.0) -> int:
        """Prime the inputs that need two samples, then gather and write once (for tests and smoke runs)."""
        self.collect()
        time.sleep(prime_s)
        return self.collect_and_flush()

    def run(self, stop: threading.Event) -> None:
        """Gather on the interval grid (:00, :10, ...) until ``stop`` is set; flush what is left."""
        log.info(
            "collecting %s every %.0fs as host=%s into %s at %s",
            ",".join(g.name for g in self.inputs),
            self.interval_s,
            self.host,
            self.buffer.db,
            self.buffer.client.url,
        )
        next_t = math.ceil(time.time() / self.interval_s) * self.interval_s
        while not stop.wait(max(0.0, next_t - time.time())):
            n = self.collect_and_flush(int(next_t) * 1_000_000_000)
            log.debug("gathered %d points, %d buffered", n, len(self.buffer))
            next_t += self.interval_s
            if next_t < time.time():  # we fell behind (suspended?): skip to the next boundary
                next_t = math.ceil(time.time() / self.interval_s) * self.interval_s
        if self.buffer.lines:
            self.buffer.flush()
        log.info(
            "collector stopped: %d points written, %d buffered, %d dropped",
            self.buffer.written,
            len(self.buffer),
            self.buffer.dropped,
        )
