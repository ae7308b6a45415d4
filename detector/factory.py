"""``build_detector(settings)``: the one place the detector's collaborators are wired.

The loop (:class:`detector.service.Detector`) is handed its parts — metrics, the shard filter,
the data-quality guard, the InfluxDB reader, the prediction sink and its write client, the
champion watcher, the incident recorder — and, when it serves HTTP, the server to start
(:func:`detector.api.serve_detector`). It keeps its own state: the checkpoint it resumes from
(``run_dir/detector/shard-I-of-N``). ``vigil detector run`` (:mod:`detector.cli`), the tests
and the benchmarks build a detector here; the supervisor starts ``vigil detector run`` processes.
"""

from __future__ import annotations

import pandas as pd

from detector.champion import ChampionWatcher
from detector.data_quality import DataQuality
from detector.incidents import IncidentRecorder
from detector.observability import DetectorMetrics
from detector.ports import DetectorParts
from detector.reader import RawReader
from detector.service import MAX_BACKOFF_S, NS, Detector, state_dir
from detector.sharding import ShardFilter
from detector.sink import PredictionSink
from vigil.features.quality import QualityConfig
from vigil.influx import InfluxClient
from vigil.settings import Settings


def build_parts(settings: Settings) -> DetectorParts:
    """The collaborators of one shard's detector, wired to one another and to ``settings``."""
    interval_ns = int(settings.features.interval_s) * NS
    spill = state_dir(settings.detector) / "spill"
    spill.parent.mkdir(parents=True, exist_ok=True)
    metrics = DetectorMetrics()
    shard = ShardFilter(settings.detector.shard_index, settings.detector.shard_count)
    quality = DataQuality(
        interval_ns, QualityConfig(future_tolerance_s=settings.detector.data_quality_future_tolerance_s)
    )
    reader = RawReader(
        settings.influx,
        shard,
        metrics.error,
        interval_s=settings.features.interval_s,
        collect_interval_s=settings.collection.interval_s,
        future=quality.future,
        quality=quality.config,
    )
    write_client = InfluxClient(settings.influx, retries=0)
    sink = PredictionSink(
        write_client,
        settings.influx.vigil_db,
        spill,
        settings.detector.buffer_max_points,
        batch_size=settings.influx.batch_size,
        on_error=metrics.error,
        backoff_s=settings.influx.backoff_s,
        max_backoff_s=MAX_BACKOFF_S,
        writers=settings.influx.write_workers,
        client_factory=lambda: InfluxClient(settings.influx, retries=0),
    )
    watcher = ChampionWatcher(  # the detector subscribes to swaps
        settings.mlflow, settings.detector.reload_interval_s, on_error=metrics.error
    )
    incidents = IncidentRecorder(settings, on_error=metrics.error)
    return DetectorParts(
        metrics=metrics,
        shard=shard,
        quality=quality,
        reader=reader,
        write_client=write_client,
        sink=sink,
        watcher=watcher,
        incidents=incidents,
    )


def build_detector(
    settings: Settings,
    *,
    start: pd.Timestamp | None = None,
    instance: str | None = None,
    http: bool = False,
) -> Detector:
    """A detector of the shard ``settings`` name, ready to :meth:`~detector.service.Detector.run`.

    ``start``: where to begin without a checkpoint (default: now); ``http``: serve ``/health``,
    ``/metrics`` and the scoring API when it runs (FastAPI is imported only then).
    """
    serve = None
    if http:
        from detector.api import serve_detector

        serve = serve_detector
    return Detector(settings, build_parts(settings), start=start, instance=instance, serve=serve)
