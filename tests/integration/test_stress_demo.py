"""The demo's own checks against a real InfluxDB (the full demo runs against the live stack, see docs/stress.md)."""

from __future__ import annotations

import time

import pytest
from click.testing import CliRunner

from toolkit.cli import main
from toolkit.demo import (
    DEMO_INTERVAL_S,
    DemoError,
    addresses,
    demo_settings,
    history_present,
    latest_prediction,
    wait_detector_ready,
)
from vigil import schema
from vigil.influx import InfluxClient
from vigil.lineprotocol import Point
from vigil.processes import free_port
from vigil.settings import Settings

S = 10**9


def test_history_present_needs_most_of_the_window(
    settings: Settings, fresh_db: str, influx: InfluxClient
) -> None:
    s = settings.model_copy(update={"influx_raw_db": fresh_db, "collect_interval_s": 10.0})
    hours = 0.1  # 360 s: 36 points at 10 s
    now = time.time_ns()
    assert not history_present(influx, s, "host-00", hours)
    points = [
        Point(schema.RAW_MEM, {"host": "host-00"}, {"used_percent": 30.0}, now - i * 10 * S)
        for i in range(20)
    ]
    influx.write_points(fresh_db, points)
    assert not history_present(influx, s, "host-00", hours)  # 20 of 36: seed again
    points = [
        Point(schema.RAW_MEM, {"host": "host-00"}, {"used_percent": 30.0}, now - i * 10 * S)
        for i in range(35)
    ]
    influx.write_points(fresh_db, points)
    assert history_present(influx, s, "host-00", hours)
    assert not history_present(influx, s, "host-01", hours)


def test_latest_prediction_reports_warmup(settings: Settings, fresh_db: str, influx: InfluxClient) -> None:
    s = settings.model_copy(update={"influx_vigil_db": fresh_db})
    assert latest_prediction(influx, s, "me") is None
    now = time.time_ns()
    tags = {"host": "me", "model": "m", "version": "2", "source": "combined"}
    influx.write_points(
        fresh_db,
        [
            schema.PREDICTIONS.point(
                tags, {"score": 0.1, "threshold": 1.0, "is_anomaly": 0, "warmup": 1}, now - 20 * S
            ),
            schema.PREDICTIONS.point(
                tags, {"score": 0.2, "threshold": 1.0, "is_anomaly": 0, "warmup": 0}, now - 10 * S
            ),
        ],
    )
    latest = latest_prediction(influx, s, "me")
    assert latest is not None and latest["warmup"] == 0
    assert latest["time"].value == now - 10 * S


def test_wait_detector_ready_explains_a_timeout(settings: Settings, fresh_db: str) -> None:
    s = settings.model_copy(
        update={"influx_vigil_db": fresh_db, "detector_port": free_port(), "hostname": "demo-host"}
    )
    lines: list[str] = []
    with pytest.raises(
        DemoError,
        match=r"detector not ready after 1 s: model none \(want 7\), host demo-host: no predictions",
    ):
        wait_detector_ready(s, "7", lines.append, timeout_s=1)
    assert any("waiting" in ln for ln in lines)


def test_demo_command_is_registered_and_lists_addresses(settings: Settings) -> None:
    result = CliRunner().invoke(main, ["demo", "--help"])
    assert result.exit_code == 0 and "--retrain" in result.output and "--duration" in result.output
    found = dict(addresses(settings, None))
    assert list(found)[:2] == ["Airflow UI", "MLflow UI"]
    # nothing answers on this MLflow port: the experiments list, still opened on training runs
    assert found["MLflow UI"] == f"{settings.mlflow.uri}/#/experiments?workflowType=machine_learning"


def test_demo_samples_every_5_s_unless_the_user_chose_an_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every wait in the demo is a number of intervals, so it runs at 5 s; a user's interval
    (environment or code) is never overridden, and the child services get the same one."""
    from toolkit.stack.services import settings_env

    for name in ("VIGIL_FEATURES__INTERVAL_S", "VIGIL_COLLECTION__INTERVAL_S") + (
        "VIGIL_FEATURE_INTERVAL_S",  # the legacy names too (settings-codemod: skip this file)
        "VIGIL_COLLECT_INTERVAL_S",
    ):
        monkeypatch.delenv(name, raising=False)
    demo = demo_settings(Settings(_env_file=None))
    assert (
        (demo.features.interval_s, demo.collection.interval_s)
        == (DEMO_INTERVAL_S, DEMO_INTERVAL_S)
        == (5, 5.0)
    )
    assert settings_env(demo)["VIGIL_FEATURES__INTERVAL_S"] == "5"
    assert demo_settings(Settings(_env_file=None, feature_interval_s=10)).features.interval_s == 10
    monkeypatch.setenv("VIGIL_COLLECTION__INTERVAL_S", "10")
    chosen = demo_settings(Settings(_env_file=None))
    assert (chosen.features.interval_s, chosen.collection.interval_s) == (10, 10.0)
