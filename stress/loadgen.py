"""Load generators, each run as its own child process: ``python -m stress.loadgen KIND JSON``.

Why child processes: the load must be measurable (psutil on a PID), must not
share the GIL with the runner that polls InfluxDB, and must be killable as a
group whatever state it is in. Every generator also protects itself, so a
runner that crashes cannot leave a load running:

* a hard deadline (``duration_s``, never above :data:`MAX_DURATION_S`);
* it exits when its parent dies (the runner's PID is checked every tick);
* SIGTERM/SIGINT end it at once, through ``finally`` blocks that free memory
  and delete temp files;
* every intensity parameter is clamped to a hard cap in :func:`clamp_params`,
  whatever the scenario asked for;
* network traffic goes only to 127.0.0.1 (:func:`assert_loopback_url`).

On exit it prints one JSON line with what it did (requests, bytes, peak RSS).
"""

from __future__ import annotations

import http.client
import json
import os
import resource
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psutil

from vigil.errors import VigilError

#: No load runs longer than this, whatever is asked.
MAX_DURATION_S = 900.0
#: Per-generator hard caps.
MAX_CPU_DUTY = 1.0
MAX_MEMORY_MB = 4096
MAX_MEMORY_SHARE = 0.30  # of the memory available when the generator starts
MAX_HTTP_RPS = 2000.0
MAX_HTTP_CONCURRENCY = 64
MAX_NET_BYTES_PER_S = 100 * 1024 * 1024
MAX_DISK_MB_PER_S = 100.0
MAX_DISK_FILE_MB = 256

KINDS = ("cpu", "memory", "http", "net", "disk")
TICK_S = 0.1


def peak_rss_kb() -> float:
    """This process's peak resident set, KiB.

    Why not ``getrusage(RUSAGE_SELF).ru_maxrss``: Linux carries it across ``exec``, so a
    generator forked from a 500 MB test runner reported 500 MB for a 25 MB HTTP client.
    ``VmHWM`` belongs to this process's own address space.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return float(line.split()[1])
    except OSError:
        pass
    return float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


class LoadError(VigilError, ValueError):
    """A load asked for something it may not do (unknown kind, non-loopback target...)."""


def assert_loopback_url(url: str) -> str:
    """Refuse any target that is not http://127.0.0.1:PORT — stress traffic never leaves the machine."""
    parts = urlsplit(url)
    if parts.scheme != "http" or parts.hostname != "127.0.0.1" or parts.port is None:
        raise LoadError(f"stress traffic goes only to http://127.0.0.1:PORT, not {url!r}")
    return url


def memory_cap_mb() -> int:
    """The most memory one generator may hold: MAX_MEMORY_MB or 30% of what is available now."""
    available_mb = psutil.virtual_memory().available / 2**20
    return int(min(MAX_MEMORY_MB, MAX_MEMORY_SHARE * available_mb))


def _clip(value: Any, lo: float, hi: float) -> float:
    return float(min(max(float(value), lo), hi))


def clamp_params(kind: str, params: dict[str, Any]) -> dict[str, Any]:
    """Apply the hard caps. Unknown kinds and non-loopback URLs are refused."""
    if kind not in KINDS:
        raise LoadError(f"unknown load kind {kind!r}; known: {', '.join(KINDS)}")
    p = dict(params)
    p["duration_s"] = _clip(p.get("duration_s", 10.0), 0.0, MAX_DURATION_S)
    if kind == "cpu":
        p["duty"] = _clip(p.get("duty", 1.0), 0.0, MAX_CPU_DUTY)
    elif kind == "memory":
        p["target_mb"] = int(_clip(p.get("target_mb", 64), 0, memory_cap_mb()))
        p["ramp_s"] = _clip(p.get("ramp_s", 1.0), 0.0, p["duration_s"])
    elif kind == "http":
        assert_loopback_url(p["url"])
        p["rps"] = _clip(p.get("rps", 10.0), 0.0, MAX_HTTP_RPS)
        p["concurrency"] = int(_clip(p.get("concurrency", 1), 1, MAX_HTTP_CONCURRENCY))
        p["paths"] = list(p.get("paths") or ["/api/items"])
        for path in p["paths"]:
            if not str(path).startswith("/"):
                raise LoadError(f"http paths must start with '/', not {path!r}")
    elif kind == "net":
        assert_loopback_url(p["url"])
        p["bytes_per_s"] = _clip(p.get("bytes_per_s", 1 << 20), 0, MAX_NET_BYTES_PER_S)
        p["chunk_kb"] = int(_clip(p.get("chunk_kb", 1024), 1, 8 * 1024))
    elif kind == "disk":
        if not p.get("dir"):
            raise LoadError("disk load needs a 'dir' to write its temp file into")
        p["mb_per_s"] = _clip(p.get("mb_per_s", 10.0), 0.0, MAX_DISK_MB_PER_S)
        p["max_file_mb"] = int(_clip(p.get("max_file_mb", 64), 1, MAX_DISK_FILE_MB))
    return p


