"""Pure parts of the Airflow client and the retrain decision (the REST calls are tested on a real Airflow)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import SecretStr

from toolkit.airflow_client import AirflowApiError, AirflowClient, admin_password, build_conf
from vigil.processes import free_port
from vigil.settings import Settings


def test_build_conf_sends_only_what_the_user_gave() -> None:
    assert build_conf(None, None, (), None, None, False, False) == {}
    assert build_conf(6, "both", ("lof",), "full", 0.01, True, True) == {
        "lookback_hours": 6,
        "engine": "both",
        "model_families": ["lof"],
        "grid_size": "full",
        "promotion_margin": 0.01,
        "force_promote": True,
        "dry_run": True,
    }
    assert build_conf(None, None, (), None, None, False, False, backtest_hours=0) == {"backtest_hours": 0}


def test_admin_password_from_settings_or_generated_file(tmp_path: Path) -> None:
    cfg = Settings(_env_file=None, run_dir=tmp_path)
    with pytest.raises(AirflowApiError, match="VIGIL_AIRFLOW__PASSWORD"):
        admin_password(cfg.airflow)
    home = cfg.airflow.home_dir
    home.mkdir(parents=True)
    (home / "simple_auth_manager_passwords.json.generated").write_text(json.dumps({"admin": "s3cret"}))
    assert admin_password(cfg.airflow) == "s3cret"
    with pytest.raises(AirflowApiError, match="user 'bob' not in"):
        admin_password(cfg.airflow, "bob")
    explicit = cfg.model_copy(update={"airflow_password": SecretStr("given")})
    assert admin_password(explicit.airflow) == "given"


def test_unreachable_airflow_is_a_clear_error() -> None:
    client = AirflowClient(f"http://127.0.0.1:{free_port()}", "admin", "x", timeout_s=2)
    with pytest.raises(AirflowApiError, match="is unreachable"):
        client.trigger("vigil_retrain", {})
