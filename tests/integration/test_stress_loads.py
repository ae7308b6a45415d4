"""Every scenario's load, at low intensity for a few seconds: measured, within its caps, and gone after.

The machine is shared (2 cores), so intensities here are small; the bounds are the
scenario's own numbers at that intensity, measured on the load processes with psutil.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import requests

from stress import loadgen
from stress.load import LoadRun, ensure_target, make_tmp_dir
from stress.scenarios import SCENARIO_NAMES, SCENARIOS, USERS, check_run_args, get_scenario, plan_loads
from toolkit.stack.services import settings_env
from vigil import schema
from vigil.influx import InfluxClient, quote_ident
from vigil.processes import free_port
from vigil.settings import Settings

DURATION_S = 3.0
#: Low test intensities (fraction of the scenario's full load).
TEST_INTENSITY = {
    "cpu_spike": 0.2,
    "cpu_saturation": 0.1,
    "memory_leak": 0.05,
    "memory_spike": 0.04,
    "http_flood": 0.1,
    "network_burst": 0.1,
    "disk_io_burst": 0.1,
    "normal_busy_period": 1.0,
}
MB = 2**20
PYTHON_BASE_RSS_MB = 60  # an idle generator (interpreter + psutil) stays below this


@pytest.fixture(scope="module")
def load_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings(_env_file=None, run_dir=tmp_path_factory.mktemp("stress-run"), target_port=free_port())


@pytest.fixture(scope="module")
def target_url(load_settings: Settings) -> Iterator[str]:
    with ensure_target(load_settings.stress) as url:
        yield url


class Sampler(threading.Thread):
    """Samples CPU time, RSS and I/O of the load processes until stopped (the last values are their totals)."""

    def __init__(self, pids: list[int]) -> None:
        super().__init__(daemon=True)
        self.procs = {pid: psutil.Process(pid) for pid in pids}
        self.cpu_s: dict[int, float] = {}
        self.peak_rss: dict[int, int] = {}
        self.stop_flag = threading.Event()

    def run(self) -> None:
        while not self.stop_flag.is_set():
            for pid, proc in self.procs.items():
                try:
                    with proc.oneshot():
                        t = proc.cpu_times()
                        self.cpu_s[pid] = t.user + t.system
                        self.peak_rss[pid] = max(self.peak_rss.get(pid, 0), proc.memory_info().rss)
                except psutil.Error:
                    continue
            time.sleep(0.05)


def _stats(url: str) -> dict:
    return requests.get(f"{url}/stats", timeout=5).json()


def test_all_scenarios_registered() -> None:
    assert set(SCENARIO_NAMES) == set(TEST_INTENSITY)
    assert [s.name for s in SCENARIOS.values() if not s.anomalous] == ["normal_busy_period"]


@pytest.mark.parametrize("name", SCENARIO_NAMES)
def test_scenario_load_stays_in_bounds_and_stops_cleanly(
    name: str, load_settings: Settings, target_url: str
) -> None:
    scenario = get_scenario(name)
    intensity = TEST_INTENSITY[name]
    tmp_dir = make_tmp_dir(load_settings.stress)
    specs = plan_loads(scenario, DURATION_S, intensity, target_url=target_url, tmp_dir=tmp_dir)
    before = _stats(target_url)
    began = time.monotonic()
    with LoadRun(specs, tmp_dir, load_settings.run_dir / "logs" / name) as run:
        pids = run.pids
        sampler = Sampler(pids)
        sampler.start()
        assert run.wait(DURATION_S + 8), "generators must end by their own deadline"
        sampler.stop_flag.set()
        sampler.join()
    elapsed = time.monotonic() - began
    after = _stats(target_url)

    # Bounded in time, nothing left behind, temp files gone.
    assert DURATION_S <= elapsed < DURATION_S + 5
    assert not [pid for pid in pids if psutil.pid_exists(pid)]
    assert not tmp_dir.exists()
    assert run.errors() == []
    summaries = run.summaries()
    assert len(summaries) == len(specs)
    generators = [s for s in specs if s.kind != USERS]  # summaries: generator processes first

    for spec, pid, summary in zip(generators, pids, summaries[: len(generators)], strict=True):
        p = spec.params
        assert (
            summary["kind"] == spec.kind and summary["elapsed_s"] <= DURATION_S + 2.0
        )  # one last write/fsync may overrun on a slow disk
        rss_mb = sampler.peak_rss[pid] / MB
        if spec.kind == "cpu":
            # It burned about duty x duration of CPU, never more (plus interpreter start-up).
            assert p["duty"] * DURATION_S * 0.4 <= sampler.cpu_s[pid] <= p["duty"] * DURATION_S + 0.6
        if spec.kind == "memory":
            assert summary["held_mb"] <= p["target_mb"]
            assert p["target_mb"] * 0.8 <= rss_mb <= p["target_mb"] + PYTHON_BASE_RSS_MB
        else:
            assert rss_mb <= PYTHON_BASE_RSS_MB
        if spec.kind == "disk":
            assert 0 < summary["written_mb"] <= p["mb_per_s"] * DURATION_S + 1
            assert summary["read_mb"] == summary["written_mb"]

    served = after["total_requests"] - before["total_requests"] - 1  # minus our own /stats call
    kinds = {s.kind for s in specs}
    if "http" in kinds:
        spec = next(s for s in specs if s.kind == "http")
        planned = spec.params["rps"] * DURATION_S
        assert planned * 0.5 <= served <= planned + spec.params["concurrency"]
        assert sum(s["requests"] for s in summaries) == served
    elif "net" in kinds:
        spec = next(s for s in specs if s.kind == "net")
        moved = (after["bytes_in"] - before["bytes_in"]) + (after["bytes_out"] - before["bytes_out"])
        budget = spec.params["bytes_per_s"] * DURATION_S
        assert budget * 0.4 <= moved <= budget + spec.params["chunk_kb"] * 1024 + 4096
    else:
        assert served == 0  # scenarios without traffic send none; busier users are counted apart
    if USERS in kinds:
        # No process of its own: the app's everyday users were busier for the window, then back.
        spec = next(s for s in specs if s.kind == USERS)
        busy = summaries[-1]
        assert pids == [] and busy["kind"] == USERS and busy["elapsed_s"] >= DURATION_S
        rate = after["usual_requests"] - before["usual_requests"]
        usual = requests.get(f"{target_url}/control/users", timeout=5).json()
        planned = (usual["usual_rps"] + spec.params["extra_rps"]) * DURATION_S
        assert planned * 0.4 <= busy["usual_requests"] <= planned * 1.8 + 5
        assert busy["usual_requests"] <= rate  # the /stats reads bracket the period
        assert usual["current_rps"] == usual["usual_rps"] and usual["busy_left_s"] == 0


def test_caps_hold_whatever_is_asked(tmp_path: Path) -> None:
    assert loadgen.clamp_params("cpu", {"duty": 7, "duration_s": 10**6}) == {"duty": 1.0, "duration_s": 900.0}
    mem = loadgen.clamp_params("memory", {"target_mb": 10**7, "ramp_s": 5, "duration_s": 2})
    assert mem["target_mb"] <= loadgen.MAX_MEMORY_MB
    assert mem["target_mb"] <= 0.3 * psutil.virtual_memory().available / MB + 1
    assert mem["ramp_s"] == 2
    http = loadgen.clamp_params("http", {"url": "http://127.0.0.1:1", "rps": 1e9, "concurrency": 10**4})
    assert (http["rps"], http["concurrency"]) == (loadgen.MAX_HTTP_RPS, loadgen.MAX_HTTP_CONCURRENCY)
    disk = loadgen.clamp_params("disk", {"dir": str(tmp_path), "mb_per_s": 1e6, "max_file_mb": 1e6})
    assert (disk["mb_per_s"], disk["max_file_mb"]) == (loadgen.MAX_DISK_MB_PER_S, loadgen.MAX_DISK_FILE_MB)


@pytest.mark.parametrize(
    "url",
    [
        "http://10.1.2.3:80",
        "http://localhost:8090",
        "http://example.com:80",
        "https://127.0.0.1:1",
        "http://127.0.0.1",
    ],
)
def test_traffic_only_to_127_0_0_1(url: str) -> None:
    with pytest.raises(loadgen.LoadError, match="127.0.0.1"):
        loadgen.clamp_params("net", {"url": url})
    # The generator process refuses too, before sending anything.
    out = subprocess.run(
        [sys.executable, "-m", "stress.loadgen", "http", json.dumps({"url": url, "duration_s": 1})],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 2 and "127.0.0.1" in out.stderr


def test_bad_run_arguments_are_errors() -> None:
    spike = get_scenario("cpu_spike")
    assert check_run_args(spike, None, None) == (spike.default_duration_s, 1.0)
    for duration, intensity in ((0, 0.5), (spike.max_duration_s + 1, 0.5), (10, 0), (10, 1.5)):
        with pytest.raises(ValueError):
            check_run_args(spike, duration, intensity)
    with pytest.raises(KeyError, match="known: cpu_spike"):
        get_scenario("nope")
    with pytest.raises(loadgen.LoadError):
        loadgen.clamp_params("fork_bomb", {})


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_cli_run_stops_on_signal_and_leaves_nothing(
    sig: int, settings: Settings, fresh_db: str, influx: InfluxClient
) -> None:
    """``vigil stress run`` killed mid-load: loads gone, label shortened to what ran, report written."""
    run_settings = settings.model_copy(
        update={
            "influx_vigil_db": fresh_db,
            "influx_raw_db": fresh_db,
            "hostname": "stress-signal-test",
            "target_port": free_port(),
        }
    )
    env = {**os.environ, **settings_env(run_settings)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "toolkit.cli",
            "stress",
            "run",
            "disk_io_burst",
            "--duration",
            "60",
            "--intensity",
            "0.05",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    pids: list[int] = []
    output: list[str] = []
    deadline = time.monotonic() + 60
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        output.append(line)
        found = re.search(r"pids \[([\d, ]+)\]", line)
        if found:
            pids = [int(x) for x in found.group(1).split(",")]
            break
    assert pids, "".join(output)
    time.sleep(2)
    assert all(psutil.pid_exists(p) for p in pids)
    tmp_files = list((run_settings.run_dir / "stress-tmp").glob("run-*/*"))
    assert tmp_files, "the disk load writes its temp file under the run folder"
    proc.send_signal(sig)
    rest, _ = proc.communicate(timeout=30)
    output.append(rest)
    text = "".join(output)
    assert proc.returncode == 130, text
    assert not [p for p in pids if psutil.pid_exists(p)]
    assert not any(f.exists() for f in tmp_files)
    assert "interrupted" in text

    labels = influx.query_df(fresh_db, f"SELECT * FROM {quote_ident(schema.LABELS.name)}")
    assert len(labels) == 1
    row = labels.iloc[0]
    assert row["host"] == "stress-signal-test" and row["kind"] == "burst" and row["source"] == "stress"
    assert 1.0 < row["duration_s"] < 20.0  # shortened from the planned 60 s to what really ran
    assert row["end_ns"] - labels["time"].iloc[0].value == pytest.approx(row["duration_s"] * 1e9, rel=1e-6)

    report_md = re.search(r"report (\S+report\.md)", text)
    assert report_md, text
    md = Path(report_md.group(1)).read_text()
    assert "interrupted" in md and "NO DATA" in md  # no detector runs here: the report says so