class _Clock:
    """Deadline + stop flag + parent watch: the one loop condition every generator uses."""

    def __init__(self, duration_s: float) -> None:
        self.start = time.monotonic()
        self.deadline = self.start + duration_s
        self.parent = os.getppid()
        self.stopped = threading.Event()

    def running(self) -> bool:
        if self.stopped.is_set():
            return False
        if time.monotonic() >= self.deadline or os.getppid() != self.parent:
            self.stopped.set()
            return False
        return True

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def sleep(self, seconds: float) -> None:
        self.stopped.wait(max(0.0, min(seconds, self.deadline - time.monotonic())))


# --- generators -------------------------------------------------------------------------------------


def run_cpu(p: dict[str, Any], clock: _Clock) -> dict[str, Any]:
    """Busy ``duty`` of every 100 ms tick, sleep the rest: one core at ``duty`` x 100 %."""
    busy_s = TICK_S * p["duty"]
    ticks = 0
    while clock.running():
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < busy_s:
            sum(i * i for i in range(500))
        ticks += 1
        clock.sleep(TICK_S - (time.perf_counter() - t0))
    return {"ticks": ticks}


def run_memory(p: dict[str, Any], clock: _Clock) -> dict[str, Any]:
    """Grow to ``target_mb`` linearly over ``ramp_s`` (a leak when the ramp is long), hold, free."""
    blocks: list[bytearray] = []
    held_mb = 0
    chunk_mb = 4
    try:
        while clock.running():
            ramp = p["ramp_s"]
            want = p["target_mb"] if ramp <= 0 else int(p["target_mb"] * min(1.0, clock.elapsed() / ramp))
            while held_mb + chunk_mb <= want and clock.running():
                blocks.append(bytearray(b"\x01") * (chunk_mb * 2**20))  # touched pages: really resident
                held_mb += chunk_mb
            clock.sleep(TICK_S)
    finally:
        blocks.clear()
    return {"held_mb": held_mb}


def _http_worker(
    p: dict[str, Any], clock: _Clock, rate: float, stats: dict[str, int], lock: threading.Lock
) -> None:
    parts = urlsplit(p["url"])
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=5)
    interval = 1.0 / rate if rate > 0 else None
    i = 0
    next_at = time.monotonic()
    try:
        while clock.running():
            if interval is None:
                clock.sleep(TICK_S)
                continue
            path = p["paths"][i % len(p["paths"])]
            i += 1
            ok, received = True, 0
            try:
                conn.request("GET", path)
                resp = conn.getresponse()
                received = len(resp.read())
                ok = resp.status < 400
            except (OSError, http.client.HTTPException):
                ok = False
                conn.close()
                conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=5)
            with lock:
                stats["requests"] += 1
                stats["errors"] += int(not ok)
                stats["bytes_in"] += received
            next_at += interval
            delay = next_at - time.monotonic()
            if delay > 0:
                clock.sleep(delay)
            elif delay < -1.0:
                next_at = time.monotonic()  # fell behind: do not burst to catch up
    finally:
        conn.close()


