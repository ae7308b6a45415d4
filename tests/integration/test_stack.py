"""``vigil up`` / ``status`` / ``down`` end to end: real InfluxDB, MLflow and Airflow on free ports.

Everything runs through the real CLI in subprocesses (as a user would), with a temporary run
folder and its own ports, so it can run beside a developer's stack or other tests.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import requests
from support.stack_cli import settings_of, stack_env, vigil

from toolkit.stack.services import LOCAL_COLLECTOR_LATENESS_S, SERVICE_NAMES, get_service
from vigil.processes import read_record, session_members, start_process, stop_process
from vigil.settings import Settings

STACK = ("influxdb", "mlflow", "airflow", "collector")


def listening_ips(port: int) -> set[str]:
    return {
        c.laddr.ip
        for c in psutil.net_connections("tcp")
        if c.laddr and c.laddr.port == port and c.status == psutil.CONN_LISTEN
    }


def test_port_in_use_is_a_clear_error_naming_service_and_port(run_dir: Path) -> None:
    env = stack_env(run_dir)
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        env["VIGIL_MLFLOW__PORT"] = str(port)
        result = vigil(env, "up", "--only", "influxdb,mlflow")
    assert result.returncode == 1
    assert f"mlflow: port {port} on 127.0.0.1 is already in use by pid {os.getpid()}" in result.stderr
    # All or nothing: the InfluxDB this call had already started was stopped again.
    assert "[influxdb] stopped again because start-up failed" in result.stdout
    assert read_record(run_dir, "influxdb") is None and read_record(run_dir, "mlflow") is None


def test_unknown_service_name_is_refused(run_dir: Path) -> None:
    result = vigil(stack_env(run_dir), "up", "--only", "influxdb,grafana")
    assert result.returncode == 1 and "unknown service(s) grafana" in result.stderr


def test_up_status_down_end_to_end(run_dir: Path) -> None:
    env = stack_env(run_dir)
    settings = settings_of(env)

    # --- up: every service healthy, bound to loopback, state under the run folder -----------------
    first = vigil(env, "up", "--only", ",".join(STACK))
    assert first.returncode == 0, first.stdout + first.stderr
    print(first.stdout)  # per-service timings, visible with -s
    assert "[influxdb] databases ready: telegraf, vigil" in first.stdout
    password_file = settings.airflow.home_dir / "simple_auth_manager_passwords.json.generated"
    assert f"admin password file: {password_file}" in first.stdout
    assert "admin" in json.loads(password_file.read_text())

    influx = requests.get(f"http://127.0.0.1:{settings.influx.port}/ping", timeout=5)
    assert influx.status_code == 204 and influx.headers["X-Influxdb-Version"].startswith("1.")
    assert requests.get(f"http://127.0.0.1:{settings.mlflow.port}/health", timeout=5).text.strip() == "OK"
    version = requests.get(f"http://127.0.0.1:{settings.airflow.port}/api/v2/version", timeout=5).json()
    assert version["version"].startswith("3.")
    for port in (settings.influx.port, settings.influx.rpc_port, settings.mlflow.port, settings.airflow.port):
        assert listening_ips(port) == {"127.0.0.1"}, f"port {port} listens on {listening_ips(port)}"
    assert (run_dir / "influxdb" / "data").is_dir() and (run_dir / "mlflow" / "mlflow.db").exists()
    assert (settings.airflow.home_dir / "airflow.db").exists()

    records = {name: read_record(run_dir, name) for name in STACK}
    started = {name: r for name, r in records.items() if r is not None}
    collector_there = "collector" in started
    assert set(started) == (set(STACK) if collector_there else {"influxdb", "mlflow", "airflow"})
    assert collector_there or "[collector] skipped" in first.stdout

    # --- up again: harmless, the same processes keep running ------------------------------------------
    second = vigil(env, "up", "--only", ",".join(STACK))
    assert second.returncode == 0, second.stdout + second.stderr
    for name, record in started.items():
        assert f"[{name}] already running (pid {record.pid})" in second.stdout
        assert read_record(run_dir, name) == record

    # --- status: the table -------------------------------------------------------------------------------
    table = vigil(env, "status")
    assert table.returncode == 0, table.stderr
    table_lines = table.stdout.split("\n\n", 1)[0].splitlines()[2:]  # the key settings follow
    rows = {line.split()[0]: line.split() for line in table_lines}
    assert set(rows) == set(SERVICE_NAMES)
    for name, record in started.items():
        assert rows[name][1:4] == [str(record.pid), str(record.port or "-"), "yes"], table.stdout
    assert f"http://127.0.0.1:{settings.airflow.port}" in rows["airflow"]

    # --- down: stops exactly what up started, and everything those processes spawned -------------------
    tree = {p.pid: p.create_time() for r in started.values() for p in session_members(r)}
    assert len(tree) > len(started)  # Airflow's scheduler, API server, workers...
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        stopped = vigil(env, "down")
        assert stopped.returncode == 0, stopped.stderr
        for name in started:
            assert f"[{name}] stopped pid" in stopped.stdout
        survivors = [pid for pid, created in tree.items() if _same_process_alive(pid, created)]
        assert survivors == [], f"left behind: {[psutil.Process(p).cmdline() for p in survivors]}"
        assert bystander.poll() is None  # something up did not start is left alone
    finally:
        bystander.kill()
        bystander.wait()
    assert not list((run_dir / "pids").glob("*.json"))
    for port in (settings.influx.port, settings.mlflow.port, settings.airflow.port):
        assert listening_ips(port) == set()

    again = vigil(env, "down")
    assert again.returncode == 0 and "nothing was running" in again.stdout


def _same_process_alive(pid: int, created: float) -> bool:
    try:
        proc = psutil.Process(pid)
        return proc.create_time() == created and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def test_stop_process_finds_children_orphaned_inside_the_session(tmp_path: Path) -> None:
    """Like Airflow's components: the leader exits, its child is re-parented but stays in the session."""
    code = (
        "import subprocess, sys; "
        "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)']); "
        "print(p.pid, flush=True)"
    )
    record = start_process("orphan", [sys.executable, "-c", code], run_dir=tmp_path, port=0, url="")
    deadline = time.monotonic() + 30
    while not Path(record.log).read_text().strip() and time.monotonic() < deadline:
        time.sleep(0.1)
    child = psutil.Process(int(Path(record.log).read_text().split()[0]))
    while record.process() is not None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert record.process() is None and child.ppid() != record.pid  # leader gone, child orphaned
    assert [p.pid for p in session_members(record)] == [child.pid]
    assert stop_process(record, timeout_s=5)
    assert not _same_process_alive(child.pid, child.create_time())
    assert not stop_process(record)  # nothing left: a second stop is a no-op


def test_local_detector_waits_for_the_local_collector_not_for_telegraf() -> None:
    """The local stack's detector gets the local collector's short lateness unless the user set one."""
    detector = get_service("detector")
    default = detector.launch(Settings())
    assert default.env["VIGIL_DETECTOR__ALLOWED_LATENESS_S"] == str(LOCAL_COLLECTOR_LATENESS_S)
    assert LOCAL_COLLECTOR_LATENESS_S < Settings().detector.allowed_lateness_s
    assert "VIGIL_DETECTOR__ALLOWED_LATENESS_S" not in detector.launch(Settings(allowed_lateness_s=30.0)).env
