"""The stress target: a small HTTP service of the kind a user monitors.

Why stdlib ``ThreadingHTTPServer`` and not FastAPI: it starts in a fraction of a
second, has no event loop to starve under a CPU scenario, and its cost per request
is what a plain threaded web app costs, which is what we want the metrics to see.

Endpoints (all answer JSON unless noted):

* ``GET /health`` — liveness, pid, uptime;
* ``GET /stats`` — request and byte counters (the stress tests read these);
* ``GET /api/items?n=`` — a small listing, the "normal traffic" endpoint;
* ``GET /api/compute?ms=`` — busy-loop for ``ms`` milliseconds (capped);
* ``GET /api/alloc?mb=&hold_ms=`` — allocate, touch, hold and free memory (capped);
* ``GET /api/download?kb=`` — ``kb`` KiB of bytes (octet-stream, capped);
* ``POST /api/upload`` — read and count the body (capped);
* ``GET|POST /control/users?extra_rps=&for_s=`` — the everyday users' rate; POST makes them
  busier for a while (``normal_busy_period``), ``for_s=0`` ends that. Not counted on ``/stats``.

While it serves, :class:`stress.usual_traffic.UsualTraffic` sends it ``target_usual_rps``
ordinary requests per second (its everyday users; counted apart on ``/stats``).

It writes its PID to :func:`target_pidfile` so Telegraf's ``procstat`` input
(``pid_file``) and Vigil's collector can watch it, and removes it on exit.
Bound to ``settings.bind_host`` (127.0.0.1) by default; ``--host 0.0.0.0`` is for the
inside of a Compose container only.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from stress.usual_traffic import USUAL_HEADER, UsualTraffic
from vigil.settings import StressSettings, get_settings

#: Hard caps per request: one request can never take more than this, whatever it asks.
MAX_COMPUTE_MS = 2_000
MAX_ALLOC_MB = 256
MAX_HOLD_MS = 5_000
MAX_TRANSFER_KB = 64 * 1024

#: Endpoints that steer the app rather than serve users (never counted as traffic).
CONTROL_PREFIX = "/control/"

_ITEMS = [{"id": i, "name": f"item-{i}", "price": round(1.5 * i, 2)} for i in range(200)]


def target_pidfile(stress: StressSettings) -> Path:
    """Where the target app writes its PID (Telegraf ``procstat`` ``pid_file`` points here)."""
    return stress.run_dir / "pids" / "target_app.pid"


class Counters:
    """Thread-safe request and byte counters, served on ``/stats``.

    Everyday traffic (:data:`USUAL_HEADER`) is counted in ``usual_requests`` only, and the
    ``/control/`` endpoints not at all, so the other counters are exactly what a scenario's
    load or a test sent.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: dict[str, int] = {}
        self.usual_requests = 0
        self.bytes_in = 0
        self.bytes_out = 0
        self.errors = 0

    def add(self, path: str, bytes_in: int, bytes_out: int, error: bool = False, usual: bool = False) -> None:
        if path.startswith(CONTROL_PREFIX):
            return
        with self._lock:
            if usual:
                self.usual_requests += 1
                return
            self.requests[path] = self.requests.get(path, 0) + 1
            self.bytes_in += bytes_in
            self.bytes_out += bytes_out
            self.errors += int(error)

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "requests": dict(self.requests),
                "total_requests": sum(self.requests.values()),
                "bytes_in": self.bytes_in,
                "bytes_out": self.bytes_out,
                "errors": self.errors,
                "usual_requests": self.usual_requests,
            }


def _int_arg(query: dict[str, list[str]], name: str, default: int, cap: int) -> int:
    """A non-negative integer query argument, clamped to ``cap`` (bad input -> 400 via ValueError)."""
    raw = query.get(name, [str(default)])[0]
    value = int(raw)
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    return min(value, cap)


def _busy(ms: int) -> int:
    """Burn CPU for ``ms`` milliseconds; returns loop iterations (so the work is not optimised away)."""
    deadline = time.perf_counter() + ms / 1000.0
    n = 0
    while time.perf_counter() < deadline:
        n += sum(i * i for i in range(200)) & 1
    return n


