"""docker-compose.yml: parses, every path it builds or mounts exists, no secret inside, variables and
ports agree with .env.example and vigil/settings.py, and it mounts the very files the other tests check."""

# settings-codemod: skip (docker-compose.yml keeps the flat legacy VIGIL_ names, which Telegraf
# and Grafana read too and Vigil still accepts)
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from toolkit.grafana.build import PROVISIONING_DIR
from vigil.settings import PROJECT_ROOT, Settings, flat_names, legacy_env_name, new_env_name

COMPOSE_FILE = PROJECT_ROOT / "docker-compose.yml"
COMPOSE_TEXT = COMPOSE_FILE.read_text()
COMPOSE: dict[str, Any] = yaml.safe_load(COMPOSE_TEXT)
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
VAR = re.compile(r"\$\{(\w+)(?::?[-?][^}]*)?\}")
SECRET_WORDS = ("PASSWORD", "SECRET", "TOKEN", "KEY")
DEFAULTS = Settings(_env_file=None)


def _env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def _bind_mounts(service: dict[str, Any]) -> list[tuple[str, str]]:
    out = []
    for vol in service.get("volumes", []):
        source, target = vol.split(":")[:2]
        out.append((source, target))
    return out


def test_the_required_services_are_there() -> None:
    expected = {
        "telegraf", "influxdb", "grafana", "postgres", "mlflow", "airflow-init", "airflow-api-server",
        "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer", "spark-master", "spark-worker",
        "detector", "target",
    }  # fmt: skip
    assert expected <= set(SERVICES)
    assert SERVICES["influxdb"]["image"].startswith("influxdb:1.")
    assert _env(SERVICES["influxdb"])["INFLUXDB_HTTP_AUTH_ENABLED"] == "true"


def test_build_contexts_dockerfiles_and_mounted_paths_exist() -> None:
    for name, svc in SERVICES.items():
        build = svc.get("build")
        if build:
            context = PROJECT_ROOT / build["context"]
            assert context.is_dir(), name
            assert (context / build.get("dockerfile", "Dockerfile")).is_file(), name
        for source, _target in _bind_mounts(svc):
            if source.startswith((".", "/")) and not source.startswith(("/proc", "/sys", "/var/run")):
                assert (PROJECT_ROOT / source).exists(), f"{name}: {source} missing"
            elif not source.startswith("/"):
                assert source in COMPOSE["volumes"], f"{name}: named volume {source} not declared"
    for script in ("mlflow/start.sh", "docker/postgres/init-databases.sh"):
        assert (PROJECT_ROOT / script).stat().st_mode & 0o111, f"{script} must be executable"
    assert "--app-name basic-auth" in (PROJECT_ROOT / "mlflow/start.sh").read_text()
    assert "postgresql://" in (PROJECT_ROOT / "mlflow/start.sh").read_text()


def test_it_mounts_the_files_the_other_tests_check() -> None:
    telegraf = dict(_bind_mounts(SERVICES["telegraf"]))
    assert (PROJECT_ROOT / telegraf["./telegraf/telegraf.conf"]).name == "telegraf.conf"
    assert telegraf["./telegraf/telegraf.conf"] == "/etc/telegraf/telegraf.conf"
    grafana = {
        (PROJECT_ROOT / s).resolve(): t for s, t in _bind_mounts(SERVICES["grafana"]) if s.startswith(".")
    }
    assert grafana == {PROVISIONING_DIR.resolve(): "/etc/grafana/provisioning"}
    provider = yaml.safe_load((PROVISIONING_DIR / "dashboards" / "vigil.yaml").read_text())
    assert provider["providers"][0]["options"]["path"] == "/etc/grafana/provisioning/dashboards"


def test_no_secret_in_the_file() -> None:
    for name, svc in SERVICES.items():
        for key, value in _env(svc).items():
            if any(word in key for word in SECRET_WORDS) and not key.endswith("_FILE"):
                assert VAR.fullmatch(value), f"{name}: {key} must come from the environment, not {value!r}"
    assert not re.search(r"://[^:/\s]+:[^$@\s]+@", COMPOSE_TEXT), "credentials inside a URL"


