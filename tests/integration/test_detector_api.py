"""The scoring API against a real detector (its own loop over seeded history in a real InfluxDB)
served over real HTTP: /health and /metrics as before, /version, /predict and /predict/batch on
raw Telegraf rows and feature rows, identical features to the detector's own for the same raw
data, no learning and no baseline change, clear 422s naming the bad field for malformed bodies,
and schemathesis-generated requests that never get a 5xx.
"""

from __future__ import annotations

import math
import time

import hypothesis
import pandas as pd
import pytest
import requests
import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance
from support.detector_support import detector_settings, fit_model, predictions

from detector.api import build_app, serve_detector
from detector.api.labels import labels_router
from detector.factory import build_detector
from detector.observability import DetectorMetrics
from detector.service import NS
from stress.replay_source import read_influx_window
from toolkit.seed import seed_history
from vigil.features import FEATURE_COLUMNS, FeaturePipeline
from vigil.influx import InfluxClient
from vigil.model import LoadedModel
from vigil.settings import Settings

START = pd.Timestamp("2026-03-03T00:00:00Z")
MINUTES = 12
HOSTS = 3


@pytest.fixture(scope="module")
def served(settings, tmp_path_factory):
    """A detector that has scored all but the last interval of 12 min of 3 hosts, with a champion,
    serving HTTP on a free port. Yields (detector, base url, seeded, raw db)."""
    client = InfluxClient(settings.influx)
    raw_db, vigil_db = "api_raw", "api_vigil"
    for db in (raw_db, vigil_db):
        client.drop_database(db)
        client.create_database(db)
    s = detector_settings(settings, tmp_path_factory.mktemp("api"), raw_db, vigil_db)
    seeded = seed_history(
        client,
        s.influx,
        s.collection,
        start=START,
        hours=MINUTES / 60,
        hosts=HOSTS,
        seed=11,
        progress=False,
        db=raw_db,
    )
    _, features = FeaturePipeline().update_from_influx(client, raw_db, seeded.start, seeded.end, 10)
    det = build_detector(s, start=seeded.start)
    det.watcher.current = LoadedModel(name="api-champion", version=3, run_id=None, model=fit_model(features))
    det.champion_loaded_at = 1.0e9
    held_back = seeded.end - pd.Timedelta(seconds=10)
    while det.watermark_ns is None or det.watermark_ns < held_back.value:
        det.run_once(now=held_back.value / NS)
    server = serve_detector(det)
    try:
        yield det, f"http://127.0.0.1:{server.port}", seeded, raw_db
    finally:
        server.stop()
        for db in (raw_db, vigil_db):
            client.drop_database(db)


def raw_row(points, host: str) -> dict:
    """The Telegraf-schema API row of one host's points of one gather."""
    row: dict = {"host": host}
    for p in points:
        if p.tags.get("host") != host:
            continue
        if p.measurement == "cpu" and p.tags.get("cpu") != "cpu-total":
            continue
        row["time"] = pd.Timestamp(p.time_ns, unit="ns", tz="UTC").isoformat()
        fields = row.setdefault(p.measurement, {})
        for k, v in p.fields.items():
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                fields[k] = fields.get(k, 0) + v if p.measurement in ("net", "diskio") else v
    return row


def test_health_and_metrics_answer_as_before(served):
    det, url, _, _ = served
    health = requests.get(url + "/health", timeout=5)
    assert health.status_code == 200 and health.headers["content-type"] == "application/json"
    body = health.json()
    assert body["ready"] and body["mode"] == "champion" and body["hosts"] == HOSTS
    assert requests.get(url + "/healthz", timeout=5).json()["hosts"] == HOSTS
    metrics = requests.get(url + "/metrics", timeout=5)
    assert metrics.status_code == 200 and metrics.headers["content-type"].startswith("text/plain")
    assert "vigil_detector_host_intervals_total" in metrics.text
    assert requests.get(url + "/nope", timeout=5).status_code == 404
    assert "/predict/batch" in requests.get(url + "/openapi.json", timeout=5).json()["paths"]


def test_version_names_models_and_features(served):
    det, url, _, _ = served
    v = requests.get(url + "/version", timeout=5).json()
    assert (
        v["mode"] == "champion" and v["champion"]["name"] == "api-champion" and v["champion"]["version"] == 3
    )
    assert v["champion"]["loaded_at"].startswith("2001-09-09")
    assert v["online_model"]["samples_seen"] == det.online.n_seen > 0
    assert v["features"] == list(FEATURE_COLUMNS) and v["interval_s"] == 10