def run_http(p: dict[str, Any], clock: _Clock) -> dict[str, Any]:
    """``concurrency`` keep-alive clients sharing ``rps``, cycling through ``paths``."""
    stats = {"requests": 0, "errors": 0, "bytes_in": 0}
    lock = threading.Lock()
    per_worker = p["rps"] / p["concurrency"]
    threads = [
        threading.Thread(target=_http_worker, args=(p, clock, per_worker, stats, lock), daemon=True)
        for _ in range(p["concurrency"])
    ]
    for t in threads:
        t.start()
    try:
        while clock.running():
            clock.sleep(TICK_S)
    finally:
        clock.stopped.set()
        for t in threads:
            t.join(timeout=6)
    return stats


def run_net(p: dict[str, Any], clock: _Clock) -> dict[str, Any]:
    """Alternate uploads and downloads of ``chunk_kb`` to the target app at ``bytes_per_s`` in total."""
    parts = urlsplit(p["url"])
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    chunk = p["chunk_kb"] * 1024
    payload = b"\x00" * chunk
    sent = received = errors = 0
    budget_start = time.monotonic()
    try:
        n = 0
        while clock.running():
            allowed = p["bytes_per_s"] * (time.monotonic() - budget_start)
            if sent + received + chunk > allowed:
                clock.sleep(min(TICK_S, chunk / max(p["bytes_per_s"], 1.0)))
                continue
            try:
                if n % 2 == 0:
                    conn.request("POST", "/api/upload", body=payload)
                    conn.getresponse().read()
                    sent += chunk
                else:
                    conn.request("GET", f"/api/download?kb={p['chunk_kb']}")
                    received += len(conn.getresponse().read())
            except (OSError, http.client.HTTPException):
                errors += 1
                conn.close()
                conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
                clock.sleep(TICK_S)
            n += 1
    finally:
        conn.close()
    return {"bytes_sent": sent, "bytes_received": received, "errors": errors}


def run_disk(p: dict[str, Any], clock: _Clock) -> dict[str, Any]:
    """Write 1 MiB blocks with fsync at ``mb_per_s`` into one temp file, wrapping at ``max_file_mb``.

    Every block just written is read back after dropping it from the page cache, so the
    disk sees reads as well as writes. The file is deleted on every exit path.
    """
    directory = Path(p["dir"])
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"vigil-stress-disk-{os.getpid()}.bin"
    block = os.urandom(2**20)
    written_mb = read_mb = 0
    start = time.monotonic()
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        offset = 0
        while clock.running():
            if written_mb + 1 > p["mb_per_s"] * (time.monotonic() - start):
                clock.sleep(min(TICK_S, 1.0 / max(p["mb_per_s"], 0.01)))
                continue
            os.pwrite(fd, block, offset)
            os.fsync(fd)
            written_mb += 1
            if hasattr(os, "posix_fadvise"):
                os.posix_fadvise(fd, offset, len(block), os.POSIX_FADV_DONTNEED)
            read_mb += len(os.pread(fd, len(block), offset)) // 2**20
            offset = (offset + len(block)) % (p["max_file_mb"] * 2**20)
    finally:
        os.close(fd)
        path.unlink(missing_ok=True)
    return {"written_mb": written_mb, "read_mb": read_mb}


GENERATORS = {"cpu": run_cpu, "memory": run_memory, "http": run_http, "net": run_net, "disk": run_disk}


def run(kind: str, params: dict[str, Any]) -> dict[str, Any]:
    """Run one generator to completion (deadline, signal or parent death); returns its summary."""
    p = clamp_params(kind, params)
    clock = _Clock(p["duration_s"])

    def _stop(signum: int, frame: Any) -> None:
        clock.stopped.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    result = GENERATORS[kind](p, clock)
    peak_rss_mb = peak_rss_kb() / 1024
    return {
        "kind": kind,
        "elapsed_s": round(clock.elapsed(), 2),
        "peak_rss_mb": round(peak_rss_mb, 1),
        **result,
    }


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m stress.loadgen KIND JSON_PARAMS", file=sys.stderr)
        return 2
    try:
        summary = run(args[0], json.loads(args[1]))
    except (LoadError, KeyError, ValueError) as exc:
        print(f"loadgen: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
