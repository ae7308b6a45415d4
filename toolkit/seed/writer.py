"""Parallel batch writer: InfluxDB 1.x ingests about twice as fast from two connections as from one."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable

from vigil.influx import InfluxClient
from vigil.settings import InfluxSettings


def clone_client(client: InfluxClient, influx: InfluxSettings) -> InfluxClient:
    """A client with the same server, credentials and retry policy (a requests.Session per thread)."""
    twin = InfluxClient(
        influx,
        url=client.url,
        timeout_s=client.timeout_s,
        batch_size=client.batch_size,
        retries=client.retries,
        backoff_s=client.backoff_s,
        rp=client.rp or "",
    )
    twin.rp = client.rp
    twin.session.auth = client.session.auth
    return twin


class ParallelWriter:
    """Feed chunks of lines with :meth:`put`; ``threads`` workers write them; :meth:`close` waits.

    The queue is bounded, so line building never runs far ahead of the server (memory stays flat).
    The first write error stops the workers and is re-raised by :meth:`put` / :meth:`close`.
    """

    def __init__(
        self,
        client: InfluxClient,
        influx: InfluxSettings,
        db: str,
        *,
        threads: int = 2,
        precision: str = "s",
        batch_size: int | None = None,
        on_written: Callable[[int], None] | None = None,
    ) -> None:
        self.db = db
        self.precision = precision
        self.on_written = on_written
        self.queue: queue.Queue[list[str] | None] = queue.Queue(maxsize=threads * 4)
        self.error: BaseException | None = None
        self.written = 0
        self._lock = threading.Lock()
        clients = [clone_client(client, influx) for _ in range(threads)]
        for c in clients:
            c.batch_size = batch_size or c.batch_size
        self._workers = [
            threading.Thread(target=self._work, args=(clients[i],), daemon=True, name=f"seed-writer-{i}")
            for i in range(threads)
        ]
        for w in self._workers:
            w.start()

    def _work(self, client: InfluxClient) -> None:
        try:
            while True:
                chunk = self.queue.get()
                if chunk is None:
                    return
                if self.error is not None:
                    continue  # drain after a failure
                try:
                    n = client.write_lines(self.db, chunk, precision=self.precision)
                except BaseException as exc:  # noqa: BLE001 - handed to the caller
                    self.error = exc
                    continue
                with self._lock:
                    self.written += n
                    if self.on_written:
                        self.on_written(n)
        finally:
            client.close()

    def put(self, chunk: list[str]) -> None:
        if self.error is not None:
            raise self.error
        self.queue.put(chunk)

    def close(self) -> int:
        for _ in self._workers:
            self.queue.put(None)
        for w in self._workers:
            w.join()
        if self.error is not None:
            raise self.error
        return self.written
