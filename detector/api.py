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
(``OnlineDetector.score`` is pure; the snapshot is refreshed at most once per poll interval,
under the loop's state lock) and baselines are copied per request. Rows of one host in one
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

from vigil.features import BASE_METRICS, FEATURE_COLUMNS, FeatureBuilder
from vigil.features.source import QUERY_GROUPS, CounterState, base_metrics, group_key_name
from vigil.numbers import finite_or_none
from vigil.online import OnlineDetector
from vigil.serving.scoring import (
    ONLINE_FEATURES,
    ONLINE_MODEL_NAME,
    ONLINE_MODEL_VERSION,
    host_warmup,
    score_features,
)

if TYPE_CHECKING:
    from detector.observability import DetectorMetrics
    from detector.service import Detector

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


def _model_score(frame: pd.DataFrame, i: int) -> ModelScore:
    row = frame.iloc[i]
    top = []
    for k in (1, 2, 3):
        name = row.get(f"top{k}_feature")
        if isinstance(name, str) and name:
            top.append(TopFeature(feature=name, contribution=finite_or_none(row.get(f"top{k}_contribution"))))
    return ModelScore(
        score=finite_or_none(row.get("score")),
        threshold=finite_or_none(row.get("threshold")),
        is_anomaly=bool(finite_or_none(row.get("is_anomaly")) or 0),
        top_features=top,
    )


class ScoringView:
    """What the API needs from a running :class:`detector.service.Detector`, read-only.

    The online model is used through a snapshot refreshed at most every ``refresh_s`` (and only
    when the loop has moved on); per-host counter totals are indexed with it, so a request
    never walks the detector's whole state.
    """

    def __init__(self, detector: Detector, refresh_s: float | None = None) -> None:
        self.detector = detector
        self.settings = detector.settings
        self.refresh_s = detector.settings.poll_interval_s if refresh_s is None else refresh_s
        self._lock = threading.Lock()
        self._online: OnlineDetector | None = None
        self._counters: dict[tuple[str, str], tuple[int, float]] = {}
        self._taken_at = 0.0
        self._taken_iteration = -1

    # --- snapshot ------------------------------------------------------------------------------
    def snapshot(self) -> tuple[OnlineDetector, dict[tuple[str, str], tuple[int, float]]]:
        det = self.detector
        with self._lock:
            stale = self._online is None or (
                det.iterations != self._taken_iteration
                and time.monotonic() - self._taken_at >= self.refresh_s
            )
            if stale:
                with det.state_lock:
                    online = OnlineDetector.from_bytes(det.online.to_bytes())
                    last = dict(det.pipeline.counters.last)
                    iteration = det.iterations
                self._online, self._counters = online, _counter_totals(last)
                self._taken_at, self._taken_iteration = time.monotonic(), iteration
            return self._online, self._counters

    # --- /version ----------------------------------------------------------------------------------
    def version(self) -> VersionResponse:
        det = self.detector
        online, _ = self.snapshot()
        champion = det.champion
        status = det.watcher.status
        loaded_at = det.champion_loaded_at
        return VersionResponse(
            mode="champion" if champion else "online-only",
            registered_model=self.settings.model_name,
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
            interval_s=int(self.settings.feature_interval_s),
            shard=det.shard_label,
        )

    def served(self, online: OnlineDetector) -> ServedModels:
        champion = self.detector.champion
        return ServedModels(
            mode="champion" if champion else "online-only",
            champion_name=champion.name if champion else None,
            champion_version=champion.version if champion else None,
            online_name=ONLINE_MODEL_NAME,
            online_version=ONLINE_MODEL_VERSION,
            online_samples=online.n_seen,
        )

    # --- scoring -------------------------------------------------------------------------------------
    def predict(self, rows: list[Any], include_features: bool = False) -> PredictResponse:
        online, counters = self.snapshot()
        now = datetime.now(UTC)
        keys = pd.DataFrame(
            {
                "host": [r.host for r in rows],
                "time": pd.to_datetime([r.time or now for r in rows], utc=True),
                "raw": [r.kind == "raw" for r in rows],
            }
        )
        feats = pd.DataFrame(index=keys.index, columns=["warm", "host_known", *FEATURE_COLUMNS], dtype=object)
        raw_idx = keys.index[keys["raw"]]
        if len(raw_idx):
            self._raw_features([rows[i] for i in raw_idx], keys.loc[raw_idx], counters, feats)
        for i in keys.index[~keys["raw"]]:
            for c in FEATURE_COLUMNS:
                v = getattr(rows[i], c)
                feats.at[i, c] = 0.0 if v is None else float(v)
            feats.at[i, "warm"], feats.at[i, "host_known"] = False, None
        frame = pd.concat([keys[["host", "time"]], feats[list(FEATURE_COLUMNS)].astype(float)], axis=1)
        warm = feats["warm"].astype(bool).to_numpy()
        with self.detector.state_lock:
            calibration = self.detector.calibration.subset(frame["host"].astype(str).unique().tolist())
        scored = score_features(
            frame, online, self.detector.champion, warm, learn_max=0, learn=False, calibration=calibration
        )
        results = []
        for i in range(len(rows)):
            combined = _model_score(scored.combined, i)
            on = _model_score(scored.online, i)
            results.append(
                RowResult(
                    index=i,
                    host=str(keys.at[i, "host"]),
                    time=keys.at[i, "time"].to_pydatetime(),
                    input="raw" if keys.at[i, "raw"] else "features",
                    host_known=feats.at[i, "host_known"],
                    warmup=bool(scored.combined["warmup"].iloc[i]),
                    is_anomaly=combined.is_anomaly,
                    combined=combined,
                    champion=_model_score(scored.batch, i) if scored.batch is not None else None,
                    online=on,
                    features={c: finite_or_none(frame.at[i, c]) for c in FEATURE_COLUMNS}
                    if include_features
                    else None,
                )
            )
        return PredictResponse(models=self.served(online), results=results)

    def _raw_features(
        self,
        rows: list[Any],
        keys: pd.DataFrame,
        counters: dict[tuple[str, str], tuple[int, float]],
        out: pd.DataFrame,
    ) -> None:
        """Features of raw rows against copies of their hosts' baselines; fills ``out`` in place."""
        det = self.detector
        hosts = list(dict.fromkeys(keys["host"]))
        with det.state_lock:
            builder: FeatureBuilder = det.pipeline.builder.subset(hosts, keep_time=False)
        known = set(builder.hosts)
        state = CounterState(
            last={
                (h, API_DEVICE, f): counters[(h, f)]
                for h in known
                for f in COUNTER_FIELDS
                if (h, f) in counters
            }
        )
        raw = raw_frames(rows, keys)
        base = base_metrics(raw, state)
        features = builder.transform(base)
        warm = host_warmup(features, builder.seen, self.settings.warmup_intervals)
        features["warm"] = warm
        by_key = features.set_index(["host", "time"])
        for i, host, t in zip(keys.index, keys["host"], keys["time"], strict=True):
            try:
                row = by_key.loc[(host, t)]
            except KeyError:  # cannot happen (every row yields a feature row); never 500 on it
                row = None
            for c in FEATURE_COLUMNS:
                out.at[i, c] = 0.0 if row is None else float(row[c])
            out.at[i, "warm"] = True if row is None else bool(row["warm"]) or host not in known
            out.at[i, "host_known"] = host in known


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


def raw_frames(rows: list[Any], keys: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Raw API rows as the query-group frames ``vigil.features.base_metrics`` takes."""
    frames: dict[str, pd.DataFrame] = {}
    for key, fields in QUERY_GROUPS.items():
        measurement, _where, per_tag = key
        data: dict[str, list[Any]] = {"host": [], "time": []}
        for f in fields:
            data[f.field] = []
        for row, host, t in zip(rows, keys["host"], keys["time"], strict=True):
            values = getattr(row, measurement, None)
            if values is None:
                continue
            data["host"].append(host)
            data["time"].append(t)
            for f in fields:
                v = getattr(values, f.field, None)
                data[f.field].append(np.nan if v is None else float(v))
        frame = pd.DataFrame(data)
        if per_tag:
            frame[per_tag] = API_DEVICE
        frames[group_key_name(key)] = frame
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

    @app.post("/predict", response_model=PredictResponse, summary="Score one row (raw or features)")
    def predict(row: Row, include_features: bool = Query(False)) -> PredictResponse:
        return view.predict([row], include_features)

    def predict_batch(body: Any, include_features: bool = Query(False)) -> PredictResponse:
        return view.predict(body.rows, include_features)

    # the request model is built at run time (its size limit is a setting): annotate it for real,
    # not as the string ``from __future__ import annotations`` would leave
    predict_batch.__annotations__["body"] = Batch
    app.post("/predict/batch", response_model=PredictResponse, summary="Score many rows")(predict_batch)

    return app


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

    def __init__(self, host: str, port: int, app: FastAPI) -> None:
        import uvicorn

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
        self.server.should_exit = True
        self._thread.join(timeout=10)
        self.sock.close()


def serve_detector(detector: Detector) -> DetectorHttpServer:
    """Start the HTTP server (health, metrics, scoring API) of a detector."""
    from detector.labels_api import labels_router

    s = detector.settings
    app = build_app(ScoringView(detector), detector.metrics, detector.health, s.api_max_batch_rows)
    app.include_router(labels_router(s))  # POST /labels (bearer token): operators' verdicts
    return DetectorHttpServer(s.bind_host, s.detector_port, app).start()


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
