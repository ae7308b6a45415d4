"""``POST /labels``: an operator's verdict on a window of a host, through the detector's API.

The request is one label — ``{"host", "start", "end", "kind", "note"?, "incident_id"?}`` with
``kind=false_positive`` for "this window was normal" — stored in ``vigil_labels`` with
``source=operator`` (:mod:`vigil.labels`, the same checks and writer ``vigil label`` uses).

It changes state, so it needs ``Authorization: Bearer <VIGIL_API__TOKEN>``: a missing or
wrong token is a 401 before the body is even read (and every request is refused while no token
is configured). Bad input is a 422 whose ``detail`` names the field (``loc: ["body", "end"]``):
a missing field, a malformed time, an end not after the start, a kind that is not a plain word,
or a window overlapping a label the host already has. InfluxDB unreachable: 503, nothing written.
A stored label answers 201 with its ``label_id``.

A router of its own (included by :func:`detector.api.serve_detector`) so the scoring API and this
endpoint stay independent.
"""

from __future__ import annotations

import json
import secrets
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from vigil.influx import InfluxClient, InfluxError
from vigil.labels import FALSE_POSITIVE, OPERATOR, Label, LabelError, add_labels
from vigil.settings import ApiSettings, InfluxSettings


class LabelRequest(BaseModel):
    """One verdict on ``[start, end)`` of ``host``."""

    model_config = ConfigDict(extra="forbid")

    host: str = Field(min_length=1, max_length=253, description="Host the window belongs to.")
    start: datetime = Field(description="Window start (ISO 8601; UTC when no zone is given).")
    end: datetime = Field(description="Window end, exclusive; after start.")
    kind: str = Field(
        min_length=1,
        max_length=64,
        description=f"What happened (e.g. cpu_spike), or {FALSE_POSITIVE}: the window was normal.",
    )
    note: str = Field("", max_length=2000, description="Free text kept with the label.")
    incident_id: str = Field("", max_length=200, description="The incident this verdict is about, if any.")


class LabelStored(BaseModel):
    label_id: str
    host: str
    start: datetime
    end: datetime
    kind: str
    source: str
    verdict: str


def _unauthorized(why: str) -> JSONResponse:
    return JSONResponse({"detail": why}, status_code=401, headers={"WWW-Authenticate": "Bearer"})


def _invalid(field: str, message: str, kind: str = "value_error") -> JSONResponse:
    return JSONResponse({"detail": [{"loc": ["body", field], "msg": message, "type": kind}]}, status_code=422)


def authorized(request: Request, api: ApiSettings) -> JSONResponse | None:
    """None when the request carries the configured bearer token (``api.token``), else the 401 to answer."""
    token = api.token.get_secret_value() if api.token else ""
    if not token:
        return _unauthorized("state-changing requests are disabled: no VIGIL_API__TOKEN is configured")
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not given:
        return _unauthorized("missing bearer token (Authorization: Bearer <VIGIL_API__TOKEN>)")
    if not secrets.compare_digest(given.strip().encode(), token.encode()):
        return _unauthorized("wrong bearer token")
    return None


def labels_router(
    api: ApiSettings, influx_config: InfluxSettings, client: InfluxClient | None = None
) -> APIRouter:
    """The ``POST /labels`` route (``settings.api``: its token), writing to the database of
    ``influx_config`` (``settings.influx``) with ``client`` (default: a client of that section)."""
    router = APIRouter()
    influx = client or InfluxClient(influx_config)

    @router.post(
        "/labels",
        status_code=201,
        response_model=LabelStored,
        summary="Store an operator's verdict on a window (bearer token required)",
        responses={
            401: {"description": "Missing or wrong bearer token."},
            422: {"description": "Bad input; detail[].loc names the field."},
            503: {"description": "InfluxDB unreachable; nothing written."},
        },
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": LabelRequest.model_json_schema()}},
            }
        },
    )
    async def post_label(request: Request) -> Any:
        refused = authorized(request, api)
        if refused is not None:
            return refused
        try:
            payload = json.loads(await request.body())
        except ValueError as exc:
            return _invalid("body", f"not JSON: {exc}", "json_invalid")
        try:
            body = LabelRequest.model_validate(payload)
        except ValidationError as exc:
            errors = [
                {"loc": ["body", *e["loc"]], "msg": e["msg"], "type": e["type"]}
                for e in exc.errors(include_url=False, include_input=False)
            ]
            return JSONResponse({"detail": errors}, status_code=422)
        label = Label(body.host, body.start, body.end, body.kind, OPERATOR, body.note, body.incident_id)
        try:
            # InfluxDB I/O off the event loop: the scoring endpoints share it
            (stored,) = await run_in_threadpool(add_labels, influx, influx_config, [label])
        except LabelError as exc:
            return _invalid(exc.field, str(exc))
        except InfluxError as exc:
            return JSONResponse({"detail": f"InfluxDB unreachable, nothing written: {exc}"}, status_code=503)
        return JSONResponse(
            LabelStored(
                label_id=stored.label_id,
                host=stored.host,
                start=stored.start.to_pydatetime(),
                end=stored.end.to_pydatetime(),
                kind=stored.kind,
                source=stored.source,
                verdict="normal" if stored.is_false_positive else "anomaly",
            ).model_dump(mode="json"),
            status_code=201,
        )

    return router