def test_raw_rows_get_the_detectors_own_features_and_teach_nothing(served, influx):
    det, url, seeded, raw_db = served
    last = seeded.end - pd.Timedelta(seconds=10)
    points = read_influx_window(influx, raw_db, last, seeded.end)
    hosts = sorted({p.tags["host"] for p in points})
    rows = [raw_row(points, h) for h in hosts]
    online_before, features_before = det.online.to_bytes(), det.pipeline.to_bytes()
    resp = requests.post(url + "/predict/batch?include_features=true", json={"rows": rows}, timeout=30)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["models"]["champion_version"] == 3 and body["models"]["mode"] == "champion"
    results = body["results"]
    assert [r["host"] for r in results] == hosts and all(r["host_known"] for r in results)
    for r in results:
        assert r["input"] == "raw" and r["champion"] is not None and r["online"]["top_features"]
        assert isinstance(r["is_anomaly"], bool) and r["is_anomaly"] == r["combined"]["is_anomaly"]
    # nothing learned, no baseline moved
    assert det.online.to_bytes() == online_before and det.pipeline.to_bytes() == features_before
    # now the detector scores that interval itself: the same features, to float precision
    seen_before = det.online.n_seen
    det.run_once(now=seeded.end.value / NS)
    det.sink.flush(force=True)
    assert det.online.n_seen > seen_before  # the loop learned: the API's snapshot is now behind
    mine = det.last_features.set_index("host")
    for r in results:
        for c in FEATURE_COLUMNS:
            assert math.isclose(r["features"][c], mine.at[r["host"], c], rel_tol=1e-9, abs_tol=1e-9), (
                r["host"],
                c,
            )
    # the API's snapshot of the online model follows the loop, off the request path
    deadline = time.monotonic() + 10
    while (
        requests.get(url + "/version", timeout=5).json()["online_model"]["samples_seen"] != det.online.n_seen
    ):
        assert time.monotonic() < deadline, "the scoring API never refreshed its online model snapshot"
        time.sleep(0.2)
    # ... and the same predictions: every model's score, threshold and decision
    vigil_db = det.settings.influx.vigil_db
    written = predictions(influx, vigil_db)
    written = written[pd.to_datetime(written["time"], utc=True) == last].set_index(["source", "host"])
    for r in results:
        for source, key in (("combined", "combined"), ("online", "online"), ("batch", "champion")):
            point = written.loc[(source, r["host"])]
            assert math.isclose(r[key]["score"], point["score"], rel_tol=1e-9), (r["host"], source)
            assert math.isclose(r[key]["threshold"], point["threshold"], rel_tol=1e-9), (r["host"], source)
            assert r[key]["is_anomaly"] == bool(point["is_anomaly"]), (r["host"], source)


def test_feature_rows_unknown_hosts_and_single_predict(served):
    _, url, _, _ = served
    calm = {"host": "h", "cpu_busy_z": 0.1}
    wild = {"kind": "features", "host": "h", **{c: 30.0 for c in FEATURE_COLUMNS if c.endswith("_z")}}
    body = requests.post(url + "/predict/batch", json={"rows": [calm, wild]}, timeout=10).json()
    calm_r, wild_r = body["results"]
    assert calm_r["input"] == wild_r["input"] == "features" and calm_r["host_known"] is None
    assert wild_r["champion"]["score"] > calm_r["champion"]["score"]
    assert wild_r["combined"]["score"] > calm_r["combined"]["score"]
    assert wild_r["champion"]["is_anomaly"] and not calm_r["champion"]["is_anomaly"]
    for r in (calm_r, wild_r):  # the documented rule (vigil.decision), threshold 1
        assert r["is_anomaly"] == (r["combined"]["score"] > 1.0) and r["combined"]["threshold"] == 1.0
    # an unknown host: neutral fresh baseline, in warm-up, cannot alarm
    row = {"host": "never-seen", "cpu": {"usage_idle": 1.0}, "mem": {"used_percent": 99.0}}
    one = requests.post(url + "/predict", json=row, timeout=10)
    assert one.status_code == 200, one.text
    r = one.json()["results"][0]
    assert r["host_known"] is False and r["warmup"] is True and r["is_anomaly"] is False


