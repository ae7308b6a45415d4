"""The HTTP server: uvicorn in a daemon thread, and :func:`serve_detector`, which starts the app
of a detector (scoring API and ``POST /labels``)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from fastapi import FastAPI

from detector.api.app import build_app
from detector.api.labels import labels_router
from detector.api.scoring import ScoringView

if TYPE_CHECKING:
    from detector.ports import ServedDetector


class DetectorHttpServer:
    """uvicorn serving :func:`build_app` in a daemon thread (the scoring loop keeps the main one).

    The socket is bound here, so port 0 (tests) gets a free port and ``port`` is known at once.
    """

    def __init__(self, host: str, port: int, app: FastAPI, on_stop: Callable[[], None] | None = None) -> None:
        import uvicorn

        self.on_stop = on_stop
        self.sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.sock.listen(512)
        self.port = self.sock.getsockname()[1]
        config = uvicorn.Config(
            app, log_level="warning", access_log=False, lifespan="off", timeout_keep_alive=30
        )
        self.server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=lambda: self.server.run(sockets=[self.sock]), name="detector-http", daemon=True
        )

    def start(self, timeout_s: float = 10.0) -> DetectorHttpServer:
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self.server.started and self._thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.01)
        if not self.server.started:
            raise RuntimeError(f"detector http server did not start on port {self.port}")
        return self

    def stop(self) -> None:
        if self.on_stop is not None:
            self.on_stop()
        self.server.should_exit = True
        self._thread.join(timeout=10)
        self.sock.close()


def serve_detector(detector: ServedDetector) -> DetectorHttpServer:
    """Start the HTTP server (health, metrics, scoring API) of a detector; the CLI hands it to
    :meth:`detector.service.Detector.run` (``serve=``)."""
    s = detector.settings
    view = ScoringView(detector)
    app = build_app(view, detector.metrics, detector.health, s.api.max_batch_rows)
    app.include_router(labels_router(s.api, s.influx))  # POST /labels (bearer token): operators' verdicts
    return DetectorHttpServer(s.bind_host, s.detector.port, app, on_stop=view.close).start()
