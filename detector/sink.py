"""Where predictions go: a bounded in-memory buffer that spills to disk and drains to InfluxDB.

Why: InfluxDB can be down for minutes while the detector keeps scoring. Predictions are
kept in memory up to ``max_points`` lines; beyond that the oldest lines are spilled to
numbered files in ``spill_dir``; when InfluxDB answers again everything is sent oldest
first. Re-sending a line is harmless (same series and time overwrite), so the rule is
"send at least once", which is also what makes a restart after ``kill -9`` lossless:
before each checkpoint the in-memory lines are spilled (fsynced), so the checkpoint's
watermark never runs ahead of what is durable.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from vigil.influx import InfluxClient, InfluxError, InfluxUnavailable

log = logging.getLogger(__name__)


class PredictionSink:
    """Buffer + spill + drain of line-protocol lines for one database."""

    def __init__(
        self,
        client: InfluxClient,
        db: str,
        spill_dir: Path,
        max_points: int,
        batch_size: int = 5000,
        on_error: Callable[[str], None] | None = None,
        backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
        writers: int = 1,
        client_factory: Callable[[], InfluxClient] | None = None,
    ) -> None:
        self.client, self.db = client, db
        #: ``writers`` batches are sent at once, each on its own connection (``client_factory``):
        #: InfluxDB parses one write request on one core, so two requests keep both cores of a
        #: small machine busy while this process waits (``bench/detector_bench.py``).
        self.writers = max(1, writers) if client_factory is not None else 1
        self._client_factory = client_factory
        self._local = threading.local()
        self._count_lock = threading.Lock()
        self._pool = (
            ThreadPoolExecutor(max_workers=self.writers, thread_name_prefix="sink")
            if self.writers > 1
            else None
        )
        self.spill_dir = spill_dir
        self.spill_dir.mkdir(parents=True, exist_ok=True)
        self.max_points = max(1, max_points)
        self.batch_size = batch_size
        self.on_error = on_error or (lambda kind: None)
        self._memory: deque[str] = deque()
        self._backoff_s, self._max_backoff_s = backoff_s, max_backoff_s
        self._failures = 0
        self._next_attempt = 0.0
        self.written = 0
        self.last_error: str | None = None
        self._seq = max((self._file_seq(p) for p in self._spill_files()), default=0)
        self._spilled = sum(self._count_lines(p) for p in self._spill_files())

    # --- buffer ------------------------------------------------------------------------------
    def add(self, lines: Iterable[str]) -> None:
        self._memory.extend(lines)
        if len(self._memory) > self.max_points:
            self._spill(len(self._memory) - self.max_points // 2)

    @property
    def buffered(self) -> int:
        """Lines not yet in InfluxDB (memory + spilled)."""
        return len(self._memory) + self.spilled

    @property
    def spilled(self) -> int:
        return self._spilled

    @property
    def healthy(self) -> bool:
        return self._failures == 0

    def persist(self) -> None:
        """Make every buffered line durable (spill memory to disk); called before a checkpoint."""
        if self._memory:
            self._spill(len(self._memory))

    # --- draining ----------------------------------------------------------------------------
    def flush(self, force: bool = False) -> int:
        """Send spilled files then memory, oldest first; stop at the first failure.

        Returns lines written now. After a failure, attempts are spaced by exponential backoff
        (``force`` ignores it, e.g. at shutdown).
        """
        if not force and time.monotonic() < self._next_attempt:
            return 0
        sent = 0
        try:
            for path in self._spill_files():
                lines = path.read_text().splitlines()
                sent += self._send(lines)
                path.unlink()
                self._spilled -= len(lines)
            while self._memory:
                # up to ``writers`` batches at once; they leave memory only when all were sent
                n = min(self.batch_size * self.writers, len(self._memory))
                lines = [self._memory[i] for i in range(n)]
                batches = [lines[i : i + self.batch_size] for i in range(0, n, self.batch_size)]
                if self._pool is None or len(batches) == 1:
                    sent += sum(self._send(b) for b in batches)
                else:
                    sent += sum(self._pool.map(lambda b: self._send(b, self._thread_client()), batches))
                for _ in range(n):
                    self._memory.popleft()
        except InfluxUnavailable as exc:
            self._failures += 1
            delay = min(self._backoff_s * 2 ** (self._failures - 1), self._max_backoff_s)
            self._next_attempt = time.monotonic() + delay
            self.last_error = str(exc)
            self.on_error("influx_write_unavailable")
            log.warning(
                "InfluxDB write failed (%s); %d lines buffered, retry in %.1fs", exc, self.buffered, delay
            )
            return sent
        self._failures = 0
        self._next_attempt = 0.0
        self.last_error = None
        return sent

    def _thread_client(self) -> InfluxClient:
        client = getattr(self._local, "client", None)
        if client is None:
            assert self._client_factory is not None  # writers > 1 only with a factory
            client = self._local.client = self._client_factory()
        return client

    def _send(self, lines: list[str], client: InfluxClient | None = None) -> int:
        if not lines:
            return 0
        try:
            n = (client or self.client).write_lines(self.db, lines, precision="ns")
        except InfluxUnavailable:
            raise
        except InfluxError as exc:
            # 4xx: the server will never take these lines as they are (e.g. a field type
            # conflict). Keep them on disk for an operator instead of blocking the queue forever.
            rejected = (
                self.spill_dir / f"rejected-{int(time.time() * 1e3)}-{os.getpid()}-{threading.get_ident()}.lp"
            )
            rejected.write_text("\n".join(lines) + "\n")
            self.on_error("influx_write_rejected")
            log.error("InfluxDB refused %d prediction lines (%s); kept in %s", len(lines), exc, rejected)
            return 0
        with self._count_lock:
            self.written += n
        return n

    def close(self) -> None:
        """Stop the writer threads (after the last flush)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)

    # --- spill files -------------------------------------------------------------------------
    def _spill(self, n: int) -> None:
        n = min(n, len(self._memory))
        if n <= 0:
            return
        lines = [self._memory.popleft() for _ in range(n)]
        self._seq += 1
        path = self.spill_dir / f"spill-{self._seq:012d}.lp"
        tmp = path.with_suffix(".tmp")
        with open(tmp, "w") as fh:
            fh.write("\n".join(lines) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        self._spilled += n
        log.info("spilled %d prediction lines to %s", n, path.name)

    def _spill_files(self) -> list[Path]:
        return sorted(self.spill_dir.glob("spill-*.lp"))

    @staticmethod
    def _file_seq(path: Path) -> int:
        try:
            return int(path.stem.split("-")[1])
        except (IndexError, ValueError):
            return 0

    @staticmethod
    def _count_lines(path: Path) -> int:
        try:
            with open(path, "rb") as fh:
                return sum(1 for _ in fh)
        except OSError:
            return 0
