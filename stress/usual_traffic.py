"""The target app's everyday users: a steady trickle of ordinary requests while it runs.

Why: a web service that someone monitors is never silent, and the baseline the detector learns
for its host must contain that everyday traffic. Without it the host's "normal" is an idle
loopback, and the first few requests per second (``normal_busy_period``, which must not
alarm) are a change from total silence that both models rightly call unusual. With it,
a busy period is more of what the host always does.

The requests arrive as a Poisson process (exponential gaps, seeded) rather than on a
metronome, so the traffic has the small irregularity of real users. They carry
:data:`USUAL_HEADER`, and the app counts them apart from scenario traffic, so a stress test's
request count stays exact.

A busy period is more of the same users, so :meth:`UsualTraffic.busier` raises the rate for a
while from inside the app: no new process starts, and nothing but the traffic changes.

>>> t = UsualTraffic(port=1, rps=4.0)
>>> t.current_rps()
4.0
>>> t.busier(extra_rps=8.0, for_s=60.0, now=100.0)
>>> t.current_rps(now=130.0), t.current_rps(now=161.0)
(12.0, 4.0)
"""

from __future__ import annotations

import http.client
import random
import threading
import time

#: Header that marks a request as everyday traffic (the app counts it apart).
USUAL_HEADER = "X-Vigil-Traffic"
#: The ordinary endpoints users call; ``normal_busy_period`` sends more of the same.
ORDINARY_PATHS: tuple[str, ...] = ("/api/items", "/api/items?n=100", "/api/compute?ms=5")
#: Highest rate a busy period may ask for (one keep-alive client thread; well below what it can send).
MAX_USERS_RPS = 100.0
#: Longest busy period, seconds (a stress load's own hard limit).
MAX_BUSY_S = 900.0


class UsualTraffic(threading.Thread):
    """A daemon thread sending ``rps`` ordinary GETs per second to ``127.0.0.1:port``.

    ``stop()`` ends it within one gap (at most a second); errors (the app restarting) are
    counted and the connection is opened again, never raised.
    """

    def __init__(self, port: int, rps: float, paths: tuple[str, ...] = ORDINARY_PATHS, seed: int = 0) -> None:
        super().__init__(name="usual-traffic", daemon=True)
        self.port, self.rps, self.paths = port, float(rps), paths
        self.sent = self.errors = 0
        self._rng = random.Random(seed)
        self._stop_event = threading.Event()
        self._lock = threading.Lock()
        self._extra_rps = 0.0
        self._busy_until = 0.0

    def stop(self) -> None:
        self._stop_event.set()

    def busier(self, extra_rps: float, for_s: float, now: float | None = None) -> None:
        """Add ``extra_rps`` to the usual rate for ``for_s`` seconds (``for_s=0`` ends a busy period).

        Raises ValueError on a negative, non-finite or too large value: the caller gets a clear
        error rather than a silently clipped period.
        """
        if not (0.0 <= extra_rps and self.rps + extra_rps <= MAX_USERS_RPS):
            raise ValueError(f"extra_rps must be in [0, {MAX_USERS_RPS - self.rps:g}], got {extra_rps}")
        if not 0.0 <= for_s <= MAX_BUSY_S:
            raise ValueError(f"for_s must be in [0, {MAX_BUSY_S:g}], got {for_s}")
        start = time.monotonic() if now is None else now
        with self._lock:
            self._extra_rps, self._busy_until = float(extra_rps), start + float(for_s)

    def current_rps(self, now: float | None = None) -> float:
        """The rate right now: the usual one, plus a busy period's extra while it lasts."""
        t = time.monotonic() if now is None else now
        with self._lock:
            return self.rps + (self._extra_rps if t < self._busy_until else 0.0)

    def busy_left_s(self) -> float:
        with self._lock:
            return max(0.0, self._busy_until - time.monotonic())

    def run(self) -> None:
        conn: http.client.HTTPConnection | None = None
        due = time.monotonic()
        i = 0
        while not self._stop_event.wait(min(1.0, max(0.0, due - time.monotonic()))):
            now = time.monotonic()
            if now < due:
                continue
            rate = self.current_rps(now)
            if rate <= 0:  # no users right now: look again shortly (a busy period may start)
                due = now + 0.5
                continue
            try:
                conn = conn or http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                conn.request("GET", self.paths[i % len(self.paths)], headers={USUAL_HEADER: "usual"})
                conn.getresponse().read()
                self.sent += 1
            except (OSError, http.client.HTTPException):
                self.errors += 1
                if conn is not None:
                    conn.close()
                conn = None
            i += 1
            # never burst to catch up after a stall: users do not queue their visits
            due = max(due, now - 1.0) + self._rng.expovariate(rate)
        if conn is not None:
            conn.close()