class TargetHandler(BaseHTTPRequestHandler):
    """Routes requests; every answer carries Content-Length so HTTP/1.1 keep-alive works."""

    protocol_version = "HTTP/1.1"
    server_version = "VigilTarget/1.0"
    counters: Counters
    started: float
    users: UsualTraffic | None = None

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        """Silent: a flood would otherwise write a log line per request."""

    def _send(
        self, status: int, body: bytes, content_type: str = "application/json", bytes_in: int = 0
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.counters.add(
            urlsplit(self.path).path,
            bytes_in,
            len(body),
            error=status >= 400,
            usual=self.headers.get(USUAL_HEADER) is not None,
        )

    def _json(self, status: int, payload: Any, bytes_in: int = 0) -> None:
        self._send(status, json.dumps(payload).encode(), bytes_in=bytes_in)

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        parts = urlsplit(self.path)
        query = parse_qs(parts.query)
        try:
            if parts.path == "/health":
                self._json(
                    200,
                    {"status": "ok", "pid": os.getpid(), "uptime_s": round(time.time() - self.started, 1)},
                )
            elif parts.path == "/stats":
                self._json(200, self.counters.snapshot())
            elif parts.path == "/control/users":
                self._json(200, self._users_state())
            elif parts.path == "/api/items":
                n = _int_arg(query, "n", 20, len(_ITEMS))
                self._json(200, {"items": _ITEMS[:n], "count": n})
            elif parts.path == "/api/compute":
                ms = _int_arg(query, "ms", 10, MAX_COMPUTE_MS)
                self._json(200, {"ms": ms, "iterations": _busy(ms)})
            elif parts.path == "/api/alloc":
                mb = _int_arg(query, "mb", 1, MAX_ALLOC_MB)
                hold_ms = _int_arg(query, "hold_ms", 100, MAX_HOLD_MS)
                block = bytearray(b"\x01") * (mb * 1024 * 1024)  # touched: really resident
                time.sleep(hold_ms / 1000.0)
                size = len(block)
                del block
                self._json(200, {"mb": mb, "hold_ms": hold_ms, "bytes": size})
            elif parts.path == "/api/download":
                kb = _int_arg(query, "kb", 64, MAX_TRANSFER_KB)
                self._send(200, b"\x00" * (kb * 1024), "application/octet-stream")
            else:
                self._json(404, {"error": f"no such endpoint {parts.path}"})
        except ValueError as exc:
            self._json(400, {"error": str(exc)})

    def _users_state(self) -> dict[str, Any]:
        """The everyday users' rate now, and how many requests they have sent so far."""
        users = self.users
        return {
            "usual_rps": users.rps if users else 0.0,
            "current_rps": users.current_rps() if users else 0.0,
            "busy_left_s": round(users.busy_left_s(), 1) if users else 0.0,
            "usual_requests": self.counters.snapshot()["usual_requests"],
        }

    def _control_users(self, query: dict[str, list[str]]) -> None:
        """Make the everyday users busier for a while: the busy period without a new process."""
        if self.users is None:
            self._json(409, {"error": "this app runs without everyday users"})
            return
        try:
            extra = float(query.get("extra_rps", ["0"])[0])
            for_s = float(query.get("for_s", ["0"])[0])
            self.users.busier(extra, for_s)
        except ValueError as exc:  # also NaN and inf: busier() rejects what is not in range
            self._json(400, {"error": str(exc)})
            return
        self._json(200, self._users_state())

    def do_POST(self) -> None:  # noqa: N802 - stdlib name
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        if parts.path == "/control/users":
            self.rfile.read(min(length, 4096))
            self._control_users(parse_qs(parts.query))
            return
        if parts.path != "/api/upload":
            self.rfile.read(min(length, MAX_TRANSFER_KB * 1024))
            self._json(404, {"error": f"no such endpoint {parts.path}"}, bytes_in=length)
            return
        if length > MAX_TRANSFER_KB * 1024:
            self.close_connection = True  # we will not read that body
            self._json(413, {"error": f"body over {MAX_TRANSFER_KB} KiB"})
            return
        remaining, received = length, 0
        while remaining > 0:
            chunk = self.rfile.read(min(remaining, 1 << 20))
            if not chunk:
                break
            received += len(chunk)
            remaining -= len(chunk)
        self._json(200, {"received": received}, bytes_in=received)


def make_server(host: str, port: int) -> ThreadingHTTPServer:
    """A server with fresh counters (tests may run several in one process)."""
    handler = type("Handler", (TargetHandler,), {"counters": Counters(), "started": time.time()})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    return server


def serve(
    stress: StressSettings, host: str | None = None, port: int | None = None, usual_rps: float | None = None
) -> None:
    """Serve until SIGTERM/SIGINT; the PID file exists exactly while we serve."""
    server = make_server(host or stress.bind_host, port if port is not None else stress.target_port)
    pidfile = target_pidfile(stress)
    pidfile.parent.mkdir(parents=True, exist_ok=True)
    pidfile.write_text(f"{os.getpid()}\n")

    def _stop(signum: int, frame: Any) -> None:
        # shutdown() blocks until serve_forever returns, so it must run on another thread.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    bound_host, bound_port = server.server_address[:2]
    users = UsualTraffic(bound_port, stress.target_usual_rps if usual_rps is None else usual_rps)
    server.RequestHandlerClass.users = users  # type: ignore[attr-defined]
    print(f"target app pid {os.getpid()} serving on http://{bound_host}:{bound_port}", flush=True)
    users.start()
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        users.stop()
        server.server_close()
        try:
            if pidfile.read_text().strip() == str(os.getpid()):
                pidfile.unlink()
        except OSError:
            pass


def main(argv: list[str] | None = None) -> None:
    settings = get_settings()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default=None, help=f"bind address (default {settings.bind_host})")
    parser.add_argument(
        "--port", type=int, default=None, help=f"port (default {settings.stress.target_port})"
    )
    parser.add_argument(
        "--usual-rps",
        type=float,
        default=None,
        help=f"everyday requests per second to itself (default {settings.stress.target_usual_rps:g}; 0 = none)",
    )
    args = parser.parse_args(argv)
    serve(settings.stress, args.host, args.port, args.usual_rps)


if __name__ == "__main__":
    main()
