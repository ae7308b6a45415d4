"""Scoring against a read-only view of the detector (:class:`ScoringView`): ``/version`` and the
predictions, the detector's own serving path run on copies of its state."""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from detector.api.raw import API_DEVICE, COUNTER_FIELDS, _counter_totals, raw_frames
from detector.api.response_models import ChampionInfo, OnlineInfo, ServedModels, VersionResponse
from vigil.features import FEATURE_COLUMNS, FeatureBuilder
from vigil.features.source import CounterState, base_metrics
from vigil.numbers import finite_or_none
from vigil.online import OnlineDetector
from vigil.serving.grouping import AlarmGrouping
from vigil.serving.path import ServingPath
from vigil.serving.scoring import ONLINE_FEATURES, ONLINE_MODEL_NAME, ONLINE_MODEL_VERSION, host_warmup

if TYPE_CHECKING:
    from detector.ports import ServedDetector

log = logging.getLogger(__name__)


class ScoringView:
    """What the API needs from a running detector (:class:`detector.ports.ServedDetector`), read-only.

    The online model is used through a snapshot (with the per-host counter totals indexed from
    the same moment, so a request never walks the detector's whole state). The first request
    takes it; after that a background thread takes a new one every ``refresh_s`` once the loop
    has moved on. Why not on the request path: copying the online model costs ~45 ms of CPU, and
    the request that happened to find the snapshot stale paid it (a p99 of its own).
    """

    def __init__(self, detector: ServedDetector, refresh_s: float | None = None) -> None:
        self.detector = detector
        self.settings = detector.settings
        self.refresh_s = detector.settings.detector.poll_interval_s if refresh_s is None else refresh_s
        self._lock = threading.Lock()
        self._snap: tuple[OnlineDetector, dict[tuple[str, str], tuple[int, float]]] | None = None
        self._taken_iteration = -1
        self._closed = threading.Event()
        self._refresher: threading.Thread | None = None

    # --- snapshot ------------------------------------------------------------------------------
    def snapshot(self) -> tuple[OnlineDetector, dict[tuple[str, str], tuple[int, float]]]:
        snap = self._snap
        if snap is not None:
            return snap
        with self._lock:
            if self._snap is None:
                self._take()
                self._refresher = threading.Thread(
                    target=self._refresh_loop, name="api-snapshot", daemon=True
                )
                self._refresher.start()
            return self._snap

    def _take(self) -> None:
        det = self.detector
        with det.state_lock:  # the loop waits only for the serialisation, not the copy's rebuild
            online_bytes = det.online.to_bytes()
            last = dict(det.pipeline.counters.last)
            iteration = det.iterations
        self._snap = (OnlineDetector.from_bytes(online_bytes), _counter_totals(last))
        self._taken_iteration = iteration

    def _refresh_loop(self) -> None:
        while not self._closed.wait(self.refresh_s):
            if self.detector.iterations == self._taken_iteration:
                continue
            try:
                self._take()
            except Exception:  # noqa: BLE001 - keep serving the previous snapshot
                log.exception("scoring API: snapshot of the online model failed; keeping the previous one")

    def close(self) -> None:
        self._closed.set()

    # --- /version ----------------------------------------------------------------------------------
    def version(self) -> VersionResponse:
        det = self.detector
        online, _ = self.snapshot()
        champion = det.champion
        status = det.watcher.status
        loaded_at = det.champion_loaded_at
        return VersionResponse(
            mode="champion" if champion else "online-only",
            registered_model=self.settings.mlflow.model_name,
            champion=ChampionInfo(
                name=champion.name,
                version=champion.version,
                run_id=champion.run_id,
                loaded_at=datetime.fromtimestamp(loaded_at, UTC) if loaded_at else None,
            )
            if champion
            else None,
            last_model_error=status.last_error,
            online_model=OnlineInfo(
                name=ONLINE_MODEL_NAME,
                version=ONLINE_MODEL_VERSION,
                samples_seen=online.n_seen,
                samples_learned=online.n_learned,
                threshold=finite_or_none(online.threshold),
                warmup=online.n_seen < online.config.warmup,
                features=list(ONLINE_FEATURES),
            ),
            features=list(FEATURE_COLUMNS),
            interval_s=int(self.settings.features.interval_s),
            shard=det.shard_label,
        )

    def served(self, online: OnlineDetector, champion: Any = None) -> ServedModels:
        return ServedModels(
            mode="champion" if champion else "online-only",
            champion_name=champion.name if champion else None,
            champion_version=champion.version if champion else None,
            online_name=ONLINE_MODEL_NAME,
            online_version=ONLINE_MODEL_VERSION,
            online_samples=online.n_seen,
        )

    # --- scoring -------------------------------------------------------------------------------------
    def predict(self, rows: list[Any], include_features: bool = False) -> dict[str, Any]:
        """Score ``rows`` (parsed request rows); the response body as plain JSON-ready data.

        Why plain data and numpy rather than frames and response models per row: pandas costs
        ~0.1-1 ms per operation whatever the size, and building a pydantic model per row and
        score another 50 us a row; for a one-row request that overhead was most of the ~50 ms
        it took. The body has exactly the shape of :class:`PredictResponse` (the OpenAPI schema,
        checked by the schemathesis test).
        """
        online, counters = self.snapshot()
        now = datetime.now(UTC)
        n = len(rows)
        hosts = [r.host for r in rows]
        times = [r.time or now for r in rows]
        is_raw = np.fromiter((r.kind == "raw" for r in rows), dtype=bool, count=n)
        x = np.zeros((n, len(FEATURE_COLUMNS)))
        warm = np.zeros(n, dtype=bool)
        known: list[bool | None] = [None] * n
        raw_idx = np.flatnonzero(is_raw)
        base = None
        if len(raw_idx):
            base = self._raw_features(rows, hosts, times, raw_idx, counters, x, warm, known)
        for i in np.flatnonzero(~is_raw):
            row = rows[i]
            x[i] = [0.0 if (v := getattr(row, c)) is None else v for c in FEATURE_COLUMNS]
        frame = pd.DataFrame(x, columns=list(FEATURE_COLUMNS))
        frame.insert(0, "time", pd.DatetimeIndex(times).tz_convert("UTC"))
        frame.insert(0, "host", hosts)
        det = self.detector
        distinct = list(dict.fromkeys(hosts))
        with det.state_lock:  # copies of just these hosts, so the loop can go on meanwhile
            calibration = det.calibration.subset(distinct)
            series = det.path.series.subset(distinct)
            grouping = AlarmGrouping.from_state(det.path.grouping.state())
        champion = det.champion
        # the detector's own serving path, read-only, on those copies: the same decision
        view = ServingPath(
            det.path.config,
            pipeline=det.path.pipeline,
            online=online,
            calibration=calibration,
            series=series,
            grouping=grouping,
        )
        scored = view.score(frame, champion, base=base, learn=False, warm=warm)
        combined = _scores(scored.combined)
        online_scores = _scores(scored.online)
        batch = _scores(scored.batch) if scored.batch is not None else None
        warmup = scored.combined["warmup"].to_numpy().astype(bool).tolist()
        stamps = [_iso(t) for t in times]
        results = []
        for i in range(n):
            c = combined[i]
            results.append(
                {
                    "index": i,
                    "host": hosts[i],
                    "time": stamps[i],
                    "input": "raw" if is_raw[i] else "features",
                    "host_known": known[i],
                    "warmup": warmup[i],
                    "is_anomaly": c["is_anomaly"],
                    "combined": c,
                    "champion": batch[i] if batch is not None else None,
                    "online": online_scores[i],
                    "features": {c: finite_or_none(v) for c, v in zip(FEATURE_COLUMNS, x[i], strict=True)}
                    if include_features
                    else None,
                }
            )
        return {"models": self.served(online, champion).model_dump(mode="json"), "results": results}

    def _raw_features(
        self,
        rows: list[Any],
        hosts: list[str],
        times: list[datetime],
        raw_idx: np.ndarray,
        counters: dict[tuple[str, str], tuple[int, float]],
        x: np.ndarray,
        warm: np.ndarray,
        known: list[bool | None],
    ) -> pd.DataFrame:
        """Features of the raw rows ``raw_idx`` against copies of their hosts' baselines, written
        into ``x`` / ``warm`` / ``known`` in place; returns their base metrics (for the per-series
        evidence)."""
        det = self.detector
        raw_hosts = [hosts[i] for i in raw_idx]
        with det.state_lock:
            builder: FeatureBuilder = det.pipeline.builder.subset(
                list(dict.fromkeys(raw_hosts)), keep_time=False
            )
        known_hosts = set(builder.hosts)
        state = CounterState(
            last={
                (h, API_DEVICE, f): counters[(h, f)]
                for h in known_hosts
                for f in COUNTER_FIELDS
                if (h, f) in counters
            }
        )
        t_ns = pd.DatetimeIndex([times[i] for i in raw_idx]).tz_convert("UTC").as_unit("ns").asi8
        base = base_metrics(raw_frames([rows[i] for i in raw_idx], raw_hosts, t_ns), state)
        features = builder.transform(base)
        feature_warm = host_warmup(features, builder.seen, self.detector.path.config.warmup_intervals)
        where = {
            (h, t): j
            for j, (h, t) in enumerate(
                zip(
                    features["host"].tolist(),
                    pd.DatetimeIndex(features["time"]).as_unit("ns").asi8.tolist(),
                    strict=True,
                )
            )
        }
        values = features[list(FEATURE_COLUMNS)].to_numpy(dtype=float)
        for i, h, t in zip(raw_idx, raw_hosts, t_ns.tolist(), strict=True):
            j = where.get((h, t))
            if j is None:  # cannot happen (every row yields a feature row); never 500 on it
                x[i], warm[i] = 0.0, True
            else:
                x[i], warm[i] = values[j], bool(feature_warm[j]) or h not in known_hosts
            known[i] = h in known_hosts
        return base


def _iso(t: datetime) -> str:
    """A UTC time as pydantic writes it (``2026-05-05T01:00:00Z``)."""
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _scores(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """One :class:`ModelScore` (as plain data) per row of a prediction frame; non-finite -> null."""
    score = frame["score"].to_numpy(dtype=float).tolist()
    threshold = frame["threshold"].to_numpy(dtype=float).tolist()
    flagged = frame["is_anomaly"].to_numpy(dtype=float)
    flagged = (np.isfinite(flagged) & (flagged != 0)).tolist()
    tops = []
    for k in (1, 2, 3):
        name_col, share_col = f"top{k}_feature", f"top{k}_contribution"
        names = frame[name_col].tolist() if name_col in frame else [None] * len(frame)
        shares = frame[share_col].tolist() if share_col in frame else [None] * len(frame)
        tops.append((names, shares))
    out = []
    for i in range(len(frame)):
        top = [
            {"feature": names[i], "contribution": finite_or_none(shares[i])}
            for names, shares in tops
            if isinstance(names[i], str) and names[i]
        ]
        out.append(
            {
                "score": finite_or_none(score[i]),
                "threshold": finite_or_none(threshold[i]),
                "is_anomaly": flagged[i],
                "top_features": top,
            }
        )
    return out
