"""Settings: every field documented in .env.example with its real default; env and .env are read."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import SecretStr

from vigil.features import BaselineConfig
from vigil.settings import PROJECT_ROOT, Settings
from vigil.stack.services import settings_env

ENV_EXAMPLE = PROJECT_ROOT / ".env.example"
LINE = re.compile(r"^#?(VIGIL_[A-Z0-9_]+)=(.*)$")


def documented() -> dict[str, str]:
    """VIGIL_ variables of .env.example -> the value shown (the default)."""
    out = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        match = LINE.match(line.strip())
        if match:
            out[match.group(1)] = match.group(2)
    return out


def rendered_default(name: str) -> str:
    default = Settings.model_fields[name].default
    if name == "run_dir":
        return str(Path(default).relative_to(PROJECT_ROOT))  # documented relative to the project
    if default is None:
        return ""
    if isinstance(default, SecretStr):
        return default.get_secret_value()
    if isinstance(default, bool):
        return str(default).lower()
    return str(default)


def test_every_setting_is_documented_with_its_default() -> None:
    docs = documented()
    missing = [f"VIGIL_{n.upper()}" for n in Settings.model_fields if f"VIGIL_{n.upper()}" not in docs]
    assert not missing, f".env.example lacks {missing}"
    wrong = {
        n: (docs[f"VIGIL_{n.upper()}"], rendered_default(n))
        for n in Settings.model_fields
        if docs[f"VIGIL_{n.upper()}"] != rendered_default(n)
    }
    assert not wrong, f".env.example shows other defaults than Settings (shown, real): {wrong}"


def test_every_setting_has_a_comment_line_above_it() -> None:
    lines = ENV_EXAMPLE.read_text().splitlines()
    for i, line in enumerate(lines):
        if LINE.match(line.strip()):
            above = lines[i - 1].strip()
            assert above.startswith("# "), f"{line!r} has no description line above it"


def test_telegraf_conf_variables_are_documented() -> None:
    conf = (PROJECT_ROOT / "telegraf" / "telegraf.conf").read_text()
    used = set(re.findall(r"\$\{(VIGIL_[A-Z0-9_]+)", conf))
    assert used, "telegraf.conf uses no VIGIL_ variable: the pattern is wrong"
    assert used <= set(documented()), f"undocumented: {sorted(used - set(documented()))}"


def test_compose_secrets_are_placeholders() -> None:
    text = ENV_EXAMPLE.read_text()
    secrets = dict(re.findall(r"^([A-Z_]*PASSWORD[A-Z_]*|[A-Z_]*SECRET[A-Z_]*)=(.*)$", text, flags=re.M))
    for name in (
        "INFLUXDB_ADMIN_PASSWORD",
        "GRAFANA_ADMIN_PASSWORD",
        "POSTGRES_PASSWORD",
        "AIRFLOW_ADMIN_PASSWORD",
    ):
        assert name in secrets
    assert all(v.startswith("change-me") for v in secrets.values()), secrets


def test_every_variable_docker_compose_needs_is_listed() -> None:
    compose = (PROJECT_ROOT / "docker-compose.yml").read_text()
    needed = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", compose))
    assert needed, "docker-compose.yml uses no variable: the pattern is wrong"
    listed = set(re.findall(r"^#?([A-Z][A-Z0-9_]*)=", ENV_EXAMPLE.read_text(), flags=re.M))
    assert needed <= listed, f".env.example lacks {sorted(needed - listed)}"


def test_environment_and_env_file_are_read(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / ".env").write_text("VIGIL_INFLUX__PORT=1234\nVIGIL_MLFLOW_PORT=2345\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("VIGIL_MLFLOW__PORT", "3456")  # the environment wins over .env
    s = Settings()
    assert (s.influx.port, s.mlflow.port) == (1234, 3456)
    assert s.influx.base_url == "http://127.0.0.1:1234"
    assert s.airflow.home_dir == s.run_dir / "airflow"


def test_settings_env_round_trips(tmp_path: Path, monkeypatch) -> None:
    """What `vigil up` hands its children rebuilds the same settings in the child."""
    original = Settings(
        _env_file=None,
        run_dir=tmp_path / "run",
        influx_port=4321,
        influx_password=SecretStr("s3cret"),
        influx_create_databases=False,
        spark_master="local[2]",
    )
    for key, value in settings_env(original).items():
        monkeypatch.setenv(key, value)
    rebuilt = Settings(_env_file=None)
    assert rebuilt.model_dump() == original.model_dump() | {"influx_password": rebuilt.influx.password}
    assert rebuilt.influx.password.get_secret_value() == "s3cret"


def test_host_warmup_setting_and_baseline_warmup_agree() -> None:
    """The detector's warm-up (a setting) and the baseline's "trusted" age (BaselineConfig, shared
    with training) are one number: a host must not alarm on a baseline that is still a running mean,
    nor be held back once it is trusted."""
    assert Settings.model_fields["warmup_s"].default == BaselineConfig().warmup_s
