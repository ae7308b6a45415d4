"""Run InfluxDB 1.x (Debian's ``influxd``) with all its state in a run folder, on loopback only."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from vigil.influx import InfluxClient
from vigil.processes import ProcessRecord, ServiceError, start_process, wait_healthy

INFLUXD = "influxd"


def influxd_path() -> str | None:
    return shutil.which(INFLUXD) or (INFLUXD if Path("/usr/bin/influxd").exists() else None)


def ensure_installed() -> str:
    """Return influxd's path, installing Debian's ``influxdb`` package if it is missing."""
    path = shutil.which(INFLUXD)
    if path:
        return path
    subprocess.run(["apt-get", "update", "-qq"], check=True)
    subprocess.run(["apt-get", "install", "-y", "-qq", "influxdb"], check=True)
    path = shutil.which(INFLUXD)
    if not path:
        raise ServiceError("apt-get installed influxdb but influxd is not on PATH")
    return path


def write_config(state_dir: Path, http_port: int, rpc_port: int, auth: bool = False) -> Path:
    """Generate influxd's config from its own defaults with every path and listener rewritten."""
    state_dir.mkdir(parents=True, exist_ok=True)
    default = subprocess.run(
        [ensure_installed(), "config"], capture_output=True, text=True, check=True
    ).stdout
    conf = default
    conf = conf.replace("/var/lib/influxdb", str(state_dir))
    conf = re.sub(r'^bind-address = ".*"', f'bind-address = "127.0.0.1:{rpc_port}"', conf, flags=re.M)
    conf = re.sub(
        r'^(\s+)bind-address = ":8086"', rf'\1bind-address = "127.0.0.1:{http_port}"', conf, flags=re.M
    )
    conf = re.sub(r'^(\s+)bind-address = ":(\d+)"', r'\1bind-address = "127.0.0.1:\2"', conf, flags=re.M)
    conf = re.sub(
        r'^(\s+)bind-socket = ".*"', rf'\1bind-socket = "{state_dir}/influxdb.sock"', conf, flags=re.M
    )
    conf = re.sub(
        r"^(\s+)auth-enabled = \w+", rf"\1auth-enabled = {'true' if auth else 'false'}", conf, flags=re.M
    )
    conf = re.sub(r"^(\s+)(query-)?log-enabled = true", r"\1\2log-enabled = false", conf, flags=re.M)
    conf = re.sub(r"^reporting-enabled = \w+", "reporting-enabled = false", conf, flags=re.M)
    conf = re.sub(r"^(\s+)store-enabled = true", r"\1store-enabled = false", conf, flags=re.M)
    path = state_dir / "influxdb.conf"
    path.write_text(conf)
    return path


def influxdb_command(run_dir: Path, http_port: int, rpc_port: int, name: str = "influxdb") -> list[str]:
    """Write the config for an instance whose state lives in ``run_dir/name``; return its command."""
    config = write_config(run_dir / name, http_port, rpc_port)
    return [ensure_installed(), "-config", str(config)]


def start_influxdb(
    run_dir: Path, http_port: int, rpc_port: int, name: str = "influxdb", timeout_s: float = 30
) -> ProcessRecord:
    """Start influxd and wait for ``/ping``."""
    url = f"http://127.0.0.1:{http_port}"
    cmd = influxdb_command(run_dir, http_port, rpc_port, name)
    record = start_process(name, cmd, run_dir=run_dir, port=http_port, url=url)
    client = InfluxClient(url=url, retries=0, timeout_s=2)
    wait_healthy(record, client.healthy, timeout_s)
    return record
