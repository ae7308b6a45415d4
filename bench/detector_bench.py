"""Detector throughput, lag and memory at 1,000 and 10,000 hosts (printed, not asserted).

For each fleet size, against a private influxd on free ports:

1. **reference**: raw InfluxDB write throughput of the same points (6 Telegraf measurements per
   host and interval, batches of ``influx_batch_size``);
2. **throughput**: ``--catchup`` intervals already in InfluxDB, timed end to end through the
   detector (read -> features -> champion + online model -> combined -> prediction writes);
3. **lag**: ``--live`` intervals written in real time (each interval's points at its end, from a separate
   writer process, as a Telegraf flush would); lag = prediction written - point written, p50/p99.

With ``--workers N`` (several values: one run each) the detector runs as ``vigil detector run
--workers N`` runs it: N shard processes (``VIGIL_DETECTOR__SHARD_INDEX`` / ``VIGIL_DETECTOR__SHARD_COUNT``), started
together; throughput is every worker's host-intervals over the wall time from the first worker's
start to the last one's finish, an interval's lag is its slowest worker's, and the peak RSS is
the largest worker's. "vs raw write" is the throughput over the raw InfluxDB write reference.

The champion is a real MLflow pyfunc (IsolationForest, the ``vigil.model`` contract) registered
in a private MLflow server with the ``champion`` alias, and the detector loads it as the service
does (``ChampionWatcher``: the alias over REST, the version through the loader child). The
detector runs in its own spawned process (a fresh interpreter started like ``vigil detector
run``), so its peak RSS (``VmHWM``, see :func:`peak_rss_mb`) is the detector's alone, not this harness's (which trains
the champion and builds the points) nor the loader child's (a few seconds, at load only).

The catch-up is long enough to be stable by default: at least 10 intervals, and at least 50,000
host-intervals (1,000 hosts: 50 intervals, ~8 s), because a half-second catch-up moved by 20 %
from run to run. Every figure line ends with the machine's load average when it was taken
(``bench/conditions.py``); the first line names the command.

    .venv/bin/python bench/detector_bench.py [--hosts 1000 10000] [--catchup N] [--live 5] [--workers 1 2]
"""

from __future__ import annotations

from detector.lean import make_process_lean

if __name__ == "__mp_main__":  # the spawned detector process starts like ``vigil detector run``
    make_process_lean()

import argparse
import logging
import multiprocessing as mp
import os
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from conditions import header, load

from toolkit.stack.influxdb import start_influxdb
from toolkit.stack.mlflow_server import start_mlflow
from vigil.features import FEATURE_COLUMNS
from vigil.influx import InfluxClient
from vigil.model import AnomalyModel, SklearnScorer
from vigil.processes import free_port, stop_process
from vigil.settings import MlflowSettings, Settings

INTERVAL_S = 10
#: The least catch-up the bench times by default: intervals, and host-intervals (whichever is more).
MIN_CATCHUP_INTERVALS, MIN_CATCHUP_HOST_INTERVALS = 10, 50_000
#: A live interval is read this long after it ends. The writer needs up to ~1.5 s for 60,000
#: points on this 2-core machine beside the detector; less, and points arrive after their interval
#: was scored (counted as ``late points`` in the output, which must be 0 for the lag to mean much).
LATENESS_S = 2.5


def peak_rss_mb() -> float:
    """This process's peak resident memory since its program started (``VmHWM``), in MB.

    Why not ``ru_maxrss``: Linux keeps it across ``execve``, and a spawned process begins as a
    fork of this harness, so it reported the harness's size at the fork (270 MB at 1,000 hosts,
    with the harness's MLflow and training data) whenever that was larger than the detector's
    own peak. ``VmHWM`` belongs to the address space that ``execve`` starts afresh.
    """
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # not Linux


