"""Run a scenario's loads and make sure nothing outlives the run.

Each load generator is started as a child process in its own session (so its process
group can be signalled as a whole), with its stderr in a log file. A ``users`` load is not
a process: :class:`BusierUsers` asks the target app to make its own everyday users busier
for the load's duration, and to stop that early on exit. :class:`LoadRun` is a context
manager whose exit — normal end, exception, Ctrl-C or SIGTERM turned into
:class:`KeyboardInterrupt` by :func:`sigterm_as_interrupt` — terminates every group, kills
what did not stop, ends a busy period, and removes the run's temp folder.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import requests

from stress.loadgen import assert_loopback_url
from stress.scenarios import USERS, LoadSpec
from stress.target_app import target_pidfile
from vigil.processes import free_port, port_in_use
from vigil.settings import StressSettings

STOP_GRACE_S = 5.0


@dataclass
class LoadProcess:
    spec: LoadSpec
    popen: subprocess.Popen[str]
    stderr_path: Path
    summary: dict[str, Any] | None = None

    @property
    def pid(self) -> int:
        return self.popen.pid


class BusierUsers:
    """A ``users`` load: the target app's everyday users, busier for ``duration_s``.

    Why not a generator process: a real busy period is more of the same users, and a new
    Python process is itself an event on the host (it reads its interpreter and libraries
    from disk), which the false-positive check must not count against the detector. The
    app runs the period itself, so it ends on time even if this runner dies.
    """

    def __init__(self, spec: LoadSpec) -> None:
        self.spec = spec
        self.url = assert_loopback_url(spec.params["url"])
        self.summary: dict[str, Any] | None = None
        self._started: float | None = None
        self._usual_before = 0

    def _control(self, extra_rps: float, for_s: float) -> dict[str, Any]:
        r = requests.post(
            f"{self.url}/control/users", params={"extra_rps": extra_rps, "for_s": for_s}, timeout=5
        )
        if r.status_code != 200:
            raise RuntimeError(f"the target app refused a busy period: HTTP {r.status_code} {r.text[:200]}")
        return r.json()

    def _usual_requests(self) -> int:
        # /control/ is not counted as traffic, so asking does not change the scenario's counts
        return int(requests.get(f"{self.url}/control/users", timeout=5).json()["usual_requests"])

    def start(self) -> None:
        self._usual_before = self._usual_requests()
        self._control(float(self.spec.params["extra_rps"]), float(self.spec.params["duration_s"]))
        self._started = time.monotonic()

    def running(self) -> bool:
        if self._started is None or self.summary is not None:
            return False
        return time.monotonic() - self._started < float(self.spec.params["duration_s"])

    def stop(self) -> None:
        """End the busy period (if still on) and record what the users sent meanwhile."""
        if self._started is None or self.summary is not None:
            return
        elapsed = time.monotonic() - self._started
        sent: int | None = None
        with contextlib.suppress(requests.RequestException, RuntimeError, KeyError, ValueError):
            self._control(0.0, 0.0)
            sent = self._usual_requests() - self._usual_before
        self.summary = {
            "kind": USERS,
            "elapsed_s": round(elapsed, 2),
            "extra_rps": self.spec.params["extra_rps"],
            "usual_requests": sent,  # everyday users' requests in the period, usual rate included
        }


class LoadRun:
    """Start ``specs`` (child processes, busier users); on exit stop them all and delete ``tmp_dir``."""

    def __init__(self, specs: list[LoadSpec], tmp_dir: Path, log_dir: Path) -> None:
        self.specs = specs
        self.tmp_dir = tmp_dir
        self.log_dir = log_dir
        self.procs: list[LoadProcess] = []
        self.busy: list[BusierUsers] = []

    def __enter__(self) -> LoadRun:
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        try:
            for i, spec in enumerate(self.specs):
                if spec.kind == USERS:
                    self.busy.append(BusierUsers(spec))
                    self.busy[-1].start()
                    continue
                stderr_path = self.log_dir / f"load-{i}-{spec.kind}.err"
                with open(stderr_path, "w") as err:
                    popen = subprocess.Popen(
                        [sys.executable, "-m", "stress.loadgen", spec.kind, json.dumps(spec.params)],
                        stdout=subprocess.PIPE,
                        stderr=err,
                        stdin=subprocess.DEVNULL,
                        text=True,
                        start_new_session=True,  # own process group: killpg reaches all of it
                    )
                self.procs.append(LoadProcess(spec, popen, stderr_path))
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def alive(self) -> list[LoadProcess | BusierUsers]:
        """The loads still running."""
        return [p for p in self.procs if p.popen.poll() is None] + [b for b in self.busy if b.running()]

    def describe(self) -> str:
        """One line for the progress output: what runs where."""
        parts = [f"{len(self.procs)} process(es), pids {self.pids}"] if self.procs else []
        parts += [
            f"everyday users +{b.spec.params['extra_rps']:g} req/s inside the target app" for b in self.busy
        ]
        return "; ".join(parts) or "nothing"

    def wait(
        self, timeout_s: float, on_tick: Callable[[float], None] | None = None, tick_s: float = 1.0
    ) -> bool:
        """Wait until every load ended or ``timeout_s`` passed; True if all ended by themselves."""
        start = time.monotonic()
        next_tick = start + tick_s
        while self.alive():
            now = time.monotonic()
            if now - start >= timeout_s:
                return False
            if on_tick is not None and now >= next_tick:
                on_tick(now - start)
                next_tick += tick_s
            time.sleep(0.1)
        return True

    def stop(self) -> None:
        """SIGTERM every group, wait, SIGKILL leftovers, end busy periods, collect summaries, remove
        the temp folder."""
        for b in self.busy:
            b.stop()
        for p in self.procs:
            if p.popen.poll() is not None:
                continue
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(p.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        for p in self.procs:
            try:
                p.popen.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(p.pid, signal.SIGKILL)
                p.popen.wait(timeout=5)
            # A generator is a single process, but kill the group anyway in case it forked.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(p.pid, signal.SIGKILL)
            if p.summary is None and p.popen.stdout is not None and not p.popen.stdout.closed:
                out = p.popen.stdout.read() or ""
                p.popen.stdout.close()
                lines = [ln for ln in out.splitlines() if ln.strip().startswith("{")]
                if lines:
                    with contextlib.suppress(ValueError):
                        p.summary = json.loads(lines[-1])
        shutil.rmtree(self.tmp_dir, ignore_errors=True)

    def errors(self) -> list[str]:
        """Non-empty stderr of generators that failed (exit code not 0 and not a signal we sent)."""
        out = []
        for p in self.procs:
            code = p.popen.returncode
            if code not in (None, 0, -signal.SIGTERM, -signal.SIGKILL):
                text = p.stderr_path.read_text(errors="replace").strip()
                out.append(f"{p.spec.kind} (pid {p.pid}) exited {code}: {text[-500:]}")
        return out

    def summaries(self) -> list[dict[str, Any]]:
        """What each load did: generator processes first, then busy periods."""
        return [p.summary for p in self.procs if p.summary] + [b.summary for b in self.busy if b.summary]


def make_tmp_dir(stress: StressSettings) -> Path:
    """A fresh folder under the run folder for a scenario's temp files (deleted by :class:`LoadRun`)."""
    base = stress.run_dir / "stress-tmp"
    base.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix="run-", dir=base))


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Turn SIGTERM into KeyboardInterrupt (main thread only), so ``finally`` blocks clean up."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def _raise(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, _raise)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