def errors_of(resp: requests.Response) -> list[tuple[str, str]]:
    assert resp.status_code == 422, resp.text
    return [(".".join(str(p) for p in e["loc"]), e["msg"]) for e in resp.json()["detail"]]


@pytest.mark.parametrize(
    ("path", "body", "where", "says"),
    [
        ("/predict", {"host": "a", "cpu": {"usage_idle": "busy"}}, "body.raw.cpu.usage_idle", "valid number"),
        ("/predict", {"host": "a", "cpu": {"usage_idle": True}}, "body.raw.cpu.usage_idle", "valid number"),
        ("/predict", {"host": "a", "net": {"bytes_recv": -5}}, "body.raw.net.bytes_recv", "greater than"),
        ("/predict", {"host": "a"}, "body.raw", "at least one of the measurements"),
        ("/predict", {"host": "", "mem": {"used_percent": 1}}, "body.raw.host", "at least 1 character"),
        ("/predict", {"host": "a", "time": "yesterday", "mem": {"used_percent": 1}}, "body.raw.time", "datetime"),
        ("/predict", {"host": "a", "time": "2999-01-01T00:00:00Z", "mem": {"used_percent": 1}}, "body.raw.time", "2200"),
        ("/predict", {"cpu_busy_z": 1, "cpu_busy_zz": 2}, "body.features.cpu_busy_zz", "Extra inputs"),
        ("/predict", {"kind": "features", "mem_used_pct_z": "x"}, "body.features.mem_used_pct_z", "valid number"),
        ("/predict", {"kind": "telegraf", "cpu": {}}, "body", "kind must be 'raw'"),
        ("/predict", [1, 2], "body", "kind must be 'raw'"),
        ("/predict/batch", {"rows": []}, "body.rows", "at least 1 item"),
        ("/predict/batch", {"row": [{"cpu_busy_z": 1}]}, "body.rows", "Field required"),
        ("/predict/batch", {"rows": [{"cpu_busy_z": 1}, {"host": "b", "mem": {"used_percent": "NaN"}}]},
         "body.rows.1.raw.mem.used_percent", "valid number"),
    ],
)  # fmt: skip
def test_malformed_bodies_are_422_naming_the_field(served, path, body, where, says):
    _, url, _, _ = served
    errors = errors_of(requests.post(url + path, json=body, timeout=10))
    assert any(loc == where and says in msg for loc, msg in errors), errors


def test_non_json_nan_and_oversized_bodies_are_rejected_cleanly(served):
    det, url, _, _ = served
    bad_json = requests.post(
        url + "/predict", data=b"{not json", headers={"content-type": "application/json"}
    )
    assert bad_json.status_code == 422 and bad_json.json()["detail"][0]["type"] == "json_invalid"
    nan = requests.post(
        url + "/predict", data=b'{"cpu_busy_z": NaN}', headers={"content-type": "application/json"}, timeout=5
    )
    assert ("body.features.cpu_busy_z", "Input should be a finite number") in errors_of(nan)
    too_many = {"rows": [{"cpu_busy_z": 0.0}] * (det.settings.api.max_batch_rows + 1)}
    assert any("at most" in m for _, m in errors_of(requests.post(url + "/predict/batch", json=too_many)))
    # the detector is unharmed
    assert requests.get(url + "/health", timeout=5).status_code == 200


#: The API's OpenAPI document, built without a detector (handlers are never called here) and
#: loaded eagerly: schemathesis' lazy ``from_fixture`` loader does not run under pytest 9
#: (it reads ``node._nodeid``). The test checks the served /openapi.json is this document.
_APP = build_app(object(), DetectorMetrics(), dict)
_DEFAULTS = Settings(_env_file=None)
_APP.include_router(labels_router(_DEFAULTS.api, _DEFAULTS.influx))  # what serve_detector adds: POST /labels
OPENAPI = _APP.openapi()
schema = schemathesis.openapi.from_dict(OPENAPI).exclude(path="/health")


def test_served_schema_is_the_one_tested(served):
    _, url, _, _ = served
    assert requests.get(url + "/openapi.json", timeout=5).json() == OPENAPI


@schema.parametrize()
@hypothesis.settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=list(hypothesis.HealthCheck),
    derandomize=True,
)
def test_generated_requests_never_get_a_server_error(case, served):
    _, url, _, _ = served
    case.call_and_validate(base_url=url, checks=[not_a_server_error, response_schema_conformance], timeout=30)
