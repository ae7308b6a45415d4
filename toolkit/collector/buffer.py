"""A bounded write buffer that behaves like Telegraf's output buffer during an InfluxDB outage.

Why not the client's own retries: they sleep, and a collector that sleeps misses
intervals. Here a write is tried once per flush; on a connection error or 5xx
the points stay buffered for the next flush, and when the buffer is full the
oldest points are dropped (Telegraf's ``metric_buffer_limit``), so memory is
bounded however long the outage. A 4xx answer drops the batch with the server's
message, as Telegraf does, because re-sending it can never succeed.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterable

from vigil.influx import InfluxClient, InfluxError, InfluxUnavailable

log = logging.getLogger(__name__)


class WriteBuffer:
    def __init__(
        self, client: InfluxClient, db: str, *, limit: int, batch_size: int, create_db: bool
    ) -> None:
        self.client = client
        self.db = db
        self.limit = limit
        self.batch_size = batch_size
        self.lines: deque[str] = deque()
        self.dropped = 0
        self.written = 0
        self.rejected = 0
        self.outage = False
        self._db_ready = not create_db

    def __len__(self) -> int:
        return len(self.lines)

    def add(self, lines: Iterable[str]) -> None:
        for line in lines:
            if len(self.lines) >= self.limit:
                self.lines.popleft()
                self.dropped += 1
            self.lines.append(line)

    def flush(self) -> bool:
        """Write everything buffered; False if InfluxDB is unreachable (points kept)."""
        try:
            if not self._db_ready:
                self.client.ping()
                self._db_ready = self.client.create_database(self.db) or True
            while self.lines:
                batch = [self.lines[i] for i in range(min(self.batch_size, len(self.lines)))]
                try:
                    self.client.write_lines(self.db, batch, precision="ns")
                except InfluxUnavailable:
                    raise
                except InfluxError as exc:
                    self.rejected += len(batch)
                    log.error("InfluxDB refused %d points, dropping them: %s", len(batch), exc)
                    if "database not found" in str(exc):
                        self._db_ready = False
                for _ in batch:
                    self.lines.popleft()
                self.written += len(batch)
        except InfluxUnavailable as exc:
            if not self.outage:
                log.warning(
                    "InfluxDB unavailable (%s); buffering up to %d points (%d buffered)",
                    exc,
                    self.limit,
                    len(self.lines),
                )
            else:
                log.debug(
                    "InfluxDB still unavailable; %d buffered, %d dropped", len(self.lines), self.dropped
                )
            self.outage = True
            return False
        if self.outage:
            log.warning(
                "InfluxDB reachable again; buffer flushed (%d points dropped during outage)", self.dropped
            )
            self.outage = False
        return True
