"""The detector reads the registry without MLflow in its process (``detector.registry``): the alias
through MLflow's REST API, a new version through a short-lived loader child. Real MLflow servers:
the session's, and one with basic auth as the Compose deployment runs it."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from support.detector_support import ZeroScoreModel, fit_model, register_champion

import mlflow
from detector.champion import ChampionWatcher
from detector.registry import RegistryError, resolve_version
from toolkit.stack.mlflow_server import mlflow_command, mlflow_env, mlflow_healthy
from vigil.features import FEATURE_COLUMNS
from vigil.model import AnomalyModel
from vigil.processes import free_port, start_process, stop_process, wait_healthy
from vigil.settings import Settings


def _frame(seed: int = 0, n: int = 300) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(rng.normal(size=(n, len(FEATURE_COLUMNS))), columns=list(FEATURE_COLUMNS))


def test_the_detector_process_serves_a_registered_champion_without_mlflow(mlflow_settings, tmp_path):
    """``vigil detector run``'s process resolves the alias, loads the version through the child and
    scores exactly as the registered pyfunc does, with neither MLflow nor pyarrow nor SQLAlchemy
    imported (detector.lean, detector.registry: together ~105 MB of RSS it never needs)."""
    s = mlflow_settings.model_copy(update={"model_name": "registry-lean", "run_dir": tmp_path})
    version = register_champion(s, fit_model(_frame()))
    rows = _frame(seed=1, n=7)
    rows.iloc[0] = 25.0  # one clear outlier, so is_anomaly is not all zeros
    rows.to_csv(tmp_path / "rows.csv", index=False)
    mlflow.set_tracking_uri(s.mlflow.uri)
    expected = mlflow.pyfunc.load_model(f"models:/{s.mlflow.model_name}/{version}").predict(rows)
    child = textwrap.dedent(
        f"""
        import sys, detector.cli  # the entry point of `vigil detector run`
        import pandas as pd
        from detector.champion import ChampionWatcher
        from vigil.settings import Settings
        s = Settings(_env_file=None, mlflow_port={s.mlflow.port}, model_name={s.mlflow.model_name!r})
        w = ChampionWatcher(s.mlflow)
        assert w.check_once(), w.last_error
        out = w.current.predict(pd.read_csv({str(tmp_path / "rows.csv")!r}))
        out.to_csv({str(tmp_path / "out.csv")!r}, index=False)
        print(w.current.version, type(w.current.model).__name__,
              [m for m in ("mlflow", "pyarrow", "sqlalchemy") if m in sys.modules])
        """
    )
    # the pickled model's class lives in tests/support: the child finds it where pytest does
    tests_dir = str(Path(__file__).resolve().parents[1])
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [tests_dir, os.environ.get("PYTHONPATH")])),
    }
    done = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == f"{version} AnomalyModel []"
    got = pd.read_csv(tmp_path / "out.csv")
    assert got["is_anomaly"].sum() >= 1
    pd.testing.assert_frame_equal(got, pd.read_csv(_csv(expected, tmp_path / "expected.csv")))


def _csv(frame: pd.DataFrame, path: Path) -> Path:
    frame.to_csv(path, index=False)
    return path


def test_no_alias_no_model_and_a_dead_registry_are_told_apart(mlflow_settings):
    s = mlflow_settings.model_copy(update={"model_name": "registry-absent"})
    assert resolve_version(s.mlflow) is None  # no such registered model
    version = register_champion(s, fit_model(_frame()), alias="")
    assert resolve_version(s.mlflow) is None  # the model exists, the alias does not
    MlflowClient(s.mlflow.uri).set_registered_model_alias(s.mlflow.model_name, "champion", str(version))
    assert resolve_version(s.mlflow) == (
        version,
        MlflowClient(s.mlflow.uri).get_model_version(s.mlflow.model_name, version).run_id,
    )
    with pytest.raises(RegistryError, match="cannot reach"):
        resolve_version(s.model_copy(update={"mlflow_port": free_port()}).mlflow)


def test_a_pyfunc_that_is_not_vigils_contract_is_loaded_with_mlflow(mlflow_settings):
    """The loader child cannot unwrap it (exit 3), so the detector process falls back to MLflow in
    process, which must work there too (with pyarrow and SQLAlchemy kept out)."""
    s = mlflow_settings.model_copy(update={"model_name": "registry-foreign"})
    mlflow.set_tracking_uri(s.mlflow.uri)
    mlflow.set_experiment("detector-tests")
    with mlflow.start_run():
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=ZeroScoreModel(),
            registered_model_name=s.mlflow.model_name,
            pip_requirements=["mlflow"],
        )
    child = textwrap.dedent(
        f"""
        import sys, detector.cli  # the entry point of `vigil detector run`
        import numpy as np, pandas as pd
        from detector.registry import load_version
        from vigil.settings import Settings
        s = Settings(_env_file=None, mlflow_port={s.mlflow.port}, model_name={s.mlflow.model_name!r})
        m = load_version(s.mlflow, {int(info.registered_model_version)}, None)
        print(type(m.model).__name__, m.predict(pd.DataFrame({{"x": [1.0, 2.0]}}))["score"].tolist(),
              "mlflow" in sys.modules, "sqlalchemy" in sys.modules)
        """
    )
    # the pickled model's class lives in tests/support: the child finds it where pytest does
    tests_dir = str(Path(__file__).resolve().parents[1])
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [tests_dir, os.environ.get("PYTHONPATH")])),
    }
    done = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "PyFuncModel [0.0, 0.0] True False"
    assert "not a Vigil contract model" in done.stderr


@pytest.fixture(scope="module")
def auth_mlflow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Settings, str]]:
    """An MLflow server with basic auth on, configured like mlflow/start.sh (Compose)."""
    run_dir = tmp_path_factory.mktemp("auth-mlflow")
    password = "test-only-" + run_dir.name  # a throwaway for this server, not a secret
    ini = run_dir / "basic_auth.ini"
    ini.write_text(
        "[mlflow]\ndefault_permission = READ\n"
        f"database_uri = sqlite:///{run_dir / 'basic_auth.db'}\n"
        f"admin_username = admin\nadmin_password = {password}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
    )
    port = free_port()
    record = start_process(
        "mlflow-auth",
        [*mlflow_command(run_dir, port), "--app-name", "basic-auth"],
        run_dir=run_dir,
        port=port,
        url=f"http://127.0.0.1:{port}",
        env={**mlflow_env(), "MLFLOW_AUTH_CONFIG_PATH": str(ini), "MLFLOW_FLASK_SERVER_SECRET_KEY": password},
    )
    try:
        wait_healthy(record, lambda: mlflow_healthy(record.url), 240)
        yield (
            Settings(_env_file=None, run_dir=run_dir, mlflow_port=port, model_name="registry-auth"),
            password,
        )
    finally:
        stop_process(record)


def test_the_registry_is_read_with_mlflows_credentials(auth_mlflow, monkeypatch):
    """With basic auth on (the Compose deployment), the alias call and the loader child use
    MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD; wrong ones are a registry error, and the
    watcher keeps serving the model it has."""
    s, password = auth_mlflow
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "admin")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", password)
    version = register_champion(s, fit_model(_frame()))
    watcher = ChampionWatcher(s.mlflow)
    assert watcher.check_once(), watcher.last_error
    assert watcher.current.version == version and isinstance(watcher.current.model, AnomalyModel)

    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "wrong")
    with pytest.raises(RegistryError, match="401"):
        resolve_version(s.mlflow)
    errors = []
    watcher.on_error = errors.append
    assert watcher.check_once() is False
    assert errors == ["mlflow_unavailable"] and watcher.current.version == version
    monkeypatch.delenv("MLFLOW_TRACKING_USERNAME")
    monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD")
    with pytest.raises(RegistryError, match="401"):
        resolve_version(s.mlflow)
