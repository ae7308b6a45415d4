"""The champion's registry, read without importing MLflow into the serving process.

Why: importing MLflow costs a process ~55 MB, a fifth of the detector's 300 MB budget at
10,000 hosts, and the detector needs only two things from it:

* **which version the alias points at**, asked every reload interval: one call of MLflow's
  REST API (``GET /api/2.0/mlflow/registered-models/alias``, the call ``MlflowClient`` makes),
  with MLflow's own authentication variables (``MLFLOW_TRACKING_USERNAME`` and
  ``MLFLOW_TRACKING_PASSWORD``, or ``MLFLOW_TRACKING_TOKEN``; ``MLFLOW_TRACKING_INSECURE_TLS``,
  ``MLFLOW_TRACKING_SERVER_CERT_PATH``);
* **the model of a new version**, rarely: a short-lived child process
  (``python -m detector.fetch_model``) loads it with MLflow itself (any artifact store, the
  pyfunc loader) and hands back the :class:`~vigil.model.AnomalyModel` the pyfunc wraps. The
  detector scores with that object, which is what the pyfunc's ``predict`` calls.

A registered pyfunc that is not Vigil's contract cannot be unwrapped; it is then loaded in
process with MLflow, as before (and costs the memory). The tracking URI must be http(s).
"""

from __future__ import annotations

import logging
import os
import pickle
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import requests

from vigil.errors import VigilError
from vigil.model import CHAMPION, LoadedModel
from vigil.settings import MlflowSettings

log = logging.getLogger(__name__)

#: Exit status of ``detector.fetch_model`` when the version is a pyfunc but not Vigil's contract.
NOT_A_VIGIL_MODEL = 3
#: How long a child may take to download and load one version.
FETCH_TIMEOUT_S = 300.0
#: Answers of the alias call that mean "no such alias or model" rather than a failure.
_ABSENT = ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND")


class RegistryError(VigilError, RuntimeError):
    """The registry could not answer (down, refused the credentials, or answered nonsense)."""


def _request_options() -> dict[str, Any]:
    """Authentication, TLS and timeout from MLflow's own environment variables."""
    env = os.environ
    options: dict[str, Any] = {"timeout": float(env.get("MLFLOW_HTTP_REQUEST_TIMEOUT", "10"))}
    if env.get("MLFLOW_TRACKING_TOKEN"):
        options["headers"] = {"Authorization": f"Bearer {env['MLFLOW_TRACKING_TOKEN']}"}
    elif env.get("MLFLOW_TRACKING_USERNAME"):
        options["auth"] = (env["MLFLOW_TRACKING_USERNAME"], env.get("MLFLOW_TRACKING_PASSWORD", ""))
    if env.get("MLFLOW_TRACKING_INSECURE_TLS", "").lower() == "true":
        options["verify"] = False
    elif env.get("MLFLOW_TRACKING_SERVER_CERT_PATH"):
        options["verify"] = env["MLFLOW_TRACKING_SERVER_CERT_PATH"]
    return options


def resolve_version(registry: MlflowSettings, alias: str = CHAMPION) -> tuple[int, str | None] | None:
    """(version, run_id) the alias points at; None if there is no such alias or model.

    Raises :class:`RegistryError` when the registry cannot answer.
    """
    url = registry.uri.rstrip("/") + "/api/2.0/mlflow/registered-models/alias"
    try:
        resp = requests.get(url, params={"name": registry.model_name, "alias": alias}, **_request_options())
    except requests.RequestException as exc:
        raise RegistryError(f"cannot reach the MLflow registry at {registry.uri}: {exc}") from exc
    try:
        body = resp.json()
    except ValueError:
        body = {}
    if resp.ok and isinstance(body.get("model_version"), dict):
        mv = body["model_version"]
        return int(mv["version"]), mv.get("run_id") or None
    if resp.status_code in (400, 404) and body.get("error_code") in _ABSENT:
        return None
    raise RegistryError(
        f"the MLflow registry at {registry.uri} answered {resp.status_code} for "
        f"{registry.model_name}@{alias}: {resp.text[:200]}"
    )


def load_version(registry: MlflowSettings, version: int, run_id: str | None) -> LoadedModel:
    """Load one exact version (not the alias: it may move between resolving and loading).

    Raises with the child's own message when the version cannot be loaded.
    """
    with tempfile.TemporaryDirectory(prefix="vigil-fetch-") as tmp:
        out = Path(tmp) / "model.pkl"
        cmd = [
            sys.executable,
            "-m",
            "detector.fetch_model",
            "--tracking-uri",
            registry.uri,
            "--name",
            registry.model_name,
            "--version",
            str(version),
            "--out",
            str(out),
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=FETCH_TIMEOUT_S, check=False)
        if proc.returncode == 0:
            with open(out, "rb") as fh:
                model = pickle.load(fh)  # noqa: S301 - written just now by our own child, from our registry
        elif proc.returncode == NOT_A_VIGIL_MODEL:
            log.warning(
                "%s version %d is not a Vigil contract model; loading it with MLflow in process",
                registry.model_name,
                version,
            )
            model = _load_pyfunc_in_process(registry, version)
        else:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
            raise RuntimeError(f"loading version {version} failed: {' | '.join(tail) or proc.returncode}")
    return LoadedModel(name=registry.model_name, version=version, run_id=run_id, model=model)


def _load_pyfunc_in_process(registry: MlflowSettings, version: int) -> Any:
    import mlflow

    mlflow.set_tracking_uri(registry.uri)
    mlflow.set_registry_uri(registry.uri)
    return mlflow.pyfunc.load_model(f"models:/{registry.model_name}/{version}")
