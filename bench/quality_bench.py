"""What the data-quality guard costs the detector per read, beside the per-interval aggregation
it precedes: the same raw frames the reader gets (every query group, one point per host and
device), for N hosts and one interval, clean and with 1 % bad values.

    .venv/bin/python bench/quality_bench.py --hosts 1000 10000 --seconds 10

Prints milliseconds per read (median of repeated runs lasting --seconds each) and the load average.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
import pandas as pd

from vigil.features.quality import QualityReport
from vigil.features.source import GROUP_KEYS, QUERY_GROUPS, group_series_tags, guard_group, per_interval

NS = 1_000_000_000


def raw_frames(hosts: int, bad_share: float, seed: int = 0) -> dict[str, pd.DataFrame]:
    """One interval of raw points per query group, as the reader's answers look (two devices for
    per-device groups), with ``bad_share`` of the values out of their bounds."""
    rng = np.random.default_rng(seed)
    names = np.array([f"host-{i:05d}" for i in range(hosts)], dtype=object)
    t0 = pd.Timestamp("2026-12-01T00:00:00Z")
    frames = {}
    for name, key in GROUP_KEYS.items():
        tags = group_series_tags(key)
        devices = ["eth0", "eth1"] if len(tags) > 1 else [None]
        parts = []
        for dev in devices:
            part = pd.DataFrame(
                {"time": t0 + pd.to_timedelta(rng.integers(0, 10, hosts), unit="s"), "host": names}
            )
            if dev is not None:
                part[tags[1]] = dev
            for f in QUERY_GROUPS[key]:
                values = rng.uniform(max(f.bounds.low, 0.0), min(f.bounds.high, 1e9), hosts)
                values[rng.random(hosts) < bad_share] = -1.0  # below every field's bounds
                part[f.field] = values
            parts.append(part)
        frames[name] = pd.concat(parts, ignore_index=True)
    return frames


def timed(fn, seconds: float) -> float:
    """Median milliseconds of ``fn()`` over runs lasting ``seconds`` in all."""
    runs: list[float] = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end or len(runs) < 5:
        t = time.perf_counter()
        fn()
        runs.append((time.perf_counter() - t) * 1000)
    return statistics.median(runs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hosts", type=int, nargs="+", default=[1000, 10000])
    ap.add_argument("--seconds", type=float, default=10.0)
    args = ap.parse_args()
    now = int(pd.Timestamp("2026-12-01T00:01:00Z").value)
    print(f"load average before: {os.getloadavg()}")
    print("hosts  bad%  guard ms/read  per_interval ms/read  guard/aggregation")
    for hosts in args.hosts:
        for bad in (0.0, 0.01):
            frames = raw_frames(hosts, bad)

            def guard(frames: dict[str, pd.DataFrame] = frames) -> None:
                QualityReport.merge(
                    [guard_group(n, f, now_ns=now, interval_s=10)[1] for n, f in frames.items()]
                )

            def aggregate(frames: dict[str, pd.DataFrame] = frames) -> None:
                for n, f in frames.items():
                    per_interval(n, f, 10)

            g, a = timed(guard, args.seconds), timed(aggregate, args.seconds)
            print(f"{hosts:>6} {100 * bad:>4.0f}  {g:>13.1f}  {a:>20.1f}  {g / a:>17.2f}")
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
