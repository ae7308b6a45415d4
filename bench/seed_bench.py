"""Benchmark ``vigil seed``: 7 days x 10 s x 20 hosts into a throw-away InfluxDB.

Starts its own influxd (temporary folder, free loopback ports), seeds, prints
seconds, points and points/s, and stops the server. The target from issue 9 is
under 2 minutes on the project's 2-core machines. Usage:

    .venv/bin/python bench/seed_bench.py [--days 7] [--hosts 20] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import psutil

from toolkit.seed import seed_history
from toolkit.stack.influxdb import start_influxdb
from vigil.influx import InfluxClient
from vigil.processes import free_port, stop_process
from vigil.settings import Settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=float, default=7.0)
    parser.add_argument("--hosts", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--batch-size", type=int, default=None, help="Lines per write (default: settings).")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="vigil-seed-bench-") as tmp:
        record = start_influxdb(Path(tmp), free_port(), free_port())
        try:
            settings = Settings(_env_file=None, run_dir=Path(tmp) / "run", influx_port=record.port)
            client = InfluxClient(settings.influx)
            server = psutil.Process(record.pid)
            server_cpu0, own_cpu0 = sum(server.cpu_times()[:2]), sum(os.times()[:2])
            began = time.perf_counter()
            result = seed_history(
                client,
                settings.influx,
                settings.collection,
                start="2026-01-05T00:00:00Z",
                hours=args.days * 24,
                hosts=args.hosts,
                seed=args.seed,
                threads=args.threads,
                batch_size=args.batch_size,
                progress=False,
            )
            seconds = time.perf_counter() - began
            server_cpu, own_cpu = sum(server.cpu_times()[:2]) - server_cpu0, sum(os.times()[:2]) - own_cpu0
            print(
                f"hosts={args.hosts} days={args.days:g} interval=10s threads={args.threads} "
                f"batch={args.batch_size or client.batch_size}"
            )
            print(f"seconds={seconds:.1f}")
            print(f"points={result.points}")
            print(f"points_per_s={result.points / seconds:,.0f}")
            # CPU seconds show what the figure would be on an idle machine (the 2 cores are shared).
            print(f"cpu_seconds_seeder={own_cpu:.1f} cpu_seconds_influxd={server_cpu:.1f}")
            print(f"load_average_1m={os.getloadavg()[0]:.1f}")
            print(f"labels={len(result.labels)} anomalous_share={result.anomalous_share:.2%}")
        finally:
            stop_process(record)


if __name__ == "__main__":
    main()