# --- the target app -----------------------------------------------------------------------------------


def target_healthy(url: str, timeout_s: float = 2.0) -> bool:
    try:
        return requests.get(f"{url}/health", timeout=timeout_s).status_code == 200
    except requests.RequestException:
        return False


@contextlib.contextmanager
def ensure_target(stress: StressSettings, target_url: str | None = None) -> Iterator[str]:
    """Yield the URL of a healthy target app: the running one, or one started for this run only.

    Why: ``vigil stress run`` against the live stack uses the app ``vigil up`` started (its
    procstat is what the collector watches); a bare run or a test gets a temporary app that
    is stopped afterwards.
    """
    url = target_url or f"http://127.0.0.1:{stress.target_port}"
    assert_loopback_url(url)
    if target_healthy(url):
        yield url
        return
    port = stress.target_port if not port_in_use(stress.target_port) else free_port()
    run_dir = stress.run_dir
    env = {**os.environ, "VIGIL_RUN_DIR": str(Path(run_dir).resolve())}
    proc = subprocess.Popen(
        [sys.executable, "-m", "stress.target_app", "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        env=env,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while not target_healthy(url, 0.5):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the target app did not start on {url} (exit code {proc.poll()})")
            time.sleep(0.1)
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)


def target_pid(stress: StressSettings) -> int | None:
    """PID from the target app's pidfile, if that process is alive."""
    try:
        pid = int(target_pidfile(stress).read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if psutil.pid_exists(pid) else None
