"""How reliable is the live stress suite? Run it several times in a row and print the pass rate.

Each run is exactly the README's live test (``pytest -m live tests/live/test_stress_live.py``: seed,
train and promote a champion, start the collector and the detector on this machine, run every
scenario) in a fresh process with fresh services. For each run: pass or fail, the failing
scenarios, the peak combined score of ``normal_busy_period`` (the one that must stay quiet;
threshold 1), the intervals still flagged after each load ended, and the load average before
and after — the loads run on this machine, so anything else running counts.

    .venv/bin/python bench/live_suite_bench.py --runs 3          # ~13 min a run

Stops by itself after ``--runs`` runs; ``--stop-on-fail`` stops at the first failure.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from conditions import header, load

ROOT = Path(__file__).resolve().parents[1]


def run_once(i: int, out: Path) -> dict:
    report = out / f"run{i}.json"
    env = {**os.environ, "VIGIL_LIVE_REPORT_JSON": str(report)}
    before = load()
    t0 = time.monotonic()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-m",
            "live",
            "-q",
            "-p",
            "no:cacheprovider",
            "tests/live/test_stress_live.py",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    (out / f"run{i}.log").write_text(proc.stdout + proc.stderr)
    reports = json.loads(report.read_text()) if report.exists() else []
    busy = next((r for r in reports if r["scenario"] == "normal_busy_period"), None)
    return {
        "run": i,
        "passed": proc.returncode == 0,
        "minutes": (time.monotonic() - t0) / 60,
        "failing": [r["scenario"] for r in reports if not r["passed"]],
        "busy_peak": busy["peak_score"] if busy else None,
        "after_load": {r["scenario"]: r["alarmed_after_end"] for r in reports if r["anomalous"]},
        "load_before": before,
        "load_after": load(),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--stop-on-fail", action="store_true")
    ap.add_argument("--out", type=Path, default=None, help="folder for each run's log and reports")
    args = ap.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="live-bench-"))
    out.mkdir(parents=True, exist_ok=True)
    print(header(), f"\nlogs and reports under {out}", flush=True)
    results = []
    for i in range(1, args.runs + 1):
        r = run_once(i, out)
        results.append(r)
        failing = ", ".join(r["failing"]) or (
            "—" if r["passed"] else "(the suite did not finish: see the log)"
        )
        peak = "—" if r["busy_peak"] is None else f"{r['busy_peak']:.3f}"
        print(
            f"run {i}: {'PASS' if r['passed'] else 'FAIL'} in {r['minutes']:.1f} min; failing: {failing}; "
            f"normal_busy_period peak {peak}; flagged after each load: {r['after_load']}; "
            f"{r['load_before']} before, {r['load_after']} after",
            flush=True,
        )
        if args.stop_on_fail and not r["passed"]:
            break
    passed = sum(r["passed"] for r in results)
    print(f"\npass rate: {passed}/{len(results)} runs in a row; {load()}")
    (out / "summary.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
