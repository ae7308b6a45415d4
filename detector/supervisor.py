"""``vigil detector run --workers N``: N shard processes of the detector under one supervisor.

Why processes: one detector is one Python interpreter, so it scores on one core at a time
(the GIL), while the machine has more. The shard mechanism already splits hosts by a stable
hash (:mod:`detector.sharding`) and gives each shard its own state folder
(``run_dir/detector/shard-I-of-N``); the supervisor starts one ``vigil detector run`` per shard
with ``VIGIL_DETECTOR__SHARD_INDEX`` / ``VIGIL_DETECTOR__SHARD_COUNT`` set, and keeps them running:

* a worker that exits (crash, ``kill -9``, out of memory) is started again after a back-off
  (1 s, doubling to 30 s while it keeps dying within a minute); it resumes from its own
  checkpoint, so nothing is lost or scored twice (``tests/integration/test_detector_workers.py``);
* SIGTERM or SIGINT is forwarded to every worker, which drains, checkpoints and exits; workers
  still running after ``stop_timeout_s`` are killed;
* each worker dies with the supervisor (``PR_SET_PDEATHSIG``), so a ``kill -9`` of the
  supervisor does not leave unsupervised workers behind.

Worker ``i`` serves its HTTP API (``/health``, ``/metrics``, the scoring API for its own
hosts) on ``detector_port + i``. Composes with instance-level sharding: instance ``k`` of
``K`` (``VIGIL_DETECTOR__SHARD_INDEX`` / ``VIGIL_DETECTOR__SHARD_COUNT``) with ``N`` workers runs shards
``k*N .. k*N+N-1`` of ``K*N``.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

from vigil.settings import DetectorSettings

log = logging.getLogger(__name__)

#: Back-off before restarting a worker that died: first, and longest.
RESTART_BACKOFF_S, MAX_RESTART_BACKOFF_S = 1.0, 30.0
#: A worker that ran this long before dying is restarted after the first back-off again.
STABLE_AFTER_S = 60.0
PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Ask Linux to send this process SIGTERM when its parent (the supervisor) dies."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


@dataclass
class Worker:
    """One shard process and its restart bookkeeping."""

    index: int  # 0..workers-1 within this supervisor
    shard_index: int
    shard_count: int
    port: int
    proc: subprocess.Popen | None = None
    started_at: float = 0.0
    restarts: int = 0
    backoff_s: float = RESTART_BACKOFF_S
    restart_at: float | None = None
    exit_codes: list[int] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{self.shard_index}/{self.shard_count}"


class Supervisor:
    """Starts, watches and stops the shard workers of one detector instance."""

    def __init__(
        self,
        detector: DetectorSettings,
        workers: int,
        worker_args: list[str] | None = None,
        stop_timeout_s: float = 60.0,
        poll_s: float = 0.5,
    ) -> None:
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self.detector = detector
        self.worker_args = list(worker_args or [])
        self.stop_timeout_s = stop_timeout_s
        self.poll_s = poll_s
        self.stop_event = threading.Event()
        count = detector.shard_count * workers
        self.workers = [
            Worker(
                index=i,
                shard_index=detector.shard_index * workers + i,
                shard_count=count,
                port=detector.port + i if detector.port else 0,
            )
            for i in range(workers)
        ]

    def command(self) -> list[str]:
        """A worker: ``vigil detector run`` as one process (``--workers 1``), same interpreter."""
        return [sys.executable, "-m", "detector.cli", "run", "--workers", "1", *self.worker_args]

    def worker_env(self, worker: Worker) -> dict[str, str]:
        """This process's environment with the worker's shard and port (everything else inherited)."""
        return {
            **os.environ,
            "VIGIL_DETECTOR__SHARD_INDEX": str(worker.shard_index),
            "VIGIL_DETECTOR__SHARD_COUNT": str(worker.shard_count),
            "VIGIL_DETECTOR__PORT": str(worker.port),
            "VIGIL_DETECTOR__WORKERS": "1",
        }

    def spawn(self, worker: Worker) -> None:
        worker.proc = subprocess.Popen(
            self.command(),
            env=self.worker_env(worker),
            stdin=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,  # noqa: PLW1509 - only prctl, async-signal-safe enough
        )
        worker.started_at = time.monotonic()
        worker.restart_at = None
        log.info(
            "worker %d (shard %s) started: pid %d, http port %s",
            worker.index,
            worker.label,
            worker.proc.pid,
            worker.port or "any",
        )

    def check(self, now: float | None = None) -> None:
        """Restart workers that exited (after their back-off); called every ``poll_s``."""
        now = time.monotonic() if now is None else now
        for w in self.workers:
            if w.proc is None or self.stop_event.is_set():
                continue
            code = w.proc.poll()
            if code is None:
                continue
            if w.restart_at is None:
                w.exit_codes.append(code)
                ran = now - w.started_at
                first_or_stable = len(w.exit_codes) == 1 or ran >= STABLE_AFTER_S
                w.backoff_s = (
                    RESTART_BACKOFF_S if first_or_stable else min(2 * w.backoff_s, MAX_RESTART_BACKOFF_S)
                )
                w.restart_at = now + w.backoff_s
                log.warning(
                    "worker %d (shard %s, pid %d) exited with %s after %.0f s; restarting in %.0f s "
                    "(it resumes from its checkpoint)",
                    w.index,
                    w.label,
                    w.proc.pid,
                    _describe(code),
                    ran,
                    w.backoff_s,
                )
            elif now >= w.restart_at:
                w.restarts += 1
                self.spawn(w)

    def run(self) -> int:
        """Start every worker, supervise until SIGTERM/SIGINT, then stop them; 0 if all drained."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self.stop_event.set())
        log.info(
            "detector supervisor: %d workers (shards %s), state under %s",
            len(self.workers),
            ", ".join(w.label for w in self.workers),
            self.detector.run_dir / "detector",
        )
        for w in self.workers:
            self.spawn(w)
        while not self.stop_event.wait(self.poll_s):
            self.check()
        return self.stop()

    def stop(self) -> int:
        """Forward SIGTERM to every worker, wait for them to drain, kill what is left."""
        self.stop_event.set()
        alive = [w for w in self.workers if w.proc is not None and w.proc.poll() is None]
        log.info(
            "stopping %d worker(s): SIGTERM, then up to %.0f s to drain", len(alive), self.stop_timeout_s
        )
        for w in alive:
            w.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.stop_timeout_s
        status = 0
        for w in alive:
            try:
                code = w.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.error("worker %d (shard %s) did not stop in time: killed", w.index, w.label)
                w.proc.kill()
                code = w.proc.wait()
            if code != 0:
                status = 1
        log.info("detector supervisor stopped")
        return status


def _describe(code: int) -> str:
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"status {code}"