def default_catchup(hosts: int) -> int:
    """Catch-up intervals for ``hosts``: at least 10, and at least 50,000 host-intervals."""
    return max(MIN_CATCHUP_INTERVALS, -(-MIN_CATCHUP_HOST_INTERVALS // max(1, hosts)))


def interval_lines(hosts: int, t_s: int, i: int, rng: np.random.Generator) -> list[str]:
    """Telegraf-schema lines (6 measurements) for every host at one time."""
    idle = 90 - rng.gamma(2.0, 3.0, hosts)
    mem = 40 + rng.normal(0, 1, hosts)
    out = []
    for h in range(hosts):
        host = f"bench-{h:05d}"
        out += [
            f"cpu,cpu=cpu-total,host={host} usage_idle={idle[h]:.3f},usage_iowait=0.5 {t_s}",
            f"mem,host={host} used_percent={mem[h]:.3f} {t_s}",
            f"system,host={host} load1=0.5,n_cpus=4i {t_s}",
            f"processes,host={host} total={200 + h % 7}i {t_s}",
            f"net,host={host},interface=eth0 bytes_recv={10**6 + 5000 * i + h}i,bytes_sent={10**6 + 2500 * i}i {t_s}",
            f"diskio,host={host},name=sda read_bytes={4000 * i}i,write_bytes={9000 * i + h}i {t_s}",
        ]
    return out


def register_champion(registry: MlflowSettings) -> int:
    """Register a real MLflow pyfunc champion (IsolationForest, the ``vigil.model`` contract).

    MLflow is imported here, in the harness only: the spawned detector process re-imports this
    module's top level, and must not get MLflow from it.
    """
    from sklearn.ensemble import IsolationForest
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    from vigil.pyfunc import register_anomaly_model

    rng = np.random.default_rng(0)
    x = rng.normal(size=(2000, len(FEATURE_COLUMNS)))
    pipe = Pipeline([("s", StandardScaler()), ("f", IsolationForest(n_estimators=100, random_state=0))]).fit(
        x
    )
    scorer = SklearnScorer.fit_reference(pipe, x)
    model = AnomalyModel(scorer, float(np.quantile(scorer.score_scaled(scorer.scaled(x)), 0.995)), "iforest")
    return register_anomaly_model(registry, model, experiment="detector-bench", pip_requirements=["mlflow"])


def _live_writer(
    base: Settings, raw_db: str, hosts: int, first: int, catchup: int, live: int, queues
) -> None:
    """Another process, like Telegraf: writes each live interval's points right after it ends
    and tells every detector process when (one queue each)."""
    client = InfluxClient(base.influx)
    rng = np.random.default_rng(hosts + 1)
    # intervals that ended while the detector caught up are skipped: the detector would score
    # them before their points exist (late points, and a meaningless lag)
    skip = 0
    while first + (catchup + skip + 1) * INTERVAL_S <= time.time():
        skip += 1
    for k in range(skip, skip + live):
        start_s = first + (catchup + k) * INTERVAL_S
        time.sleep(max(0.0, start_s + INTERVAL_S - time.time()))
        client.write_lines(raw_db, interval_lines(hosts, start_s, catchup + k, rng), precision="s")
        for queue in queues:
            queue.put((start_s, time.time()))


def _detector_process(s: Settings, first: int, catchup: int, live: int, go, written, out) -> None:
    """One detector (or one shard worker) in a fresh interpreter (spawned), so its peak RSS is
    its own.

    Loads the champion as the service does (``ChampionWatcher.check_once``), waits for ``go``
    (every worker starts the catch-up at once), processes the catch-up intervals as fast as it
    can (timed, wall clock), then polls like ``vigil detector run`` while the writer process adds
    the live intervals; reports its figures on ``out``.
    """
    import sys

    from detector.factory import build_detector

    det = build_detector(s, start=pd.Timestamp(first, unit="s", tz="UTC"))
    if not det.watcher.check_once():
        raise RuntimeError(f"the detector did not load the champion: {det.watcher.last_error}")
    out.put(("ready", s.detector.shard_index))
    go.wait()
    target = (first + catchup * INTERVAL_S) * 10**9
    began = time.time()
    cpu0 = _cpu_seconds()
    host_intervals = 0
    while det.watermark_ns < target:
        r = det.run_once(now=first + catchup * INTERVAL_S + s.detector.allowed_lateness_s)
        host_intervals += r.host_intervals
    det.sink.flush(force=True)
    finished = time.time()
    catchup_cpu_s = _cpu_seconds() - cpu0
    out.put(("caught up", s.detector.shard_index))  # the harness starts the live writer once all are

    written_at: dict[int, float] = {}
    done_at: dict[int, float] = {}
    deadline = time.time() + (live + 6) * INTERVAL_S + 60
    while len(done_at) < live and time.time() < deadline:
        t_loop = time.monotonic()
        det.run_once()
        while not written.empty():
            start_s, t = written.get()
            written_at[start_s] = t
        if det.sink.buffered <= 1:
            t = time.time()
            for start_s in list(written_at):
                if start_s not in done_at and (start_s + INTERVAL_S) * 10**9 <= det.watermark_ns:
                    done_at[start_s] = t
        time.sleep(det.next_wait_s(time.monotonic() - t_loop))  # as ``Detector.run`` sleeps
    det.shutdown()
    out.put(
        (
            "result",
            {
                "host_intervals": host_intervals,
                "began": began,
                "cpu_s": catchup_cpu_s,
                "finished": finished,
                "written_at": written_at,
                "done_at": done_at,
                "rss_mb": peak_rss_mb(),
                "rss_mb_ru_maxrss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "late_points": det.metrics.errors.get("late_point", 0),
                "mlflow_imported": "mlflow" in sys.modules,
            },
        )
    )


def _cpu_seconds() -> float:
    """CPU time of this process, every thread (user + system), in seconds."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _expect(out, kind: str, n: int, timeout_s: float) -> list:
    """``n`` messages of ``kind`` from the detector processes (in any order)."""
    got = []
    deadline = time.monotonic() + timeout_s
    while len(got) < n:
        msg_kind, payload = out.get(timeout=max(1.0, deadline - time.monotonic()))
        if msg_kind != kind:
            raise RuntimeError(f"expected {kind!r} from the detector processes, got {msg_kind!r}")
        got.append(payload)
    return got


def run_size(
    base: Settings,
    hosts: int,
    catchup: int,
    live: int,
    tmp: Path,
    workers: int = 1,
    influxd_pid: int | None = None,
) -> dict:
    """One fleet size: the write reference, the catch-up (``workers`` shard processes at once,
    as ``vigil detector run --workers`` runs them) and the live lag."""
    client = InfluxClient(base.influx)
    raw_db, vigil_db = f"bench_raw_{hosts}", f"bench_vigil_{hosts}"
    for db in (raw_db, vigil_db):
        client.drop_database(db)
        client.create_database(db)
    rng = np.random.default_rng(hosts)
    s = base.model_copy(
        update={
            "run_dir": tmp / f"run{hosts}-{workers}",
            "influx_raw_db": raw_db,
            "influx_vigil_db": vigil_db,
            "allowed_lateness_s": LATENESS_S,
            "detector_history_hours": 0.0,
            "checkpoint_every": 12,
            "warmup_s": 0,
        }
    )
    now_s = int(time.time()) // INTERVAL_S * INTERVAL_S
    first = now_s - (catchup + 1) * INTERVAL_S

    # 1: write the catch-up intervals (timed: the reference)
    write_s, points = 0.0, 0
    for i in range(catchup):
        lines = interval_lines(hosts, first + i * INTERVAL_S, i, rng)
        t0 = time.perf_counter()
        client.write_lines(raw_db, lines, precision="s")
        write_s += time.perf_counter() - t0
        points += len(lines)

    # 2 + 3: the detector processes catch up together (timed), then score the live intervals
    # that the writer process adds in real time
    spawn = mp.get_context("spawn")
    go, out = spawn.Event(), spawn.Queue()
    queues = [spawn.Queue() for _ in range(workers)]
    procs = []
    for i in range(workers):
        shard = s.model_copy(update={"shard_index": i, "shard_count": workers})
        procs.append(
            spawn.Process(
                target=_detector_process, args=(shard, first, catchup, live, go, queues[i], out), daemon=True
            )
        )
        procs[-1].start()
    _expect(out, "ready", workers, 600)
    import psutil  # here: the spawned detector processes re-import this module's top level

    influxd = psutil.Process(influxd_pid) if influxd_pid else None
    influx_cpu0 = sum(influxd.cpu_times()[:2]) if influxd else float("nan")
    go.set()
    _expect(out, "caught up", workers, 600)
    influx_cpu_s = sum(influxd.cpu_times()[:2]) - influx_cpu0 if influxd else float("nan")
    writer = mp.get_context("fork").Process(
        target=_live_writer, args=(base, raw_db, hosts, first, catchup, live, queues), daemon=True
    )
    writer.start()
    results = _expect(out, "result", workers, (catchup + live + 3) * INTERVAL_S + 600)
    writer.join(timeout=30)
    for proc in procs:
        proc.join(timeout=30)
    # an interval's lag is its slowest worker's: written -> every worker has written its predictions
    lags = []
    for start_s, written in results[0]["written_at"].items():
        done = [r["done_at"].get(start_s) for r in results]
        if all(d is not None for d in done):
            lags.append(max(done) - written)
    lags = np.array(lags)
    for db in (raw_db, vigil_db):
        client.drop_database(db)
    e2e = max(r["finished"] for r in results) - min(r["began"] for r in results)
    scored = sum(r["host_intervals"] for r in results)
    reference = hosts * catchup / write_s
    return {
        "hosts": hosts,
        "workers": workers,
        "host_intervals": scored,
        "e2e_s": e2e,
        "hi_per_s": scored / e2e,
        "influx_points_per_s": points / write_s,
        "influx_host_intervals_per_s": reference,
        "ratio": scored / e2e / reference,
        # CPU seconds per 10,000 host-intervals of the catch-up: steadier than wall time on a shared
        # machine, and what bounds the throughput (cores / (detector + influxd CPU per host-interval))
        "detector_cpu_per_10k": sum(r["cpu_s"] for r in results) / scored * 10_000,
        "influxd_cpu_per_10k": influx_cpu_s / scored * 10_000,
        "lag_p50": float(np.percentile(lags, 50)) if len(lags) else float("nan"),
        "lag_p99": float(np.percentile(lags, 99)) if len(lags) else float("nan"),
        "lag_n": len(lags),
        "rss_mb": max(r["rss_mb"] for r in results),
        "late_points": sum(r["late_points"] for r in results),
        "mlflow_imported": any(r["mlflow_imported"] for r in results),
        "rss_mb_ru_maxrss": max(r["rss_mb_ru_maxrss"] for r in results),
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--hosts", type=int, nargs="+", default=[1000, 10000])
    p.add_argument(
        "--catchup",
        type=int,
        default=None,
        help=f"Intervals already in InfluxDB that the detector catches up on, timed (default: "
        f"{MIN_CATCHUP_INTERVALS} or more, at least {MIN_CATCHUP_HOST_INTERVALS:,} host-intervals).",
    )
    p.add_argument("--live", type=int, default=5, help="Intervals written in real time (the lag).")
    p.add_argument(
        "--workers",
        type=int,
        nargs="+",
        default=[1],
        help="Shard processes, as `vigil detector run --workers N` runs them (several values: one run each).",
    )
    a = p.parse_args()
    print(header(), flush=True)
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        http_port = free_port()
        record = start_influxdb(tmp / "svc", http_port, free_port(), name="bench-influx")
        mlflow_record = None
        try:
            mlflow_record = start_mlflow(tmp / "svc", free_port(), name="bench-mlflow", timeout_s=240)
            base = Settings(
                _env_file=None,
                run_dir=tmp,
                influx_port=http_port,
                mlflow_port=mlflow_record.port,
                model_name="bench-champion",
            )
            register_champion(base.mlflow)
            print(
                f"{'hosts':>6} {'workers':>7} {'host-int/s':>11} {'e2e s':>7} {'vs raw write':>12} "
                f"{'lag p50':>8} {'lag p99':>8} {'peak RSS MB':>11}"
            )
            for n in a.hosts:
                for w in a.workers:
                    r = run_size(
                        base,
                        n,
                        a.catchup or default_catchup(n),
                        a.live,
                        tmp,
                        workers=w,
                        influxd_pid=record.pid,
                    )
                    print(
                        f"{r['hosts']:>6} {r['workers']:>7} {r['hi_per_s']:>11.0f} {r['e2e_s']:>7.2f} "
                        f"{r['ratio']:>11.0%} {r['lag_p50']:>7.2f}s {r['lag_p99']:>7.2f}s {r['rss_mb']:>11.0f}  "
                        f"{load()}",
                        flush=True,
                    )
                    print(
                        f"       ({r['host_intervals']} host-intervals; raw write reference "
                        f"{r['influx_host_intervals_per_s']:.0f} host-intervals/s "
                        f"({r['influx_points_per_s']:.0f} points/s); {r['lag_n']} live intervals; "
                        f"poll {base.detector.poll_interval_s}s, lateness {LATENESS_S}s, {r['late_points']} late points; "
                        f"peak RSS is the largest worker's; MLflow imported by the detector: "
                        f"{'yes' if r['mlflow_imported'] else 'no'}; ru_maxrss, which counts the harness "
                        f"at the fork: {r['rss_mb_ru_maxrss']:.0f} MB)",
                        flush=True,
                    )
                    cpu = r["detector_cpu_per_10k"] + r["influxd_cpu_per_10k"]
                    print(
                        f"       (catch-up CPU per 10,000 host-intervals: detector {r['detector_cpu_per_10k']:.2f} s "
                        f"(all workers), influxd {r['influxd_cpu_per_10k']:.2f} s: {os.cpu_count()} free cores "
                        f"would carry at most {os.cpu_count() * 10_000 / cpu:,.0f} host-intervals/s)",
                        flush=True,
                    )
        finally:
            if mlflow_record is not None:
                stop_process(mlflow_record)
            stop_process(record)


if __name__ == "__main__":
    main()
