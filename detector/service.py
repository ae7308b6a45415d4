"""The detector loop: read -> features -> both models -> combine -> write, then advance.

One iteration (:meth:`Detector.run_once`):

1. ``end`` = the last interval boundary at or before ``now - allowed_lateness_s``: an
   interval is read once, when no more points are expected for it.
2. Read ``[watermark, end)`` (at most :meth:`Detector.intervals_per_read` at a time) for the
   hosts of this shard; hosts never seen before are first warm-started from their last
   ``detector_history_hours`` of history (features discarded, baselines and counters kept).
3. Same features as training (:class:`vigil.features.FeaturePipeline`), champion + online
   model, the combined decision (:mod:`vigil.decision`), lines into the sink.
4. Advance the watermark; every ``checkpoint_every`` iterations make the sink durable and
   write the checkpoint (watermark + online model + feature state) atomically.

If InfluxDB cannot be read the watermark stays where it is and the next poll retries (with
backoff); nothing is skipped. Re-scoring an interval after a restart writes the same points
(same tags and time), so a resume never duplicates.
"""

from __future__ import annotations

import logging
import signal
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from detector.incidents import models_in_force
from detector.ports import DetectorParts, HttpServer
from detector.predictions import prediction_lines
from detector.reader import WindowAudit
from detector.state import Checkpoint, load_checkpoint, save_checkpoint
from vigil.features import FeaturePipeline
from vigil.features.quality import QualityReport
from vigil.influx import InfluxError, InfluxUnavailable, quote_ident
from vigil.model import LoadedModel
from vigil.online import OnlineDetector
from vigil.schema import RAW_MEM
from vigil.serving.calibration import HostCalibration
from vigil.serving.path import ServingConfig, ServingPath
from vigil.serving.scoring import ONLINE_MODEL_NAME, ONLINE_MODEL_VERSION
from vigil.settings import DetectorSettings, Settings

log = logging.getLogger(__name__)

NS = 1_000_000_000
#: Longest wait between retries while InfluxDB is down (keeps catch-up prompt once it is back).
MAX_BACKOFF_S = 10.0
#: Bounds of the online model's one-off warm start from fleet history (see _warm_online_from_fleet).
ONLINE_WARM_HOURS = 2.0
ONLINE_WARM_HOSTS = 20
#: seconds between fleet warm-start attempts while there is no fleet history yet (the demo
#: starts the detector before it seeds history)
ONLINE_WARM_RETRY_S = 30.0


@dataclass
class IterationResult:
    """What one iteration did (tests and the benchmark read it)."""

    start_ns: int = 0
    end_ns: int = 0
    rows_read: int = 0
    host_intervals: int = 0
    anomalies: int = 0
    lines: int = 0
    error: str | None = None
    warm_started: list[str] = field(default_factory=list)


def state_dir(detector: DetectorSettings) -> Path:
    """``run_dir/detector/shard-I-of-N``: each shard keeps its own state."""
    return detector.run_dir / "detector" / f"shard-{detector.shard_index}-of-{detector.shard_count}"


