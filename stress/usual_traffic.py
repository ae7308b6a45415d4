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

>>> t = UsualTraffic(port=1, rps=0.0)
>>> t.rps, t.sent
(0.0, 0)
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

    def stop(self) -> None:
        self._stop_event.set()

    def run(self) -> None:
        if self.rps <= 0:
            return
        conn: http.client.HTTPConnection | None = None
        due = time.monotonic()
        i = 0
        while not self._stop_event.wait(min(1.0, max(0.0, due - time.monotonic()))):
            now = time.monotonic()
            if now < due:
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
            due = max(due, now - 1.0) + self._rng.expovariate(self.rps)
        if conn is not None:
            conn.close()
