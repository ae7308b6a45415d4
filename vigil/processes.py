"""Start, health-check and stop one local service process, with its PID and log in the run folder.

Why a PID file plus the process's start time: ``down`` must stop only what
``up`` started, even if the PID was reused by another program meanwhile.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil

from vigil.errors import VigilError


class ServiceError(VigilError, RuntimeError):
    """A service could not be started or did not become healthy."""


_LOCAL_PORT_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")


def _ephemeral_range() -> tuple[int, int]:
    """The ports the kernel hands to outgoing connections (Linux; the IANA range elsewhere)."""
    try:
        low, high = (int(x) for x in _LOCAL_PORT_RANGE.read_text().split())
        return low, high
    except (OSError, ValueError):
        return 49152, 65535


def _bindable(port: int) -> bool:
    with socket.socket() as sock:  # no SO_REUSEADDR: a port any socket holds counts as taken
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_port(count: int = 1) -> int:
    """A TCP port ``p`` on 127.0.0.1 with ``p .. p + count - 1`` free right now.

    Why not the ephemeral range (what ``bind(0)`` returns): a port chosen now and
    bound later by another process can meanwhile become the local end of any
    outgoing connection (a keep-alive to InfluxDB, a poll of that very port), and
    the service then fails with "address in use". Ports below the kernel's range
    are never handed out that way.

    >>> p = free_port(2)
    >>> _bindable(p) and _bindable(p + 1)
    True
    """
    low, high = _ephemeral_range()
    spans = [(10000, low - count), (high + 1, 65536 - count)]
    spans = [span for span in spans if span[1] - span[0] >= 1000] or [(1024, 65536 - count)]
    rng = random.SystemRandom()
    for _ in range(200):
        first, last = rng.choice(spans)
        p = rng.randint(first, last)
        if all(_bindable(p + i) for i in range(count)):
            return p
    raise ServiceError(f"no {count} consecutive free ports on 127.0.0.1 in {spans}")


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


@dataclass
class ProcessRecord:
    """What ``up`` remembers about a service it started."""

    name: str
    pid: int
    create_time: float
    port: int
    url: str
    log: str
    cmd: list[str]

    def process(self) -> psutil.Process | None:
        """The live process, or None if it exited (or the PID now belongs to someone else)."""
        try:
            proc = psutil.Process(self.pid)
            if abs(proc.create_time() - self.create_time) > 1.0 or proc.status() == psutil.STATUS_ZOMBIE:
                return None
            return proc
        except psutil.Error:
            return None


def pid_file(run_dir: Path, name: str) -> Path:
    return run_dir / "pids" / f"{name}.json"


def read_record(run_dir: Path, name: str) -> ProcessRecord | None:
    path = pid_file(run_dir, name)
    if not path.exists():
        return None
    try:
        return ProcessRecord(**json.loads(path.read_text()))
    except (ValueError, TypeError):
        return None


def start_process(
    name: str,
    cmd: Sequence[str],
    *,
    run_dir: Path,
    port: int,
    url: str,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> ProcessRecord:
    """Start ``cmd`` in its own session, log to ``run_dir/logs/NAME.log``, record its PID."""
    (run_dir / "logs").mkdir(parents=True, exist_ok=True)
    (run_dir / "pids").mkdir(parents=True, exist_ok=True)
    log_path = run_dir / "logs" / f"{name}.log"
    with open(log_path, "ab") as log_file:
        proc = subprocess.Popen(
            list(cmd),
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
            cwd=str(cwd) if cwd else None,
            start_new_session=True,
        )
    record = ProcessRecord(
        name=name,
        pid=proc.pid,
        create_time=psutil.Process(proc.pid).create_time(),
        port=port,
        url=url,
        log=str(log_path),
        cmd=list(cmd),
    )
    tmp = pid_file(run_dir, name).with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(record)))
    tmp.replace(pid_file(run_dir, name))
    return record


def wait_healthy(
    record: ProcessRecord, check: Callable[[], bool], timeout_s: float, interval_s: float = 0.5
) -> None:
    """Poll ``check`` until it is true; raise with the log's tail if the process dies or time runs out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if record.process() is None:
            raise ServiceError(
                f"{record.name} exited during start-up; last log lines:\n{log_tail(record.log)}"
            )
        try:
            if check():
                return
        except Exception:  # noqa: BLE001 - any failure of the probe just means "not yet"
            pass
        time.sleep(interval_s)
    raise ServiceError(
        f"{record.name} not healthy after {timeout_s:.0f}s on port {record.port}; log tail:\n{log_tail(record.log)}"
    )


def session_members(record: ProcessRecord) -> list[psutil.Process]:
    """Every live process of the service: its tree plus anything left in its session/process group.

    Why the session too: a service started with ``start_new_session`` is the leader of its own
    session, and ``airflow standalone`` spawns children that may outlive (and be re-parented away
    from) their parent; they keep the session id, so ``down`` can still find them.
    """
    found: dict[int, psutil.Process] = {}
    if _pid_reused(record):
        return []  # the session id now names someone else's session: nothing of ours to find
    leader = record.process()
    if leader is not None:
        found[leader.pid] = leader
        try:
            found.update({c.pid: c for c in leader.children(recursive=True)})
        except psutil.Error:
            pass
    for proc in psutil.process_iter(["pid", "create_time"]):
        if proc.pid in found or proc.pid == os.getpid():
            continue
        try:
            if proc.info["create_time"] + 1.0 < record.create_time:
                continue  # older than the service: not ours, whatever its ids say
            if os.getsid(proc.pid) == record.pid or os.getpgid(proc.pid) == record.pid:
                found[proc.pid] = proc
        except (OSError, psutil.Error):
            continue
    return [p for p in found.values() if _alive(p)]


def _pid_reused(record: ProcessRecord) -> bool:
    """True when another process (not our leader, not its zombie) now holds the recorded PID."""
    try:
        return abs(psutil.Process(record.pid).create_time() - record.create_time) > 1.0
    except psutil.Error:
        return False


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def stop_process(record: ProcessRecord, timeout_s: float = 20.0) -> bool:
    """SIGTERM the service's whole session and tree, then SIGKILL what is left; True if anything ran."""
    procs = session_members(record)
    if not procs:
        return False
    if record.process() is not None:
        try:
            os.killpg(record.pid, signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            pass
    for p in procs:
        try:
            p.terminate()
        except psutil.Error:
            pass
    _, alive = psutil.wait_procs(procs, timeout=timeout_s)
    # A child may have spawned a grandchild while shutting down: look once more before killing.
    alive = {p.pid: p for p in alive} | {p.pid: p for p in session_members(record)}
    for p in alive.values():
        try:
            p.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(list(alive.values()), timeout=5)
    return True


def log_tail(path: str | Path, lines: int = 30) -> str:
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
