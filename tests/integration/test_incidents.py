"""Incident bundles against a real InfluxDB, from the detector's own loop (virtual clock): two
hosts alarming in overlapping spans make ONE incident, a host's repeated alarms one episode
(cool-down), the bundle holds every raw point of the window (what ``vigil replay`` reads back),
the predictions, models and thresholds; ``vigil incidents list/show`` show it, a damaged bundle
is a clear error, and the stress report links the incident of its host and window."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from support.detector_support import detector_settings

from detector.factory import build_detector
from detector.incidents import BUNDLE_FILES, IncidentRecorder, read_raw_events
from detector.service import NS
from stress.replay_source import read_bundle, read_influx_window
from stress.report import Window, analyse, fetch_predictions, write_report
from toolkit.cli import main
from toolkit.seed import seed_history
from vigil.features import FEATURE_COLUMNS, FeaturePipeline
from vigil.influx import InfluxClient
from vigil.lineprotocol import Point
from vigil.model import AnomalyModel, CentroidScorer, LoadedModel
from vigil.settings import get_settings

START = pd.Timestamp("2026-04-04T00:00:00Z")
MINUTES = 12
SPIKES = {"host-01": (7.0, 8.0), "host-02": (7.5, 8.5)}  # minutes after START: overlapping spans


def distance_champion(features: pd.DataFrame) -> LoadedModel:
    """A real contract model: distance of the feature row from the baseline (all zeros), with its
    threshold just above the largest distance of the normal rows — so only the spikes convince it."""
    f = len(FEATURE_COLUMNS)
    scorer = CentroidScorer(mean=np.zeros(f), scale=np.ones(f), centers=np.zeros((1, f)))
    normal = features[features["warmup"] == 0][list(FEATURE_COLUMNS)].to_numpy(dtype=float)
    threshold = float(np.linalg.norm(normal, axis=1).max()) * 1.05
    model = AnomalyModel(scorer=scorer, threshold=threshold, family="distance")
    return LoadedModel(name="incident-champion", version=7, run_id=None, model=model)


@pytest.fixture(scope="module")
def recorded(settings, tmp_path_factory):
    client = InfluxClient(settings.influx)
    raw_db, vigil_db = "inc_raw", "inc_vigil"
    for db in (raw_db, vigil_db):
        client.drop_database(db)
        client.create_database(db)
    run_dir = tmp_path_factory.mktemp("incidents-run")
    s = detector_settings(
        settings, run_dir, raw_db, vigil_db,
        warmup_s=60.0, incident_before_min=1.0, incident_after_min=1.0, incident_cooldown_min=2.0,
    )  # fmt: skip
    seeded = seed_history(
        client,
        s.influx,
        s.collection,
        start=START,
        hours=MINUTES / 60,
        hosts=4,
        seed=3,
        anomalies=False,
        progress=False,
        db=raw_db,
    )
    _, normal = FeaturePipeline().update_from_influx(client, raw_db, seeded.start, seeded.end, 10)
    champion = distance_champion(normal)
    # the spikes: CPU pinned and load x10 on two hosts (same series and times: the points are overwritten)
    spikes = []
    for host, (a, b) in SPIKES.items():
        lo, hi = START + pd.Timedelta(minutes=a), START + pd.Timedelta(minutes=b)
        events, _, _ = read_raw_events(client, raw_db, [host], lo.value, hi.value, 10_000)
        for e in events:
            if e["measurement"] == "cpu":
                spikes.append(
                    Point("cpu", e["tags"], {"usage_idle": 0.5, "usage_iowait": 40.0}, e["time_ns"])
                )
            if e["measurement"] == "system":
                spikes.append(
                    Point("system", e["tags"], {"load1": float(e["fields"]["load1"]) * 10 + 20}, e["time_ns"])
                )
    client.write_points(raw_db, spikes)
    det = build_detector(s, start=seeded.start)
    det.watcher.current = champion
    interval = s.features.interval_s * NS
    t = seeded.start.value + interval
    while t <= seeded.end.value:
        det.run_once(now=t / NS)
        t += interval
    det.incidents.wait()
    det.shutdown()
    yield det, s, seeded, champion
    for db in (raw_db, vigil_db):
        client.drop_database(db)


def bundles(s):
    root = s.run_dir / "incidents"
    return sorted(p for p in root.iterdir() if p.is_dir())


def test_overlapping_hosts_make_one_complete_incident_with_everything_in_it(recorded, influx):
    det, s, seeded, champion = recorded
    folders = bundles(s)
    assert len(folders) == 1, [f.name for f in folders]
    folder = folders[0]
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["status"] == "complete" and set(meta["hosts"]) == set(SPIKES)
    for name in BUNDLE_FILES:
        assert (folder / name).is_file() and (folder / name).stat().st_size > 0, name
    for host, (a, b) in SPIKES.items():
        ep = meta["hosts"][host]
        assert ep["alarms"] > 1, "repeated alarms of one host: one episode"
        first = pd.Timestamp(ep["first_alarm"])
        assert START + pd.Timedelta(minutes=a - 0.2) <= first <= START + pd.Timedelta(minutes=b)
        assert ep["top_features"] and ep["captured"]
    assert meta["models"]["champion"] == {"name": "incident-champion", "version": 7,
                                          "threshold": champion.model.threshold}  # fmt: skip
    assert meta["models"]["combined"]["threshold"] == 1.0 and meta["models"]["online"]["threshold"] > 0
    # the window: 1 min before the first alarm to 1 min after the last alarmed interval
    start_ns, end_ns = meta["first_alarm_ns"] - 60 * NS, meta["last_alarm_ns"] + 10 * NS + 60 * NS
    assert (pd.Timestamp(meta["window"]["start"]).value, pd.Timestamp(meta["window"]["end"]).value) == (
        start_ns,
        end_ns,
    )
    # nothing lost: exactly the raw points InfluxDB holds for those hosts and that window...
    stored = read_influx_window(
        influx,
        s.influx.raw_db,
        pd.Timestamp(start_ns, tz="UTC"),
        pd.Timestamp(end_ns, tz="UTC"),
        sorted(SPIKES),
    )
    assert meta["events"] == len(stored) > 0
    # ...and vigil replay reads them back, typed as stored
    assert read_bundle(folder) == stored
    lines = [json.loads(x) for x in (folder / "events.jsonl").read_text().splitlines()]
    preds = [x for x in lines if x.get("kind") == "prediction"]
    assert len(preds) == meta["predictions"] > 0
    assert {p["tags"]["source"] for p in preds} == {"online", "batch", "combined"}
    assert any(p["fields"]["is_anomaly"] == 1 for p in preds if p["tags"]["source"] == "combined")
    assert "incident-champion" in (folder / "report.md").read_text()
    assert "incident_failed" not in det.metrics.errors and "incident_capture_failed" not in det.metrics.errors


def test_cooldown_suppresses_and_a_later_alarm_opens_a_new_incident_that_survives_a_restart(recorded):
    det, s, seeded, _ = recorded
    folder = bundles(s)[0]
    meta = json.loads((folder / "meta.json").read_text())
    rec = IncidentRecorder(s)  # a fresh recorder: state rebuilt from the bundles on disk
    again = meta["hosts"]["host-01"]["last_alarm_ns"] + 30 * NS  # within the 2 min cool-down
    row = {"score": 3.0, "is_anomaly": 1, "top1_feature": "cpu_busy_z", "top1_contribution": 0.9}
    assert (
        rec.observe(pd.DataFrame([{"host": "host-01", "time": pd.Timestamp(again, tz="UTC"), **row}]), {})
        == []
    )
    assert json.loads((folder / "meta.json").read_text())["suppressed_alarms"] == 1
    later = again + 10 * 60 * NS  # after the cool-down: a new episode, a new incident
    opened = rec.observe(
        pd.DataFrame([{"host": "host-03", "time": pd.Timestamp(later, tz="UTC"), **row}]), {}
    )
    assert len(opened) == 1 and opened[0] != folder.name
    assert json.loads((s.run_dir / "incidents" / opened[0] / "meta.json").read_text())["status"] == "open"
    assert opened[0] in IncidentRecorder(s).open, "an open incident is resumed after a restart"
    rec.close()


def test_incidents_cli_and_damaged_bundles(recorded, monkeypatch, tmp_path):
    _, s, _, _ = recorded
    monkeypatch.setenv("VIGIL_RUN_DIR", str(s.run_dir))
    get_settings.cache_clear()
    try:
        complete = next(
            f for f in bundles(s) if json.loads((f / "meta.json").read_text())["status"] == "complete"
        )
        res = CliRunner().invoke(main, ["incidents", "list"])
        assert res.exit_code == 0 and complete.name in res.output and "complete" in res.output
        res = CliRunner().invoke(main, ["incidents", "show", complete.name])
        assert res.exit_code == 0 and f"# Incident `{complete.name}`" in res.output
        # damaged: a copy without its PNG, another with a broken meta.json
        no_png = s.run_dir / "incidents" / "20990101T000000Z-aaaaaa"
        shutil.copytree(complete, no_png)
        (no_png / "incident.png").unlink()
        bad_meta = s.run_dir / "incidents" / "20990101T000000Z-bbbbbb"
        bad_meta.mkdir()
        (bad_meta / "meta.json").write_text("{not json")
        res = CliRunner().invoke(main, ["incidents", "show", no_png.name])
        assert res.exit_code == 1 and "incident.png missing" in res.output and "Traceback" not in res.output
        res = CliRunner().invoke(main, ["incidents", "show", bad_meta.name])
        assert res.exit_code == 1 and "not valid JSON" in res.output
        res = CliRunner().invoke(main, ["incidents", "show", "no-such-incident"])
        assert res.exit_code == 1 and "no incident 'no-such-incident'" in res.output
        res = CliRunner().invoke(main, ["incidents", "show", "../etc"])
        assert res.exit_code == 1 and "not an incident id" in res.output
        res = CliRunner().invoke(main, ["incidents", "list"])
        assert res.exit_code == 0 and res.output.count("DAMAGED") == 2 and complete.name in res.output
        assert (complete / "incident.png").is_file(), "nothing of the good bundle was touched"
        shutil.rmtree(no_png)
        shutil.rmtree(bad_meta)
    finally:
        get_settings.cache_clear()


def test_stress_report_links_the_incident_of_its_host_and_window(recorded, influx, tmp_path):
    _, s, _, _ = recorded
    complete = bundles(s)[0]
    a, b = SPIKES["host-02"]
    window = Window(
        start_ns=(START + pd.Timedelta(minutes=a)).value, end_ns=(START + pd.Timedelta(minutes=b)).value,
        grace_s=30, lookback_s=60,
    )  # fmt: skip
    preds = {
        h: fetch_predictions(influx, s.influx.vigil_db, h, window.view_start_ns, window.view_end_ns)
        for h in ("host-00", "host-02")
    }
    kwargs = dict(scenario="cpu", description="d", anomalous=True, intensity=1.0, planned_duration_s=60,
                  window=window, interval_s=10)  # fmt: skip
    out = s.run_dir / "reports" / "cpu-run"  # under the run folder, as the runner writes it
    mine = analyse(host="host-02", predictions=preds["host-02"], **kwargs)
    report = write_report(out, mine, window, preds["host-02"], pd.DataFrame(), ())
    assert report.detected and report.incident and report.incident["id"] == complete.name
    assert complete.name in (out / "report.md").read_text()
    assert json.loads((out / "report.json").read_text())["incident"]["id"] == complete.name
    quiet = analyse(host="host-00", predictions=preds["host-00"], **kwargs)
    other = write_report(
        tmp_path / "x",
        quiet,
        window,
        preds["host-00"],
        pd.DataFrame(),
        (),
        incidents_dir=s.run_dir / "incidents",
    )
    assert other.incident is None and "none recorded" in (tmp_path / "x" / "report.md").read_text()
