"""The detector's HTTP server: ``/health``, ``/metrics`` and the scoring API (FastAPI + uvicorn).

Endpoints (OpenAPI at ``/openapi.json``, docs at ``/docs``):

* ``GET /health`` — liveness and readiness with reasons (200 ready, 503 not); ``/metrics`` —
  Prometheus text. Unchanged from the standard-library server they replace.
* ``GET /version`` — the champion served (name, version, when it was loaded), the online model's
  state and sample count, the feature list.
* ``POST /predict`` (one row) and ``POST /predict/batch`` (``{"rows": [...]}``) — score rows with
  the champion and the online model and return the combined decision (``vigil.decision``), the
  scores of both and their top contributing features.
* ``POST /labels`` — an operator's verdict on a window (bearer token; ``detector/api/labels.py``).

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

One job per module: ``request_models`` / ``response_models``, ``raw`` (raw rows into feature
frames), ``scoring`` (:class:`ScoringView`), ``app`` (:func:`build_app`), ``labels``
(``POST /labels``), ``server`` (uvicorn, :func:`serve_detector`). The names below are re-exported.
"""

from __future__ import annotations

from detector.api.app import build_app
from detector.api.labels import labels_router
from detector.api.request_models import FeatureRow, RawRow, Row
from detector.api.response_models import PredictResponse
from detector.api.scoring import ScoringView
from detector.api.server import DetectorHttpServer, serve_detector

__all__ = [
    "DetectorHttpServer",
    "FeatureRow",
    "PredictResponse",
    "RawRow",
    "Row",
    "ScoringView",
    "build_app",
    "labels_router",
    "serve_detector",
]
