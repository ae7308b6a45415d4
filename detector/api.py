"""The detector's HTTP server: ``/health``, ``/metrics`` and the scoring API (FastAPI + uvicorn).

Endpoints (OpenAPI at ``/openapi.json``, docs at ``/docs``):

* ``GET /health`` — liveness and readiness with reasons (200 ready, 503 not); ``/metrics`` —
  Prometheus text. Unchanged from the standard-library server they replace.
* ``GET /version`` — the champion served (name, version, when it was loaded), the online model's
  state and sample count, the feature list.
* ``POST /predict`` (one row) and ``POST /predict/batch`` (``{"rows": [...]}``) — score rows with
  the champion and the online model and return the combined decision (``vigil.decision``), the
  scores of both and their top contributing features.
* ``POST /labels`` — an operator's verdict on a window (bearer token; ``detector/labels_api.py``).

Two kinds of rows (``kind`` may be omitted: a row holding any feature column is a feature row):

* **raw** (``kind: "raw"``): one Telegraf gather of a host — ``{host, time, cpu: {usage_idle,
  usage_iowait}, mem: {used_percent}, system: {load1, n_cpus}, net: {bytes_recv, bytes_sent},
  diskio: {read_bytes, write_bytes}, processes: {total}}``; the measurements and fields are
  generated from ``vigil.features.definitions`` (one source of truth). ``cpu`` is cpu-total;
  ``net`` / ``diskio`` counters are totals over interfaces / disks. Other Telegraf fields are
  ignored. Features are built with the same code as training, against a **copy** of the host's
  live baseline (and counter readings) when the detector knows the host — ``host_known: true``
  — or, for a host it does not know, against a fresh baseline seeded by the request's own rows
  (neutral: the first row of such a host reads as "at baseline"), flagged ``host_known: false``
  and in warm-up, so it can never alarm (the detector's own rule for new hosts).
* **features** (``kind: "features"``): the model input columns (``FEATURE_COLUMNS``) directly;
  a missing column reads as 0 (at the host's baseline), as in the model contract.

Scoring never changes the detector: the online model is scored from a snapshot
(``OnlineDetector.score`` is pure; a background thread refreshes the snapshot once per poll
interval after the loop has moved on, serialising under the loop's state lock) and baselines are
copied per request. Rows of one host in one
request are absorbed in time order by the copy, so a batch of consecutive gathers of a host is
scored as the detector would score them; their counters become rates between those rows.
"""

from __future__ import annotations

import json
import logging
import math
import socket
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal

import msgspec
import numpy as np
import pandas as pd
from fastapi import FastAPI, Query
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    create_model,
    field_validator,
    model_validator,
)

from detector.labels_api import labels_router
from vigil.features import BASE_METRICS, FEATURE_COLUMNS, FeatureBuilder
from vigil.features.source import QUERY_GROUPS, CounterState, base_metrics, group_key_name
from vigil.numbers import finite_or_none
from vigil.online import OnlineDetector
from vigil.serving.grouping import AlarmGrouping
from vigil.serving.path import ServingPath
from vigil.serving.scoring import (
    ONLINE_FEATURES,
    ONLINE_MODEL_NAME,
    ONLINE_MODEL_VERSION,
    host_warmup,
)

if TYPE_CHECKING:
    from detector.observability import DetectorMetrics
    from detector.ports import ServedDetector

log = logging.getLogger(__name__)

#: The device name API counters are filed under (a raw row carries totals, not per-device values).
API_DEVICE = "api"
#: Largest raw value accepted (above any 64-bit counter; squares of it stay finite in the baseline).
RAW_MAX = 1e20
#: Largest |feature| accepted (the feature builder caps deviations at 50; models see the same).
FEATURE_MAX = 1e6
#: Times outside this range cannot be represented (pandas ns) or are certainly mistakes.
EARLIEST, LATEST = datetime(1970, 1, 1, tzinfo=UTC), datetime(2200, 1, 1, tzinfo=UTC)

# ------------------------------------------------------------------------------------------------
# Request models, generated from the feature definitions.

#: A JSON number that is finite; strings and booleans are refused (a type conflict, not a value).
FiniteFloat = Annotated[float, Field(allow_inf_nan=False, strict=True)]


