"""The champion model, watched in the background and swapped atomically.

Why a watcher thread: loading a pyfunc takes around a second (longer over a slow
network) and MLflow may be down; the scoring loop must never wait for either. The loop
reads :attr:`ChampionWatcher.current` once per iteration — a single attribute read, so
a swap is atomic from its point of view — and keeps serving the cached model whenever
the registry cannot be reached or a new version fails to load. The registry is read without
MLflow in this process (``detector.registry`` says why and how).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from detector.registry import load_version, resolve_version
from vigil.model import LoadedModel
from vigil.settings import DetectorSettings, MlflowSettings

log = logging.getLogger(__name__)

# MLflow's own client (in the loader child, detector.registry) retries a dead server for minutes
# by default; the watcher retries on its own schedule, so one attempt should fail fast. These are
# MLflow's variables, not Vigil's; the child inherits them.
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")


@dataclass
class WatcherStatus:
    """What /health and the status line say about the model."""

    mode: str  # "champion" | "online-only"
    version: int | None
    last_check: float | None
    last_error: str | None


class ChampionWatcher:
    """Polls the registry (``settings.mlflow``) every ``reload_interval_s``
    (``settings.detector.reload_interval_s``); swaps in new champion versions."""

    def __init__(
        self,
        registry: MlflowSettings,
        reload_interval_s: float = DetectorSettings.model_fields["reload_interval_s"].default,
        on_error: Callable[[str], None] | None = None,
        on_swap: Callable[[LoadedModel], None] | None = None,
    ) -> None:
        self.registry = registry
        self.reload_interval_s = reload_interval_s
        self.on_error = on_error or (lambda kind: None)
        self.on_swap = on_swap or (lambda model: None)
        self.current: LoadedModel | None = None
        self.last_check: float | None = None
        self.last_error: str | None = None
        self._failed_version: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def status(self) -> WatcherStatus:
        model = self.current
        return WatcherStatus(
            mode="champion" if model else "online-only",
            version=model.version if model else None,
            last_check=self.last_check,
            last_error=self.last_error,
        )

    def check_once(self) -> bool:
        """Resolve the alias and load a new version if it moved; True if a swap happened."""
        try:
            target = resolve_version(self.registry)
        except Exception as exc:  # noqa: BLE001 - registry unreachable: keep the cached model
            self.last_error = f"registry unreachable: {exc.__class__.__name__}: {str(exc)[:200]}"
            self.on_error("mlflow_unavailable")
            log.warning("%s; keeping %s", self.last_error, self._describe())
            return False
        self.last_check = time.time()
        if target is None:
            self.last_error = None if self.current is None else "champion alias removed; keeping cached model"
            return False
        version, run_id = target
        current = self.current
        if current is not None and current.version == version:
            self.last_error = None
            return False
        if version == self._failed_version:
            return False  # do not reload a broken version every interval; a new promotion retries
        try:
            model = load_version(self.registry, version, run_id)
        except Exception as exc:  # noqa: BLE001 - a broken artifact must not take the service down
            self._failed_version = version
            self.last_error = f"version {version} failed to load: {exc.__class__.__name__}: {str(exc)[:200]}"
            self.on_error("model_load_failed")
            log.error("%s; keeping %s", self.last_error, self._describe())
            return False
        previous = self._describe()
        self.current = model  # the atomic swap: one reference assignment
        self._failed_version = None
        self.last_error = None
        log.info("champion %s version %d loaded (was %s)", model.name, version, previous)
        self.on_swap(model)
        return True

    def _describe(self) -> str:
        model = self.current
        return f"version {model.version}" if model else "no model (online-only)"

    # --- background thread -------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="champion-watcher", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.check_once()
            self._stop.wait(self.reload_interval_s)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
