"""Does the detector keep up with the fleet? Each load mode against a real detector subprocess.

For every mode (``vigil stress load --mode``): a fresh pair of databases in a fresh InfluxDB
(toolkit.stack.influxdb, free loopback ports), a fresh detector subprocess
(``python -m detector.cli run``, online-only: no MLflow listens on its port), the
synthetic fleet for ``--duration`` seconds, then wait for the detector to score the last
interval. Sampled once a second from the detector's ``/health`` and ``/metrics`` and psutil:

* lag = now - watermark (how old the newest scored data is: between ``allowed_lateness`` and
  ``allowed_lateness + interval + poll`` for a detector that keeps up, since an interval is read
  once it is complete and late points had their chance), p50 / p99 / max while the load runs;
* backlog = complete intervals not yet scored (max), and predictions buffered (max);
* RSS of the detector (max) and its CPU use;
* lost = host-intervals written but never scored (counted in InfluxDB after the catch-up);
* catch-up = seconds after the load stopped until the last interval was scored, beyond the
  earliest moment it *could* be (interval end + allowed lateness).

Prints a table, writes it into docs/replay_and_load.md (between the bench markers) and a PNG
of lag over time. Figures, not assertions.

    .venv/bin/python bench/load_modes_bench.py [--modes mini,normal,peak,crisis] [--duration 75]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from conditions import command, header  # noqa: E402
from conditions import load as load_average  # noqa: E402

from stress.detector_process import DetectorProcess, start_detector  # noqa: E402
from stress.fleet_load import MODES, run_load  # noqa: E402
from toolkit.stack.influxdb import start_influxdb  # noqa: E402
from vigil import schema  # noqa: E402
from vigil.influx import InfluxClient, quote_ident, quote_literal, time_range  # noqa: E402
from vigil.processes import free_port, stop_process  # noqa: E402
from vigil.settings import Settings  # noqa: E402

DOC = ROOT / "docs" / "replay_and_load.md"
PNG = ROOT / "docs" / "replay_and_load_lag.png"
BEGIN, END = "<!-- load-bench:begin -->", "<!-- load-bench:end -->"
LATENESS_S, POLL_S, INTERVAL_S = 5.0, 2.0, 10


@dataclass
class Sample:
    t: float
    lag_s: float
    backlog: int
    buffered: float
    rss_mb: float
    cpu_s: float


@dataclass
class ModeResult:
    mode: str
    hosts: int
    target_per_min: float
    achieved_per_min: float = 0.0
    samples: list[Sample] = field(default_factory=list)
    load_start: float = 0.0
    load_end: float = 0.0
    expected: int = 0
    scored: int = 0
    catchup_s: float = float("nan")
    drained: bool = False
    errors: dict[str, float] = field(default_factory=dict)
    #: the machine's 1-minute load average when the mode's load started and when it was scored
    load_before: float = float("nan")
    load_after: float = float("nan")

    def during_load(self) -> list[Sample]:
        return [s for s in self.samples if self.load_start <= s.t <= self.load_end]

    def lag(self, q: float) -> float:
        lags = [s.lag_s for s in self.during_load()]
        return float(np.percentile(lags, q)) if lags else float("nan")

    @property
    def max_backlog(self) -> int:
        return max((s.backlog for s in self.samples), default=0)

    @property
    def max_rss(self) -> float:
        return max((s.rss_mb for s in self.samples), default=float("nan"))

    @property
    def cpu_share(self) -> float:
        load = self.during_load()
        if len(load) < 2:
            return float("nan")
        return (load[-1].cpu_s - load[0].cpu_s) / (load[-1].t - load[0].t)

    @property
    def lost(self) -> int:
        return self.expected - self.scored

    @property
    def kept_up(self) -> bool:
        """No data lost, backlog bounded (at most 2 complete intervals waiting), drained after."""
        return self.lost == 0 and self.max_backlog <= 2 and self.drained


def sampler(det: DetectorProcess, out: list[Sample], stop: threading.Event) -> None:
    while not stop.is_set():
        t = time.time()
        try:
            health = det.health()
            metrics = det.metrics()
        except Exception:  # noqa: BLE001 - a slow answer under load: skip this sample
            stop.wait(1.0)
            continue
        wm = health.get("watermark")
        wm_s = pd.Timestamp(wm).value / 1e9 if wm else t
        backlog = max(0, int((t - LATENESS_S - wm_s) // INTERVAL_S))
        out.append(
            Sample(
                t,
                t - wm_s,
                backlog,
                metrics.get("vigil_detector_buffered_points", 0.0),
                det.rss_mb(),
                det.cpu_seconds(),
            )
        )
        stop.wait(1.0)


def count_scored(client: InfluxClient, db: str, start_s: float, end_s: float) -> int:
    q = (
        f"SELECT count({quote_ident('score')}) FROM {quote_ident(schema.PREDICTIONS.name)} "
        f"WHERE {quote_ident('source')} = {quote_literal('combined')} AND "
        f"{time_range(pd.Timestamp(start_s, unit='s', tz='UTC'), pd.Timestamp(end_s, unit='s', tz='UTC'))}"
    )
    series = client.query(db, q)
    return int(series[0]["values"][0][1]) if series else 0


def run_mode(
    name: str, base: Settings, client: InfluxClient, duration_s: float, catchup_timeout_s: float
) -> ModeResult:
    mode = MODES[name]
    raw_db, vigil_db = f"lb_{name}_raw", f"lb_{name}_vigil"
    for db in (raw_db, vigil_db):
        client.drop_database(db)
        client.create_database(db)
    s = base.model_copy(
        update={
            "run_dir": base.run_dir / name,
            "influx_raw_db": raw_db,
            "influx_vigil_db": vigil_db,
            "detector_port": free_port(),
            "mlflow_port": free_port(),  # nothing listens there: online-only
            "poll_interval_s": POLL_S,
            "allowed_lateness_s": LATENESS_S,
            "feature_interval_s": INTERVAL_S,
        }
    )
    result = ModeResult(name, mode.hosts, mode.points_per_min)
    print(
        f"\n=== {name}: {mode.hosts} hosts every {mode.interval_s} s ({mode.points_per_min:,.0f} points/min)"
    )
    det = start_detector(s, name=f"detector-{name}")
    result.load_before = os.getloadavg()[0]
    stop = threading.Event()
    thread = threading.Thread(target=sampler, args=(det, result.samples, stop), daemon=True)
    thread.start()
    try:
        load = run_load(
            s.influx,
            mode,
            duration_s=duration_s,
            db=raw_db,
            prefix=name,
            echo=lambda line: print("  " + line),
        )
        result.achieved_per_min = load.achieved_per_min
        result.load_start, result.load_end = float(load.first_tick_s or 0), time.time()
        last_end = (int(load.last_tick_s or 0) // INTERVAL_S + 1) * INTERVAL_S  # end of the last interval
        earliest = last_end + LATENESS_S
        deadline = max(time.time(), earliest) + catchup_timeout_s
        while time.time() < deadline:
            wm = det.health().get("watermark")
            if wm and pd.Timestamp(wm).value / 1e9 >= last_end:
                result.drained = True
                result.catchup_s = max(0.0, time.time() - earliest)
                break
            time.sleep(0.5)
        time.sleep(POLL_S + 1)  # the last predictions are flushed at the end of the iteration
        first_interval = int(load.first_tick_s or 0) // INTERVAL_S * INTERVAL_S
        result.expected = mode.hosts * ((last_end - first_interval) // INTERVAL_S)
        result.scored = count_scored(client, vigil_db, first_interval, last_end)
        result.errors = {
            k: v for k, v in det.metrics().items() if k.startswith("vigil_detector_errors_total")
        }
        result.load_after = os.getloadavg()[0]
    finally:
        stop.set()
        thread.join(timeout=5)
        det.stop()
        for db in (raw_db, vigil_db):
            client.drop_database(db)
    print(
        f"  lag p50 {result.lag(50):.1f} s p99 {result.lag(99):.1f} s, backlog max {result.max_backlog}, "
        f"RSS max {result.max_rss:.0f} MB, scored {result.scored}/{result.expected}, "
        f"catch-up {result.catchup_s:.1f} s, errors {result.errors or 'none'}; {load_average()}"
    )
    return result


def table(results: list[ModeResult]) -> str:
    head = (
        "| mode | hosts | points/min (target / achieved) | lag p50 | lag p99 | lag max | backlog max "
        "| buffered max | RSS max | detector CPU | scored / written host-intervals | catch-up | kept up "
        "| load average (start → end) |\n"
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |\n"
    )
    rows = []
    for r in results:
        lags = [s.lag_s for s in r.during_load()]
        rows.append(
            f"| {r.mode} | {r.hosts:,} | {r.target_per_min:,.0f} / {r.achieved_per_min:,.0f} "
            f"| {r.lag(50):.1f} s | {r.lag(99):.1f} s | {max(lags, default=float('nan')):.1f} s "
            f"| {r.max_backlog} | {max((s.buffered for s in r.samples), default=0):,.0f} | {r.max_rss:.0f} MB "
            f"| {100 * r.cpu_share:.0f} % | {r.scored:,} / {r.expected:,} "
            f"| {r.catchup_s:.1f} s | {'yes' if r.kept_up else 'NO'} | {r.load_before:.1f} → {r.load_after:.1f} |"
        )
    return head + "\n".join(rows) + "\n"


def plot(results: list[ModeResult], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4.5))
    for r in results:
        if r.samples:
            t0 = r.load_start
            ax.plot(
                [s.t - t0 for s in r.samples],
                [s.lag_s for s in r.samples],
                label=f"{r.mode} ({r.hosts} hosts)",
            )
    ax.axhline(
        LATENESS_S + INTERVAL_S + POLL_S, color="grey", ls="--", lw=1, label="lateness + interval + poll"
    )
    ax.set_xlabel("seconds since the first tick of the load")
    ax.set_ylabel("detector lag (now - watermark), s")
    ax.set_title("Detector lag under each load mode")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_doc(text: str, path: Path) -> None:
    doc = path.read_text() if path.exists() else f"{BEGIN}\n{END}\n"
    if BEGIN not in doc or END not in doc:
        doc += f"\n{BEGIN}\n{END}\n"
    head, rest = doc.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    path.write_text(f"{head}{BEGIN}\n{text}{END}{tail}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--modes", default="mini,normal,peak,crisis")
    p.add_argument("--duration", type=float, default=75.0, help="Seconds of load per mode.")
    p.add_argument("--catchup-timeout", type=float, default=180.0)
    p.add_argument("--no-doc", action="store_true", help="Print only; do not rewrite docs/.")
    a = p.parse_args()
    print(header(), flush=True)
    names = [m.strip() for m in a.modes.split(",") if m.strip()]
    unknown = [m for m in names if m not in MODES]
    if unknown:
        p.error(f"unknown mode(s) {unknown}; one of {list(MODES)}")
    tmp = Path(tempfile.mkdtemp(prefix="vigil-load-bench-"))
    influx = start_influxdb(tmp, free_port(), free_port())
    results: list[ModeResult] = []
    try:
        base = Settings(_env_file=None, run_dir=tmp / "run", influx_port=influx.port)
        client = InfluxClient(base.influx)
        for name in names:
            results.append(run_mode(name, base, client, a.duration, a.catchup_timeout))
    finally:
        stop_process(influx)
        shutil.rmtree(tmp, ignore_errors=True)
    text = table(results)
    sustained = [r for r in results if r.kept_up]
    best = max(sustained, key=lambda r: r.target_per_min) if sustained else None
    verdict = (
        f"Highest mode sustained: **{best.mode}** ({best.target_per_min:,.0f} points/min, {best.hosts:,} hosts): "
        f"lag p99 {best.lag(99):.1f} s, RSS {best.max_rss:.0f} MB.\n"
        if best
        else "No mode sustained.\n"
    )
    meta = (
        f"\nMeasured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on this machine (2 shared cores) "
        f"by `{command()}`, "
        f"{a.duration:.0f} s of load per mode; detector online-only, poll {POLL_S:g} s, allowed lateness "
        f"{LATENESS_S:g} s, interval {INTERVAL_S} s: a detector that keeps up shows a lag between "
        f"{LATENESS_S:g} and ~{LATENESS_S + INTERVAL_S + POLL_S:g} s. Machine load average at the end: "
        f"{os.getloadavg()[0]:.1f}. Lag over time: `{PNG.name}`.\n\n"
    )
    print("\n" + text + "\n" + verdict)
    if not a.no_doc:
        plot(results, PNG)
        write_doc(verdict + meta + text, DOC)
        print(f"wrote {DOC} and {PNG}")


if __name__ == "__main__":
    main()