def _raw_fields() -> dict[str, dict[str, tuple[str, str]]]:
    """measurement -> field -> (aggregation, description) for every raw field the features read."""
    out: dict[str, dict[str, tuple[str, str]]] = {}
    for metric in BASE_METRICS:
        for raw in metric.inputs:
            kind = "cumulative counter (total over devices)" if raw.agg == "last" else "gauge"
            out.setdefault(raw.measurement, {})[raw.field] = (raw.agg, f"{kind}; feeds {metric.name}")
    return out


RAW_FIELDS = _raw_fields()


def _measurement_model(measurement: str, fields: dict[str, tuple[str, str]]) -> type[BaseModel]:
    spec: dict[str, Any] = {}
    for name, (agg, description) in fields.items():
        lower = 0.0 if agg == "last" or name in ("n_cpus", "load1", "total") else None
        spec[name] = (FiniteFloat | None, Field(None, ge=lower, le=RAW_MAX, description=description))
    model = create_model(
        f"Raw_{measurement}",
        __config__=ConfigDict(extra="ignore"),
        **spec,
    )
    model.__doc__ = f"Telegraf measurement `{measurement}` (other fields are ignored)."
    return model


MEASUREMENT_MODELS = {m: _measurement_model(m, f) for m, f in RAW_FIELDS.items()}


