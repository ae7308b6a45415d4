"""What the detector's parts need from each other, as protocols, so that none imports another's
implementation to get it:

* :class:`ServedDetector` — what the scoring API (:mod:`detector.api`) reads from a running
  :class:`detector.service.Detector`;
* :class:`HttpServer` — what the detector loop needs from the server it was given (its port, and
  stopping it on shutdown).
* :class:`DetectorParts` — the collaborators the detector loop is handed (reader, sink, champion
  watcher, incident recorder, ...).

The wiring — which parts and which server a detector gets — is done by
:func:`detector.factory.build_detector`, so ``detector.service`` never imports ``detector.api``
(nor FastAPI: a detector run with ``--no-http`` never loads it).
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from detector.champion import ChampionWatcher
    from detector.data_quality import DataQuality
    from detector.incidents import IncidentRecorder
    from detector.observability import DetectorMetrics
    from detector.reader import RawReader
    from detector.sharding import ShardFilter
    from detector.sink import PredictionSink
    from vigil.features import FeaturePipeline
    from vigil.influx import InfluxClient
    from vigil.model import LoadedModel
    from vigil.online import OnlineDetector
    from vigil.serving.calibration import HostCalibration
    from vigil.serving.path import ServingPath
    from vigil.settings import Settings


class ServedDetector(Protocol):
    """The read-only view of a running detector that the scoring API scores against.

    Everything but ``settings``, ``metrics`` and ``health`` is read under ``state_lock`` (the loop
    holds it while it changes them)."""

    @property
    def settings(self) -> Settings: ...

    @property
    def metrics(self) -> DetectorMetrics: ...

    @property
    def state_lock(self) -> AbstractContextManager[Any]: ...

    @property
    def iterations(self) -> int: ...

    @property
    def shard_label(self) -> str: ...

    @property
    def watcher(self) -> ChampionWatcher: ...

    @property
    def champion(self) -> LoadedModel | None: ...

    @property
    def champion_loaded_at(self) -> float | None: ...

    @property
    def path(self) -> ServingPath: ...

    @property
    def pipeline(self) -> FeaturePipeline: ...

    @property
    def online(self) -> OnlineDetector: ...

    @property
    def calibration(self) -> HostCalibration: ...

    def health(self) -> dict[str, Any]: ...


class HttpServer(Protocol):
    """A started server the detector loop stops when it shuts down."""

    port: int

    def stop(self) -> None: ...


@dataclass
class DetectorParts:
    """The collaborators a :class:`Detector` is handed (built by :func:`detector.factory.build_detector`)."""

    metrics: DetectorMetrics
    shard: ShardFilter
    quality: DataQuality
    reader: RawReader
    write_client: InfluxClient
    sink: PredictionSink
    watcher: ChampionWatcher
    incidents: IncidentRecorder