def _env_example_names() -> set[str]:
    text = (PROJECT_ROOT / ".env.example").read_text()
    return set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]*)=", text, flags=re.M))


def test_every_variable_compose_needs_is_in_env_example() -> None:
    needed = set(VAR.findall(COMPOSE_TEXT))
    assert needed, "compose takes its secrets from the environment"
    missing = needed - _env_example_names()
    assert not missing, f"add to .env.example: {sorted(missing)}"


@pytest.mark.parametrize(
    ("service", "config_files"),
    [
        ("grafana", sorted(PROVISIONING_DIR.rglob("*.yaml"))),
        ("telegraf", [PROJECT_ROOT / "telegraf/telegraf.conf"]),
    ],
)
def test_variables_in_mounted_configs_are_set_for_their_service(
    service: str, config_files: list[Path]
) -> None:
    """Grafana and Telegraf expand ${VAR} in their config: each one without a default must be set."""
    env = _env(SERVICES[service])
    for path in config_files:
        text = "\n".join(line.split("#", 1)[0] for line in path.read_text().splitlines())
        for name, default in re.findall(r"\$\{(\w+)(:-[^}]*)?\}", text):
            assert default or name in env, f"{path.name} needs {name} in the {service} service"


def test_vigil_variables_are_real_settings_and_ports_match_the_defaults() -> None:
    # compose keeps the flat legacy names, which Settings still reads
    fields = {legacy_env_name(n) for n in flat_names()} | {new_env_name(n) for n in flat_names()}
    telegraf_only = {
        "VIGIL_DETECTOR_METRICS_URL",
        "VIGIL_TARGET_APP_PATTERN",
        "VIGIL_TELEGRAF_SKIP_DATABASE_CREATION",
    }
    for name, svc in SERVICES.items():
        for key in _env(svc):
            if key.startswith("VIGIL_") and key not in telegraf_only:
                assert key in fields, f"{name}: {key} is not a Vigil setting"
    published = {
        "influxdb": DEFAULTS.influx.port,
        "mlflow": DEFAULTS.mlflow.port,
        "airflow-api-server": DEFAULTS.airflow.port,
        "detector": DEFAULTS.detector.port,
        "target": DEFAULTS.stress.target_port,
    }
    for name, port in published.items():
        assert f"127.0.0.1:{port}:{port}" in SERVICES[name]["ports"], name
    for name, svc in SERVICES.items():
        for mapping in svc.get("ports", []):
            assert mapping.startswith("127.0.0.1:"), f"{name} publishes {mapping} beyond loopback"
    env = _env(SERVICES["detector"])
    assert env["VIGIL_INFLUX_URL"] == f"http://influxdb:{DEFAULTS.influx.port}"
    assert env["VIGIL_MLFLOW_TRACKING_URI"] == f"http://mlflow:{DEFAULTS.mlflow.port}"
    assert (
        env["VIGIL_INFLUX_RAW_DB"] == DEFAULTS.influx.raw_db
        and env["VIGIL_INFLUX_VIGIL_DB"] == DEFAULTS.influx.vigil_db
    )
    assert _env(SERVICES["airflow-api-server"])["VIGIL_AIRFLOW_URL"].endswith(f":{DEFAULTS.airflow.port}")
    assert (
        _env(SERVICES["telegraf"])["VIGIL_DETECTOR_METRICS_URL"]
        == f"http://detector:{DEFAULTS.detector.port}/metrics"
    )


def test_healthchecks_and_conditional_dependencies() -> None:
    for name, svc in SERVICES.items():
        if name != "airflow-init":
            assert svc.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
        for dep, spec in (svc.get("depends_on") or {}).items():
            assert dep in SERVICES, f"{name} depends on unknown {dep}"
            assert spec["condition"] in ("service_healthy", "service_completed_successfully"), (name, dep)
            if spec["condition"] == "service_healthy":
                assert SERVICES[dep].get("healthcheck"), f"{name} waits for {dep}, which has no healthcheck"
    assert SERVICES["mlflow"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert (
        SERVICES["airflow-scheduler"]["depends_on"]["airflow-init"]["condition"]
        == "service_completed_successfully"
    )