def _check_time(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    if not EARLIEST <= value < LATEST:
        raise ValueError(f"time must be between {EARLIEST.year} and {LATEST.year}")
    return value.astimezone(UTC)


class _RowBase(BaseModel):
    host: str = Field("api", min_length=1, max_length=255, description="The host tag.")
    time: datetime | None = Field(
        None, description="ISO 8601 or Unix epoch; naive = UTC; default: now. Interval start for features."
    )

    @field_validator("time")
    @classmethod
    def _time(cls, value: datetime | None) -> datetime | None:
        return _check_time(value)


class _RawBase(_RowBase):
    model_config = ConfigDict(extra="ignore")

    @model_validator(mode="after")
    def _some_measurement(self) -> _RawBase:
        if all(getattr(self, m, None) is None for m in RAW_FIELDS):
            raise ValueError(f"a raw row needs at least one of the measurements {sorted(RAW_FIELDS)}")
        return self


RawRow: type[_RowBase] = create_model(
    "RawRow",
    __base__=_RawBase,
    kind=(Literal["raw"], "raw"),
    **{m: (model | None, Field(None)) for m, model in MEASUREMENT_MODELS.items()},
)
RawRow.__doc__ = (
    "One Telegraf gather of one host (measurement -> fields), e.g. {host, time, cpu: {...}, ...}."
)


class _FeatureBase(_RowBase):
    model_config = ConfigDict(extra="forbid")


FeatureRow: type[_RowBase] = create_model(
    "FeatureRow",
    __base__=_FeatureBase,
    kind=(Literal["features"], "features"),
    **{c: (FiniteFloat | None, Field(None, ge=-FEATURE_MAX, le=FEATURE_MAX)) for c in FEATURE_COLUMNS},
)
FeatureRow.__doc__ = "Model input columns (FEATURE_COLUMNS) of one host-interval; missing = 0 (baseline)."


def _row_kind(value: Any) -> str | None:
    """``kind`` if given; else a row with any feature column is a feature row, otherwise raw."""
    if isinstance(value, dict):
        kind = value.get("kind")
        if kind is None:
            return "features" if any(c in value for c in FEATURE_COLUMNS) else "raw"
        return kind if kind in ("raw", "features") else None
    return getattr(value, "kind", None)


Row = Annotated[
    Annotated[RawRow, Tag("raw")] | Annotated[FeatureRow, Tag("features")],
    Discriminator(
        _row_kind,
        custom_error_type="invalid_row_kind",
        custom_error_message="kind must be 'raw' (Telegraf measurements) or 'features' (FEATURE_COLUMNS)",
    ),
]


# ------------------------------------------------------------------------------------------------
# Response models.


class TopFeature(BaseModel):
    feature: str
    contribution: float | None


class ModelScore(BaseModel):
    """One model's (or the combined rule's) verdict on one row; non-finite numbers are null."""

    score: float | None
    threshold: float | None
    is_anomaly: bool
    top_features: list[TopFeature]


class RowResult(BaseModel):
    index: int = Field(description="Position of the row in the request.")
    host: str
    time: datetime
    input: Literal["raw", "features"]
    host_known: bool | None = Field(
        description="Raw rows: whether the detector has this host's baseline (None for feature rows)."
    )
    warmup: bool = Field(description="In warm-up (new host or young online model): scored, cannot alarm.")
    is_anomaly: bool = Field(description="The combined decision (vigil.decision).")
    combined: ModelScore
    champion: ModelScore | None
    online: ModelScore
    features: dict[str, float | None] | None = Field(
        None, description="The feature row scored (with ?include_features=true)."
    )


class ServedModels(BaseModel):
    mode: Literal["champion", "online-only"]
    champion_name: str | None
    champion_version: int | None
    online_name: str
    online_version: str
    online_samples: int


class PredictResponse(BaseModel):
    models: ServedModels
    results: list[RowResult]


class ChampionInfo(BaseModel):
    name: str
    version: int
    run_id: str | None
    loaded_at: datetime | None


class OnlineInfo(BaseModel):
    name: str
    version: str
    samples_seen: int
    samples_learned: int
    threshold: float | None
    warmup: bool
    features: list[str]


class VersionResponse(BaseModel):
    mode: Literal["champion", "online-only"]
    registered_model: str
    champion: ChampionInfo | None
    last_model_error: str | None
    online_model: OnlineInfo
    features: list[str]
    interval_s: int
    shard: str


# ------------------------------------------------------------------------------------------------
# Scoring against a read-only view of the detector.


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


#: Counter fields (cumulative) of the raw definitions.
COUNTER_FIELDS = sorted(
    {f for fields in RAW_FIELDS.values() for f, (agg, _) in fields.items() if agg == "last"}
)


def _counter_totals(
    last: dict[tuple[str, str, str], tuple[int, float]],
) -> dict[tuple[str, str], tuple[int, float]]:
    """(host, field) -> (time, total over devices) where every device was last read at one time.

    A raw API row carries totals over interfaces / disks, so its rate is taken against the sum
    of the host's last per-device readings; if they were read at different times the sum means
    nothing and the first row of that host gets no rate (its feature reads as baseline).
    """
    acc: dict[tuple[str, str], list[tuple[int, float]]] = {}
    for (host, _device, field), reading in last.items():
        acc.setdefault((host, field), []).append(reading)
    out = {}
    for key, readings in acc.items():
        times = {t for t, _ in readings}
        if len(times) == 1:
            out[key] = (readings[0][0], float(sum(v for _, v in readings)))
    return out


def raw_frames(rows: list[Any], hosts: list[str], t_ns: np.ndarray) -> dict[str, pd.DataFrame]:
    """Raw API rows as the query-group frames ``vigil.features.base_metrics`` takes."""
    frames: dict[str, pd.DataFrame] = {}
    t_ns = np.asarray(t_ns, dtype=np.int64)
    for key, fields in QUERY_GROUPS.items():
        measurement, _where, per_tag = key
        parts = [getattr(row, measurement, None) for row in rows]
        have = [i for i, values in enumerate(parts) if values is not None]
        data: dict[str, Any] = {
            "host": [hosts[i] for i in have],
            "time": pd.to_datetime(t_ns[have], unit="ns", utc=True),
        }
        for f in fields:
            data[f.field] = np.array(
                [np.nan if (v := getattr(parts[i], f.field, None)) is None else v for i in have], dtype=float
            )
        if per_tag:
            data[per_tag] = API_DEVICE
        frames[group_key_name(key)] = pd.DataFrame(data)
    return frames


# ------------------------------------------------------------------------------------------------
# The app and its server.


def build_app(
    view: ScoringView | None,
    metrics: DetectorMetrics,
    health: Callable[[], dict[str, Any]],
    max_batch_rows: int = 10_000,
) -> FastAPI:
    """The FastAPI app; ``view`` None serves only /health and /metrics (no detector state)."""
    app = FastAPI(
        title="Vigil detector",
        version="1",
        description=(__doc__ or "").split("\n\n", 1)[0],
    )

    @app.exception_handler(RequestValidationError)
    def invalid_request(_request: Any, exc: RequestValidationError) -> Response:
        """FastAPI's 422 body, made safe: a NaN the client sent is echoed as a string (JSON has no
        NaN: echoing it raw was a 500), and a huge offending input is summarised, not echoed."""
        return JSONResponse({"detail": [_safe_error(e) for e in jsonable_encoder(exc.errors())]}, 422)

    def health_response() -> Response:
        body = health()  # serialised as the standard-library server did (json.dumps, default=str)
        return Response(
            json.dumps(body, default=str).encode(),
            media_type="application/json",
            status_code=200 if body.get("ready") else 503,
        )

    app.get(
        "/health",
        summary="Liveness and readiness (503 with reasons when not ready)",
        responses={503: {"description": "Not ready; the body lists the reasons."}},
    )(health_response)
    app.get("/healthz", include_in_schema=False)(health_response)
    app.get("/", include_in_schema=False)(health_response)

    @app.get("/metrics", summary="Prometheus metrics", response_class=Response)
    def prometheus() -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    if view is None:
        return app

    Batch = create_model(  # noqa: N806 - a model class
        "PredictBatchRequest",
        rows=(list[Row], Field(min_length=1, max_length=max_batch_rows, description="Rows to score.")),
    )

    @app.get("/version", response_model=VersionResponse, summary="Models served and features")
    def version() -> VersionResponse:
        return view.version()

    # async: the scoring runs on the server's event loop (no thread pool hop; scoring holds the
    # GIL anyway), and the body is encoded once, from plain data (no response-model validation).
    # The response_model is kept for the OpenAPI document.
    @app.post("/predict", response_model=PredictResponse, summary="Score one row (raw or features)")
    async def predict(row: Row, include_features: bool = Query(False)) -> Response:
        return _json(view.predict([row], include_features))

    async def predict_batch(body: Any, include_features: bool = Query(False)) -> Response:
        return _json(view.predict(body.rows, include_features))

    # the request model is built at run time (its size limit is a setting): annotate it for real,
    # not as the string ``from __future__ import annotations`` would leave
    predict_batch.__annotations__["body"] = Batch
    app.post("/predict/batch", response_model=PredictResponse, summary="Score many rows")(predict_batch)

    return app


def _json(body: dict[str, Any]) -> Response:
    """The body as JSON bytes (msgspec: 2 ms for 1,000 rows where ``json.dumps`` took 22 ms); the
    scoring code has already turned every non-finite number into null."""
    return Response(msgspec.json.encode(body), media_type="application/json")


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def _safe_error(error: dict[str, Any], max_chars: int = 2000) -> dict[str, Any]:
    error = _finite(error)
    if "input" in error:
        text = json.dumps(error["input"], default=str)
        if len(text) > max_chars:
            error["input"] = f"<{type(error['input']).__name__} of {len(error['input'])} items, not echoed>"
    return error


class DetectorHttpServer:
    """uvicorn serving :func:`build_app` in a daemon thread (the scoring loop keeps the main one).

    The socket is bound here, so port 0 (tests) gets a free port and ``port`` is known at once.
    """

    def __init__(self, host: str, port: int, app: FastAPI, on_stop: Callable[[], None] | None = None) -> None:
        import uvicorn

        self.on_stop = on_stop
        self.sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.sock.listen(512)
        self.port = self.sock.getsockname()[1]
        config = uvicorn.Config(
            app, log_level="warning", access_log=False, lifespan="off", timeout_keep_alive=30
        )
        self.server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=lambda: self.server.run(sockets=[self.sock]), name="detector-http", daemon=True
        )

    def start(self, timeout_s: float = 10.0) -> DetectorHttpServer:
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self.server.started and self._thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.01)
        if not self.server.started:
            raise RuntimeError(f"detector http server did not start on port {self.port}")
        return self

    def stop(self) -> None:
        if self.on_stop is not None:
            self.on_stop()
        self.server.should_exit = True
        self._thread.join(timeout=10)
        self.sock.close()


def serve_detector(detector: ServedDetector) -> DetectorHttpServer:
    """Start the HTTP server (health, metrics, scoring API) of a detector; the CLI hands it to
    :meth:`detector.service.Detector.run` (``serve=``)."""
    s = detector.settings
    view = ScoringView(detector)
    app = build_app(view, detector.metrics, detector.health, s.api.max_batch_rows)
    app.include_router(labels_router(s.api, s.influx))  # POST /labels (bearer token): operators' verdicts
    return DetectorHttpServer(s.bind_host, s.detector.port, app, on_stop=view.close).start()


__all__ = [
    "DetectorHttpServer",
    "FeatureRow",
    "PredictResponse",
    "RawRow",
    "Row",
    "ScoringView",
    "build_app",
    "serve_detector",
]