class Detector:
    """The online detector service of one shard."""

    def __init__(
        self,
        settings: Settings,
        parts: DetectorParts,
        *,
        start: pd.Timestamp | None = None,
        instance: str | None = None,
        serve: Callable[[Detector], HttpServer] | None = None,
    ):
        """``parts``: the collaborators, wired by :func:`detector.factory.build_detector`; ``serve``:
        the HTTP server :meth:`run` starts when it is given none."""
        self.settings = settings
        self.interval_ns = int(settings.features.interval_s) * NS
        self.instance = instance or socket.gethostname()
        self.shard_label = f"{settings.detector.shard_index}/{settings.detector.shard_count}"
        self.dir = state_dir(settings.detector)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.checkpoint_path = self.dir / "checkpoint.pkl"
        self.metrics = parts.metrics
        self.shard = parts.shard
        self.quality = parts.quality
        self.reader = parts.reader
        self._muted: set[tuple[str, int]] = set()
        self.write_client = parts.write_client
        self.sink = parts.sink
        self.watcher = parts.watcher
        self.watcher.on_swap = self._on_swap  # the loop hears of every champion swap
        self.incidents = parts.incidents
        self.serve = serve
        self.metrics.set_model(settings.mlflow.model_name, None)
        self.stop_event = threading.Event()
        #: Held while the loop mutates the feature state or the online model, so the scoring API
        #: (other threads) copies a consistent view; never held across I/O.
        self.state_lock = threading.Lock()
        self.champion_loaded_at: float | None = None
        self.iterations = 0
        self.last_ok: float | None = None
        self.read_error: str | None = None
        self._read_failures = 0
        self._next_read = 0.0
        self._heartbeat = time.time()
        self._prev_window: tuple[int, int, int, int] | None = None  # (start, end, points, duplicates)
        self._audit_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="audit")
        #: The window audit (late and duplicated points) counts the whole fleet, whichever shard
        #: reads: only shard 0 runs it. Every shard recounting the same points cost InfluxDB
        #: ~0.45 s of CPU per 10,000-host interval per shard, and summed to N times the truth.
        self.audits = settings.detector.shard_index == 0
        self._databases_ready = False
        self.host_last_seen: dict[str, int] = {}
        self.last_features: pd.DataFrame | None = None
        self._online_warm_tried = False
        self._online_warm_retry_at = 0.0
        serving = ServingConfig.from_settings(settings)
        ckpt = load_checkpoint(self.checkpoint_path)
        if ckpt is not None:
            self.watermark_ns: int | None = ckpt.watermark_ns
            self.path = ServingPath.from_state(
                serving,
                {
                    "features": ckpt.features,
                    "online": ckpt.online,
                    "host_calibration": ckpt.extra.get("host_calibration"),
                    "series": ckpt.extra.get("series"),
                    "grouping": ckpt.extra.get("grouping"),
                },
            )
            self.iterations = ckpt.iterations
            self.host_last_seen = dict(ckpt.extra.get("host_last_seen", {}))
            self.quality.restore(ckpt.extra.get("data_quality"))
            log.info("resumed from checkpoint: watermark %s", pd.Timestamp(ckpt.watermark_ns, tz="UTC"))
        else:
            self.watermark_ns = None if start is None else self._floor(pd.Timestamp(start).value)
            self.path = ServingPath(serving)

    # --- the serving path's parts (the API and the tests read them) ---------------------------
    @property
    def pipeline(self) -> FeaturePipeline:
        return self.path.pipeline

    @property
    def online(self) -> OnlineDetector:
        return self.path.online

    @property
    def calibration(self) -> HostCalibration:
        return self.path.calibration

    # --- helpers -----------------------------------------------------------------------------
    def _floor(self, t_ns: int) -> int:
        return t_ns - t_ns % self.interval_ns

    def intervals_per_read(self) -> int:
        """How many intervals one iteration may read: ``detector_read_budget`` host-intervals for
        the hosts known so far, within [1, ``detector_max_catchup_intervals``].

        Why a budget in host-intervals: what one read holds (raw points, features, predictions)
        is what the detector's peak memory grows with, and it is hosts x intervals. Before any
        host is known (a fresh start from a past ``--start``) one interval is read first, to
        learn the fleet's size.
        """
        cap = self.settings.detector.max_catchup_intervals
        known = len(self.host_last_seen)
        if known == 0:
            return 1
        return max(1, min(cap, self.settings.detector.read_budget // known))

    def _on_swap(self, model: LoadedModel) -> None:
        self.champion_loaded_at = time.time()
        self.metrics.set_model(model.name, model.version)

    @property
    def champion(self) -> LoadedModel | None:
        return self.watcher.current

    def _ensure_databases(self) -> None:
        if self._databases_ready or not self.settings.influx.create_databases:
            return
        try:
            self.write_client.create_database(self.settings.influx.vigil_db)
            self._databases_ready = True
        except InfluxUnavailable:
            pass

    # --- one iteration -----------------------------------------------------------------------
    def run_once(self, now: float | None = None) -> IterationResult:
        """Process every complete interval after the watermark (bounded per call); never raises
        for data or service faults — they are counted and retried."""
        t0 = time.perf_counter()
        self._heartbeat = time.time()
        now = time.time() if now is None else now
        end_ns = self._floor(int((now - self.settings.detector.allowed_lateness_s) * NS))
        if self.watermark_ns is None:
            self.watermark_ns = end_ns - self.interval_ns  # fresh start: the newest complete interval
        result = IterationResult(start_ns=self.watermark_ns, end_ns=self.watermark_ns)
        self._ensure_databases()
        if end_ns > self.watermark_ns and time.monotonic() >= self._next_read:
            hi = min(end_ns, self.watermark_ns + self.intervals_per_read() * self.interval_ns)
            try:
                self._process_window(self.watermark_ns, hi, result)
            except InfluxUnavailable as exc:
                self._read_failures += 1
                delay = min(self.settings.influx.backoff_s * 2 ** (self._read_failures - 1), MAX_BACKOFF_S)
                self._next_read = time.monotonic() + delay
                self.read_error = str(exc)
                result.error = self.read_error
                self.metrics.error("influx_read_unavailable")
                log.warning("cannot read InfluxDB (%s); watermark stays, retry in %.1fs", exc, delay)
            else:
                self._read_failures = 0
                self.read_error = None
                self.last_ok = time.time()
        try:
            self.incidents.poll(self.watermark_ns)  # hands finished windows to the capture thread
        except Exception:  # noqa: BLE001 - the flight recorder must never stop the detector
            self.metrics.error("incident_failed")
            log.exception("incident recorder failed")
        before = self.sink.written
        self.sink.flush()
        self.metrics.add(predictions=self.sink.written - before)
        self.iterations += 1
        if self.iterations % max(1, self.settings.detector.checkpoint_every) == 0:
            self.checkpoint()
        lag = (
            time.time() - self.watermark_ns / NS
            if self.sink.buffered == 0
            else time.time() - result.start_ns / NS
        )
        warm_hosts = self.warmup_hosts()
        self.metrics.observe_loop(
            time.perf_counter() - t0,
            max(0.0, lag),
            self.sink.buffered,
            len(self.host_last_seen),
            len(warm_hosts),
        )
        try:
            self.sink.add(
                [self.metrics.stats_point(self.instance, self.shard_label, time.time_ns()).to_line()]
            )
        except ValueError:
            self.metrics.error("stats_point_invalid")
        return result

    def _process_window(self, lo: int, hi: int, result: IterationResult) -> None:
        # the recount of the previous window (late points) runs beside the read and the scoring
        # (InfluxDB, not this process, is the bottleneck at 10,000 hosts); this window's own
        # points and duplicates are counted from the read's answer
        recount = self._audit_pool.submit(self._recount_previous) if self.audits else None
        try:
            audit = self._read_and_score(lo, hi, result)
        finally:
            try:
                if recount is not None:
                    recount.result()
            except Exception:  # noqa: BLE001 - bookkeeping of late points must not fail a scored window
                self.metrics.error("audit_failed")
                log.exception("late/duplicate recount of the previous window failed")
        if audit is not None and audit.duplicates:
            self.metrics.error("duplicate_point", audit.duplicates)
            log.warning("%d duplicated point(s) in the window just read", audit.duplicates)
        self._prev_window = (lo, hi, audit.points, audit.duplicates) if audit is not None else None

    def _read_and_score(self, lo: int, hi: int, result: IterationResult) -> WindowAudit | None:
        # "from the future" is against the wall clock: what the detector observes cannot be
        # later than now (its loop's ``now`` may be a virtual clock replaying history)
        wall_ns = time.time_ns()
        raw, rows, audit, quality = self.reader.read_audited(
            pd.Timestamp(lo, tz="UTC"), pd.Timestamp(hi, tz="UTC"), wall_ns
        )
        if not self.audits:
            audit = None  # the fleet-wide window audit is shard 0's (see __init__)
        quality = QualityReport.merge([quality, self.reader.read_future(wall_ns)])
        result.rows_read = rows
        self.metrics.add(points_read=rows)
        if not self._online_warm_tried and time.monotonic() >= self._online_warm_retry_at:
            self._warm_online_from_fleet(lo)
        result.warm_started = self._warm_start(raw, lo)
        with self.state_lock:
            base, features = self.path.pipeline.update(raw)
        self._observe_quality(quality, lo, hi)
        self.last_features = features
        if not base.empty:
            self.metrics.error(
                "missing_metric", int(base.drop(columns=["host", "time"]).isna().to_numpy().sum())
            )
        if not features.empty:
            self._score_and_write(features, base, result)
        self.watermark_ns = hi
        result.end_ns = hi
        return audit

    def _observe_quality(self, quality: QualityReport, lo: int, hi: int) -> None:
        """Count, record and judge what the data-quality guard found in ``[lo, hi)`` (with the
        counter resets and backward readings the feature update found); remember which
        host-intervals are in a data-quality incident, so their alarms are muted."""
        counts, self._muted = self.quality.observe(quality, self.pipeline.counters.drain(), lo, hi)
        self.metrics.data_quality_found(counts, len(self.quality.incidents.open))
        lines = self.quality.drain_lines()
        if lines:
            self.sink.add(lines)

    def _warm_start(self, raw: dict[str, pd.DataFrame], lo: int) -> list[str]:
        """Absorb the recent history of hosts seen for the first time (baseline + counters)."""
        hosts = sorted({h for f in raw.values() if not f.empty for h in f["host"].astype(str).unique()})
        new = [h for h in hosts if self.pipeline.builder.seen(h) == 0 and h not in self.host_last_seen]
        hours = self.settings.detector.history_hours
        if not new or hours <= 0:
            return []
        start = pd.Timestamp(self._floor(lo - int(hours * 3600 * NS)), tz="UTC")
        history, n = self.reader.read(start, pd.Timestamp(lo, tz="UTC"), hosts=new)
        if n:
            with self.state_lock:
                taught = self.path.teach_online(self.path.absorb(history))
            log.info(
                "warm-started %d new host(s) from %d history rows (online model taught %d rows)",
                len(new),
                n,
                taught,
            )
        return new

    def _warm_online_from_fleet(self, lo: int) -> None:
        """Once per process: teach a young online model the fleet's recent history.

        Retried every ``ONLINE_WARM_RETRY_S`` until some history is found (a detector started
        before any history was written must not give up on its first, empty poll).

        Why: the online model is fleet-wide, but a host's own warm start only happens when that
        host reports live. A small live fleet (the demo: one real machine beside seeded hosts)
        would keep the model in warm-up for ``config.warmup`` live intervals (~50 min at 10 s).
        Bounded whatever the fleet size: at most ``ONLINE_WARM_HOSTS`` hosts (the first by name)
        and ``ONLINE_WARM_HOURS`` of their history, featurised with a throw-away pipeline so the
        live baselines are not touched (each host still gets its own warm start).
        """
        self._online_warm_retry_at = time.monotonic() + ONLINE_WARM_RETRY_S
        hours = min(self.settings.detector.history_hours, ONLINE_WARM_HOURS)
        if hours <= 0 or self.online.n_seen >= self.online.config.warmup:
            self._online_warm_tried = True  # nothing to do, ever
            return
        q = (
            f"SHOW TAG VALUES FROM {quote_ident(RAW_MEM)} WITH KEY = {quote_ident('host')} "
            f"LIMIT {ONLINE_WARM_HOSTS}"
        )
        try:
            series = self.write_client.query(self.settings.influx.raw_db, q)
            hosts = sorted({str(v[1]) for sr in series for v in sr.get("values") or []})
            hosts = [h for h in hosts if self.shard.owns(h)]
            if not hosts:
                return
            start = pd.Timestamp(self._floor(lo - int(hours * 3600 * NS)), tz="UTC")
            history, n = self.reader.read(start, pd.Timestamp(lo, tz="UTC"), hosts=hosts)
        except InfluxError as exc:  # InfluxUnavailable included: the loop will report it
            log.warning("online warm start skipped: %s", exc)
            return
        if not n:
            return
        _, features = FeaturePipeline().update(history)
        with self.state_lock:
            taught = self.path.teach_online(features)
        self._online_warm_tried = True  # done once; no history found yet means: try again later
        log.info("online model warm-started on %d history rows of %d host(s)", taught, len(hosts))

    def _recount_previous(self) -> None:
        """Count points that landed in the previous window after it was read (too late), and
        the duplicates among them (``duplicate_point``: extra points of one host or device in
        one interval).

        A window's duplicates are counted from its read and again here, one iteration later;
        the increase is the duplicates that arrived late, so each extra point is counted once
        (a late duplicate also counts as ``late_point``). The recount becomes the window's
        record, so a read that fails after it does not count the same late points twice.
        """
        prev = self._prev_window
        if prev is None:
            return
        p_lo, p_hi = pd.Timestamp(prev[0], tz="UTC"), pd.Timestamp(prev[1], tz="UTC")
        recount = self.reader.count_points(p_lo, p_hi)
        if recount is None or recount <= prev[2]:
            return
        self.metrics.error("late_point", recount - prev[2])
        log.warning("%d point(s) arrived after their interval was scored", recount - prev[2])
        redup = self.reader.count_duplicates(p_lo, p_hi)
        if redup is not None and redup > prev[3]:
            self.metrics.error("duplicate_point", redup - prev[3])
        self._prev_window = (prev[0], prev[1], recount, redup if redup is not None else prev[3])

    def _score_and_write(self, features: pd.DataFrame, base: pd.DataFrame, result: IterationResult) -> None:
        settings = self.settings
        champion = self.champion
        with self.state_lock:
            scored = self.path.score(features, champion, base=base, on_error=self.metrics.error)
        self.quality.mute(scored.combined, self._muted)  # bad data is not an anomaly
        lines = prediction_lines(
            scored.online,
            model=ONLINE_MODEL_NAME,
            version=ONLINE_MODEL_VERSION,
            source="online",
            on_error=self.metrics.error,
        )
        if scored.batch is not None and champion is not None:
            lines += prediction_lines(
                scored.batch,
                model=champion.name,
                version=str(champion.version),
                source="batch",
                on_error=self.metrics.error,
            )
        lines += prediction_lines(
            scored.combined,
            model=settings.mlflow.model_name,
            version=str(champion.version) if champion is not None else "online-only",
            source="combined",
            on_error=self.metrics.error,
        )
        self.sink.add(lines)
        anomalies = int(scored.combined["is_anomaly"].sum())
        if anomalies:
            self._record_incidents(scored, champion)
        last = pd.to_datetime(features["time"], utc=True, cache=False).astype("int64")
        for host, t in zip(features["host"].astype(str), last, strict=True):
            if t > self.host_last_seen.get(host, 0):
                self.host_last_seen[host] = int(t)
        result.host_intervals, result.anomalies, result.lines = len(features), anomalies, len(lines)
        self.metrics.add(host_intervals=len(features), anomalies=anomalies)

    def _record_incidents(self, scored: Any, champion: LoadedModel | None) -> None:
        try:
            batch_threshold = None
            if scored.batch is not None and not scored.batch.empty:
                batch_threshold = float(scored.batch["threshold"].iloc[0])
            models = models_in_force(champion, batch_threshold, float(self.online.threshold), self.settings)
            self.incidents.observe(scored.combined, models)
        except Exception:  # noqa: BLE001 - the flight recorder must never stop the detector
            self.metrics.error("incident_failed")
            log.exception("incident recorder failed")

    def next_wait_s(self, elapsed_s: float = 0.0, now: float | None = None) -> float:
        """Seconds to sleep before the next poll: the rest of the poll interval, but no longer
        than until the next interval after the watermark can be read (its end + the allowed
        lateness), unless reads are backing off.

        Why: with a fixed cadence an interval that became readable just after a poll waited
        up to a whole poll interval more; waking when it is due takes that out of the lag
        (``bench/detector_bench.py``: p99 lag at 10,000 hosts).
        """
        poll = max(0.0, self.settings.detector.poll_interval_s - elapsed_s)
        if not self.settings.detector.wake_on_due or self.watermark_ns is None or self._read_failures:
            return poll
        now = time.time() if now is None else now
        due = (self.watermark_ns + self.interval_ns) / NS + self.settings.detector.allowed_lateness_s
        return min(poll, max(0.0, due - now + 0.01))  # +10 ms: wake just after it is due, not just before

    # --- state -------------------------------------------------------------------------------
    def checkpoint(self) -> None:
        """Make buffered predictions durable, then write the checkpoint atomically."""
        if self.watermark_ns is None:
            return
        self.sink.flush()
        self.sink.persist()
        parts = self.path.state()
        save_checkpoint(
            self.checkpoint_path,
            Checkpoint(
                watermark_ns=self.watermark_ns,
                online=parts["online"],
                features=parts["features"],
                iterations=self.iterations,
                extra={
                    "host_last_seen": self.host_last_seen,
                    "host_calibration": parts["host_calibration"],
                    "series": parts["series"],
                    "grouping": parts["grouping"],
                    "data_quality": self.quality.state(),
                },
            ),
        )

    def warmup_hosts(self) -> list[str]:
        limit = self.path.config.warmup_intervals
        return [h for h in self.host_last_seen if self.pipeline.builder.seen(h) <= limit]

    # --- status ------------------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        """Liveness (the loop is turning) and readiness with the reasons it is not ready."""
        now = time.time()
        stale_after = 3 * self.settings.detector.poll_interval_s + 30
        live = now - self._heartbeat < stale_after + 60
        reasons: list[str] = []
        if self.read_error:
            reasons.append(f"influxdb read failing: {self.read_error}")
        if self.sink.last_error:
            reasons.append(
                f"influxdb write failing ({self.sink.buffered} predictions buffered): {self.sink.last_error}"
            )
        if self.last_ok is None:
            reasons.append("no successful iteration yet")
        elif now - self.last_ok > stale_after:
            reasons.append(f"last successful iteration {now - self.last_ok:.0f}s ago")
        status = self.watcher.status
        warm = self.warmup_hosts()
        return {
            "live": live,
            "ready": live and not reasons,
            "reasons": reasons,
            "mode": status.mode,
            "model": {
                "name": self.settings.mlflow.model_name,
                "version": status.version,
                "last_error": status.last_error,
            },
            "watermark": None
            if self.watermark_ns is None
            else pd.Timestamp(self.watermark_ns, tz="UTC").isoformat(),
            "shard": self.shard_label,
            "hosts": len(self.host_last_seen),
            "warmup_hosts": len(warm),
            "warmup_sample": warm[:20],
            "online_model": {"seen": self.online.n_seen, "threshold": self.online.threshold},
            "buffered": self.sink.buffered,
            "errors": dict(self.metrics.errors),
            "data_quality": {
                "values": dict(self.metrics.data_quality),
                "incidents": self.quality.incidents.open[:20],
                "incident_hosts": len(self.quality.incidents.open),
            },
            "iterations": self.iterations,
        }

    # --- service -----------------------------------------------------------------------------
    def run(self, serve: Callable[[Detector], HttpServer] | None = None) -> int:
        """Poll until SIGTERM/SIGINT; then drain, checkpoint and return 0.

        ``serve`` starts the HTTP server of this detector (default: the one it was built with,
        :func:`detector.api.serve_detector` from :func:`detector.factory.build_detector` unless
        ``http=False``; None: no HTTP)."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self.stop_event.set())
        serve = serve or self.serve
        server = None
        if serve is not None:
            server = serve(self)
            log.info(
                "detector http on %s:%d (/health, /metrics, /version, /predict)",
                self.settings.bind_host,
                server.port,
            )
        self.watcher.check_once()  # score the first intervals with the champion if there is one
        log.info("detector shard %s mode %s", self.shard_label, self.watcher.status.mode)
        self.watcher.start()
        try:
            while not self.stop_event.is_set():
                t0 = time.monotonic()
                try:
                    result = self.run_once()
                except Exception:  # noqa: BLE001 - last line of defence: count, log, keep serving
                    self.metrics.error("iteration_failed")
                    log.exception("iteration failed; continuing")
                    result = None
                behind = (
                    result is not None
                    and result.end_ns
                    < self._floor(int((time.time() - self.settings.detector.allowed_lateness_s) * NS))
                    and result.error is None
                )
                if not behind:
                    self.stop_event.wait(self.next_wait_s(time.monotonic() - t0))
        finally:
            self.shutdown(server)
        return 0

    def shutdown(self, server: HttpServer | None = None) -> None:
        """Drain: flush what can be written, persist the rest, checkpoint, stop threads."""
        log.info("detector stopping: draining %d buffered predictions", self.sink.buffered)
        self.watcher.stop()
        for _ in range(3):
            self.sink.flush(force=True)
            if self.sink.buffered == 0:
                break
        self.checkpoint()
        self.incidents.close()
        self._audit_pool.shutdown(wait=True)
        self.reader.close()
        self.sink.close()
        if server is not None:
            server.stop()
        log.info(
            "detector stopped at watermark %s",
            self.watermark_ns and pd.Timestamp(self.watermark_ns, tz="UTC"),
        )
