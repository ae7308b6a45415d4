"""Per-sample cost of vigil.online.OnlineDetector (score + learn), printed, not asserted.

The detector must score >= 5,000 host-intervals/s on 2 cores, i.e. well under ~200 µs per
sample on one core; this prints µs/sample for the default config and a few alternatives.

    .venv/bin/python bench/bench_online.py [--n 20000] [--features 6]
"""

from __future__ import annotations

import argparse
import random
import time

from vigil.online import OnlineConfig, OnlineDetector


def measure(config: OnlineConfig, n: int, n_features: int) -> float:
    rng = random.Random(1)
    names = [f"f{i}" for i in range(n_features)]
    rows = [{f: rng.gauss(0, 1) for f in names} for _ in range(n)]
    det = OnlineDetector(names, config)
    for x in rows[: config.window_size + 10]:  # build trees, first window flip
        det.process(x)
    start = time.perf_counter()
    for x in rows:
        det.process(x)
    return (time.perf_counter() - start) / n * 1e6


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=20000)
    p.add_argument("--features", type=int, default=6)
    a = p.parse_args()
    variants = {
        "default": OnlineConfig(),
        "trees=25,height=8": OnlineConfig(n_trees=25, height=8),
        "trees=10,height=6": OnlineConfig(n_trees=10, height=6),
        "calibration=none": OnlineConfig(calibration="none"),
        # the NAB profile (pipelines/nab/runner.py): two named members, record threshold
        "nab profile": OnlineConfig(
            extreme_features=("f0", "f1"),
            hst_member=False,
            threshold_mode="record",
            calibration_window=1_000_000,
        ),
    }
    for name, cfg in variants.items():
        us = measure(cfg, a.n, a.features)
        print(f"{name:22s} {us:8.1f} µs/sample  {1e6 / us:9.0f} samples/s/core")


if __name__ == "__main__":
    main()
