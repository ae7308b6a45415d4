"""Scoring API throughput and latency: requests/s and p50/p95/p99 for batch sizes 1, 10, 100, 1,000.

A real detector (in process, its loop run over seeded history in a throw-away InfluxDB, with an
IsolationForest champion) serves the API over loopback; one client, in a process of its own (so
its work does not compete with the server for the interpreter lock, as a real client's would not), posts
``/predict/batch`` with raw Telegraf rows of the known hosts, for at most ``--requests`` requests
or ``--seconds`` seconds per batch size, whichever comes first (bounded load), after a warm-up of
``--warmup`` requests. Prints the command, then one line per batch size: requests/s, rows/s,
latency percentiles and the machine's load average when that batch size finished.

    .venv/bin/python bench/api_bench.py [--requests 2000] [--seconds 20] [--hosts 20]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from conditions import header, load  # noqa: E402
from detector_support import detector_settings, fit_model  # noqa: E402

from detector.api import serve_detector  # noqa: E402
from detector.factory import build_detector  # noqa: E402
from detector.service import NS  # noqa: E402
from toolkit.seed import seed_history  # noqa: E402
from toolkit.stack.influxdb import start_influxdb  # noqa: E402
from vigil.features import FeaturePipeline  # noqa: E402
from vigil.influx import InfluxClient  # noqa: E402
from vigil.model import LoadedModel  # noqa: E402
from vigil.processes import free_port, stop_process  # noqa: E402
from vigil.settings import Settings  # noqa: E402

START = pd.Timestamp("2026-05-05T00:00:00Z")


def raw_rows(n: int, hosts: list[str], rng: np.random.Generator, t0: pd.Timestamp) -> list[dict]:
    """``n`` Telegraf-schema rows spread over the known hosts, consecutive gathers per host."""
    rows = []
    for i in range(n):
        host = hosts[i % len(hosts)]
        t = t0 + pd.Timedelta(seconds=10 * (i // len(hosts)))
        rows.append(
            {
                "host": host,
                "time": t.isoformat(),
                "cpu": {"usage_idle": float(rng.uniform(60, 95)), "usage_iowait": float(rng.uniform(0, 3))},
                "mem": {"used_percent": float(rng.uniform(30, 60))},
                "system": {"load1": float(rng.uniform(0.1, 2)), "n_cpus": 4},
                "processes": {"total": int(rng.integers(300, 420))},
                "net": {"bytes_recv": 10**9 + 10**5 * i, "bytes_sent": 10**9 + 5 * 10**4 * i},
                "diskio": {"read_bytes": 10**10 + 10**4 * i, "write_bytes": 10**10 + 2 * 10**4 * i},
            }
        )
    return rows


def run(
    url: str, batch: int, hosts: list[str], max_requests: int, max_seconds: float, warmup: int = 20
) -> dict:
    rng = np.random.default_rng(batch)
    body = {"rows": raw_rows(batch, hosts, rng, START + pd.Timedelta(hours=1))}
    session = requests.Session()
    for _ in range(max(1, warmup if batch < 1000 else 2)):
        session.post(url + "/predict/batch", json=body, timeout=60).raise_for_status()
    latencies = []
    t_start = time.perf_counter()
    while len(latencies) < max_requests and time.perf_counter() - t_start < max_seconds:
        t0 = time.perf_counter()
        resp = session.post(url + "/predict/batch", json=body, timeout=60)
        latencies.append(time.perf_counter() - t0)
        if resp.status_code != 200:
            raise RuntimeError(f"batch {batch}: HTTP {resp.status_code}: {resp.text[:300]}")
    wall = time.perf_counter() - t_start
    ms = np.array(latencies) * 1e3
    return {
        "batch": batch,
        "requests": len(latencies),
        "req_s": len(latencies) / wall,
        "rows_s": len(latencies) * batch / wall,
        "p50": float(np.percentile(ms, 50)),
        "p95": float(np.percentile(ms, 95)),
        "p99": float(np.percentile(ms, 99)),
        "mean": statistics.fmean(ms),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=2000, help="Most requests per batch size.")
    ap.add_argument("--seconds", type=float, default=20.0, help="Most seconds per batch size.")
    ap.add_argument("--warmup", type=int, default=20, help="Requests sent before timing each batch size.")
    ap.add_argument("--hosts", type=int, default=20, help="Hosts the detector knows.")
    ap.add_argument("--batches", default="1,10,100,1000")
    args = ap.parse_args()
    print(header(), flush=True)
    work = Path(tempfile.mkdtemp(prefix="api-bench-"))
    record = start_influxdb(work / "influx", free_port(), free_port())
    try:
        base = Settings(_env_file=None, run_dir=work / "run", influx_port=record.port)
        client = InfluxClient(base.influx)
        for db in ("bench_raw", "bench_vigil"):
            client.create_database(db)
        s = detector_settings(base, work / "run", "bench_raw", "bench_vigil")
        print(f"seeding 20 min of {args.hosts} hosts, running the detector over it ...", flush=True)
        seeded = seed_history(
            client,
            s.influx,
            s.collection,
            start=START,
            hours=20 / 60,
            hosts=args.hosts,
            seed=1,
            progress=False,
        )
        _, feats = FeaturePipeline().update_from_influx(client, "bench_raw", seeded.start, seeded.end, 10)
        det = build_detector(s, start=seeded.start)
        det.watcher.current = LoadedModel(name="bench", version=1, run_id=None, model=fit_model(feats))
        while det.watermark_ns is None or det.watermark_ns < seeded.end.value:
            det.run_once(now=seeded.end.value / NS)
        # the seeded anomalies opened incidents whose bundles are captured by a background thread:
        # let it finish, or it competes with the API for the interpreter's lock while timed
        det.incidents.close()
        server = serve_detector(det)
        url = f"http://127.0.0.1:{server.port}"
        hosts = seeded.hosts
        print(f"detector API on {url}: {len(hosts)} known hosts, champion + online model (no learning)")
        print(
            f"{'batch':>6} {'requests':>8} {'req/s':>8} {'rows/s':>9} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8}"
        )
        client_process = mp.get_context("spawn").Pool(1)  # the client is not in the server's process
        for batch in (int(b) for b in args.batches.split(",")):
            r = client_process.apply(run, (url, batch, hosts, args.requests, args.seconds, args.warmup))
            print(
                f"{r['batch']:>6} {r['requests']:>8} {r['req_s']:>8.1f} {r['rows_s']:>9.0f} "
                f"{r['p50']:>8.1f} {r['p95']:>8.1f} {r['p99']:>8.1f}  {load()}",
                flush=True,
            )
        client_process.close()
        server.stop()
        det.shutdown()
    finally:
        stop_process(record)


if __name__ == "__main__":
    main()
