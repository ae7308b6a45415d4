"""The stress target app, run as the real process ``vigil up`` starts."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import requests

from stress.target_app import MAX_ALLOC_MB, MAX_COMPUTE_MS
from stress.usual_traffic import UsualTraffic
from vigil.processes import free_port


def _wait_healthy(url: str, proc: subprocess.Popen, timeout_s: float = 15.0) -> None:
    """Until the app answers /health; fails if it exits or takes longer than ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if requests.get(f"{url}/health", timeout=0.5).ok:
                return
        except requests.RequestException:
            pass
        assert proc.poll() is None and time.monotonic() < deadline, "target app did not start"
        time.sleep(0.1)


@pytest.fixture()
def target(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen, Path]]:
    port = free_port()
    env = {**os.environ, "VIGIL_RUN_DIR": str(tmp_path), "VIGIL_STRESS__TARGET_PORT": str(port)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "stress.target_app"],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    _wait_healthy(url, proc)
    yield url, proc, tmp_path / "pids" / "target_app.pid"
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


def test_serves_endpoints_with_caps_and_counts_them(target) -> None:
    url, proc, _ = target
    health = requests.get(f"{url}/health", timeout=5).json()
    assert health["status"] == "ok" and health["pid"] == proc.pid
    assert requests.get(f"{url}/api/items?n=5", timeout=5).json()["count"] == 5
    t0 = time.monotonic()
    assert requests.get(f"{url}/api/compute?ms=50", timeout=5).json()["ms"] == 50
    assert time.monotonic() - t0 >= 0.05
    # Asking for more than the cap gets the cap, not an unbounded request.
    assert requests.get(f"{url}/api/compute?ms=999999", timeout=10).json()["ms"] == MAX_COMPUTE_MS
    assert requests.get(f"{url}/api/alloc?mb=100000&hold_ms=0", timeout=10).json()["mb"] == MAX_ALLOC_MB
    assert len(requests.get(f"{url}/api/download?kb=3", timeout=5).content) == 3 * 1024
    assert requests.post(f"{url}/api/upload", data=b"x" * 5000, timeout=5).json()["received"] == 5000
    # Bad input: a clear 400, and the server keeps serving.
    bad = requests.get(f"{url}/api/compute?ms=abc", timeout=5)
    assert bad.status_code == 400 and "error" in bad.json()
    assert requests.get(f"{url}/api/compute?ms=-1", timeout=5).status_code == 400
    assert requests.get(f"{url}/nope", timeout=5).status_code == 404
    stats = requests.get(f"{url}/stats", timeout=5).json()
    assert stats["requests"]["/api/compute"] == 4
    assert stats["bytes_in"] == 5000 and stats["errors"] == 3


def test_binds_loopback_writes_pidfile_and_removes_it_on_sigterm(target) -> None:
    url, proc, pidfile = target
    assert pidfile.read_text().strip() == str(proc.pid)
    listening = [c for c in psutil.Process(proc.pid).net_connections("tcp") if c.status == psutil.CONN_LISTEN]
    assert [c.laddr.ip for c in listening] == ["127.0.0.1"]
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 0
    assert not pidfile.exists()


def test_everyday_users_send_ordinary_traffic_counted_apart(tmp_path: Path) -> None:
    """The app's everyday users (``--usual-rps``) reach it at about that rate, are counted in
    ``usual_requests`` only (so a scenario's counts stay exact) and stop with the app."""
    port = free_port()
    env = {**os.environ, "VIGIL_RUN_DIR": str(tmp_path)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "stress.target_app", "--port", str(port), "--usual-rps", "25"],
        env=env,
        stdout=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, proc)
        first = requests.get(f"{url}/stats", timeout=5).json()
        time.sleep(2.0)
        stats = requests.get(f"{url}/stats", timeout=5).json()
        usual = stats["usual_requests"] - first["usual_requests"]
        assert 15 <= usual <= 120, usual  # Poisson, 25/s over ~2 s
        assert not any(path.startswith("/api/") for path in stats["requests"]), stats["requests"]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


def test_everyday_users_count_errors_when_the_app_is_down_and_stop_promptly() -> None:
    users = UsualTraffic(port=free_port(), rps=50.0)
    users.start()
    time.sleep(0.5)
    users.stop()
    users.join(timeout=2.0)
    assert not users.is_alive()
    assert users.sent == 0 and users.errors >= 5


def test_busy_period_makes_everyday_users_busier_for_a_while_then_ends(target) -> None:
    """``POST /control/users`` is how ``normal_busy_period`` runs without a new process: more of
    the same users for ``for_s`` seconds. Bad values are a clear 400 and change nothing; the
    control calls are not counted as traffic."""
    url, _, _ = target
    state = requests.get(f"{url}/control/users", timeout=5).json()
    usual = state["usual_rps"]
    assert state["current_rps"] == usual and state["busy_left_s"] == 0
    for bad in (
        "extra_rps=-1&for_s=5",
        "extra_rps=nan&for_s=5",
        "extra_rps=inf&for_s=5",
        "extra_rps=1000&for_s=5",
        "extra_rps=5&for_s=100000",
        "extra_rps=5&for_s=abc",
    ):
        r = requests.post(f"{url}/control/users?{bad}", timeout=5)
        assert r.status_code == 400 and r.json()["error"], bad
    assert requests.get(f"{url}/control/users", timeout=5).json()["current_rps"] == usual

    busy = requests.post(f"{url}/control/users", params={"extra_rps": 30, "for_s": 2.5}, timeout=5).json()
    assert busy["current_rps"] == usual + 30 and 2.0 <= busy["busy_left_s"] <= 2.5
    before = busy["usual_requests"]
    time.sleep(1.5)
    sent = requests.get(f"{url}/control/users", timeout=5).json()["usual_requests"] - before
    assert sent >= (usual + 30) * 1.5 * 0.4, sent  # Poisson at usual + 30 per second
    time.sleep(1.5)
    assert requests.get(f"{url}/control/users", timeout=5).json()["current_rps"] == usual  # over by itself

    requests.post(f"{url}/control/users", params={"extra_rps": 30, "for_s": 60}, timeout=5)
    ended = requests.post(f"{url}/control/users", params={"extra_rps": 0, "for_s": 0}, timeout=5).json()
    assert ended["current_rps"] == usual and ended["busy_left_s"] == 0  # ended early on request
    stats = requests.get(f"{url}/stats", timeout=5).json()
    assert not any(path.startswith("/control/") for path in stats["requests"]), stats["requests"]
