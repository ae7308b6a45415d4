"""Settings: sections, legacy names, and .env.example generated from the model.

settings-codemod: skip (this file sets the legacy flat names on purpose)
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import SecretStr

from toolkit.stack.services import settings_env
from vigil.features import BaselineConfig
from vigil.settings import (
    LEGACY_NAMES,
    PROJECT_ROOT,
    SECTIONS,
    InfluxSettings,
    Settings,
    flat_names,
    is_explicit,
    legacy_env_name,
    new_env_name,
)
from vigil.settings_doc import render, rendered_default

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


def test_env_example_is_up_to_date() -> None:
    """.env.example is generated: `python -m vigil.settings_doc` after changing vigil/settings.py."""
    assert ENV_EXAMPLE.read_text() == render(), "run: python -m vigil.settings_doc"


def test_every_setting_is_documented_with_its_default() -> None:
    docs = documented()
    missing = [new_env_name(n) for n in flat_names() if new_env_name(n) not in docs]
    assert not missing, f".env.example lacks {missing}"
    wrong = {
        n: (docs[new_env_name(n)], rendered_default(n))
        for n in flat_names()
        if docs[new_env_name(n)] != rendered_default(n)
    }
    assert not wrong, f".env.example shows other defaults than Settings (shown, real): {wrong}"


def test_every_field_of_every_section_has_one_legacy_name() -> None:
    """The mapping table covers every sectioned field exactly once, and nothing else."""
    mapped = sorted(LEGACY_NAMES.values())
    real = sorted((s, f) for s, model in SECTIONS.items() for f in model.model_fields)
    assert mapped == real
    assert len(flat_names()) == len(set(flat_names())) == len(LEGACY_NAMES) + 4


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
    # Telegraf reads some settings by their legacy flat names, which Vigil still accepts
    known = set(documented()) | {legacy_env_name(n) for n in LEGACY_NAMES}
    assert used <= known, f"undocumented: {sorted(used - known)}"


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


def _clean_env(monkeypatch) -> None:
    """No VIGIL_ variable of the calling shell leaks into a test of the sources."""
    import os

    for key in list(os.environ):
        if key.upper().startswith("VIGIL_"):
            monkeypatch.delenv(key)


def test_environment_and_env_file_are_read(tmp_path: Path, monkeypatch) -> None:
    _clean_env(monkeypatch)
    (tmp_path / ".env").write_text("VIGIL_INFLUX__PORT=1234\nVIGIL_MLFLOW__PORT=2345\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("VIGIL_MLFLOW__PORT", "3456")  # the environment wins over .env
    s = Settings()
    assert (s.influx.port, s.mlflow.port) == (1234, 3456)
    assert s.influx.base_url == "http://127.0.0.1:1234"
    assert s.airflow.home_dir == s.run_dir / "airflow"


def test_nested_environment_names(monkeypatch) -> None:
    _clean_env(monkeypatch)
    monkeypatch.setenv("VIGIL_INFLUX__PORT", "8087")
    monkeypatch.setenv("VIGIL_DETECTOR__ALARM_GROUP_S", "60")
    monkeypatch.setenv("VIGIL_INCIDENTS__BEFORE_MIN", "3")
    monkeypatch.setenv("VIGIL_AIRFLOW__PORT", "8181")
    monkeypatch.setenv("VIGIL_MLFLOW__EXPERIMENT", "exp")
    monkeypatch.setenv("VIGIL_BIND_HOST", "10.0.0.7")
    s = Settings(_env_file=None)
    assert (s.influx.port, s.detector.alarm_group_s, s.incidents.before_min) == (8087, 60.0, 3.0)
    assert (s.airflow.port, s.mlflow.experiment) == (8181, "exp")
    # a section alone has complete URLs: the parent handed it bind_host and run_dir
    assert s.influx.base_url == "http://10.0.0.7:8087"
    assert s.airflow.base_url == "http://10.0.0.7:8181"
    assert s.mlflow.uri == "http://10.0.0.7:5000"
    assert s.detector.url == "http://10.0.0.7:9108"
    assert s.incidents.root == s.run_dir / "incidents"


@pytest.mark.parametrize("old", sorted(LEGACY_NAMES))
def test_every_legacy_environment_name_still_works(old: str, monkeypatch) -> None:
    _clean_env(monkeypatch)
    section, field = LEGACY_NAMES[old]
    value = _sample(section, field)
    monkeypatch.setenv(legacy_env_name(old), value)
    s = Settings(_env_file=None)
    assert _shown(getattr(getattr(s, section), field)) == value
    assert is_explicit(s, old)


def _sample(section: str, field: str) -> str:
    """A valid value unlike the default, as a variable spells it."""
    annotation = str(SECTIONS[section].model_fields[field].annotation)
    if "bool" in annotation:
        return "false" if SECTIONS[section]().model_dump()[field] else "true"
    if "int" in annotation:
        return "7"
    if "float" in annotation:
        return "0.5"
    if "Path" in annotation:
        return "/tmp/vigil-legacy"
    return "legacy-value"


def _shown(value: object) -> str:
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def test_legacy_names_in_env_file(tmp_path: Path, monkeypatch) -> None:
    _clean_env(monkeypatch)
    (tmp_path / ".env").write_text(
        "VIGIL_INFLUX_PORT=1234\nVIGIL_POLL_INTERVAL_S=2.5\nVIGIL_DETECTOR_API_TOKEN=tok\nVIGIL_INCIDENT_MAX_HOSTS=9\n"
    )
    monkeypatch.chdir(tmp_path)
    s = Settings()
    assert (s.influx.port, s.detector.poll_interval_s, s.incidents.max_hosts) == (1234, 2.5, 9)
    assert s.api.token is not None and s.api.token.get_secret_value() == "tok"


def test_legacy_keyword_arguments_and_model_copy(tmp_path: Path) -> None:
    s = Settings(_env_file=None, influx_port=4321, run_dir=tmp_path, model_name="m", warmup_s=10)
    assert (s.influx.port, s.mlflow.model_name, s.detector.warmup_s) == (4321, "m", 10.0)
    assert s.airflow.home_dir == tmp_path / "airflow"
    c = s.model_copy(update={"influx_retries": 0, "bind_host": "10.1.1.1", "detector": {"port": 1}})
    assert (c.influx.retries, c.influx.port, c.detector.port) == (0, 4321, 1)
    assert c.influx.base_url == "http://10.1.1.1:4321" and s.influx.retries == 6  # the original untouched
    assert is_explicit(c, "influx_retries") and not is_explicit(c, "influx_timeout_s")
    with pytest.raises(ValueError, match="no setting"):
        s.model_copy(update={"influx_prot": 1})
    assert Settings.model_validate({"influx_port": 3}).influx.port == 3


def test_new_names_win_over_old_ones(tmp_path: Path, monkeypatch) -> None:
    """Both set: the new name wins, in the environment, in .env and in keyword arguments; the
    environment still wins over .env whatever the spelling."""
    _clean_env(monkeypatch)
    (tmp_path / ".env").write_text(
        "VIGIL_INFLUX_RAW_DB=dot-old\nVIGIL_INFLUX__RAW_DB=dot-new\n"  # both in .env
        "VIGIL_INFLUX__VIGIL_DB=dot-new\n"  # new in .env, old in the environment
        "VIGIL_MLFLOW_EXPERIMENT=dot-old\n"  # old in .env only
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("VIGIL_INFLUX_PORT", "1111")
    monkeypatch.setenv("VIGIL_INFLUX__PORT", "2222")
    monkeypatch.setenv("VIGIL_INFLUX_VIGIL_DB", "env-old")
    s = Settings()
    assert s.influx.port == 2222
    assert s.influx.raw_db == "dot-new"
    assert s.influx.vigil_db == "env-old"  # the environment beats .env
    assert s.mlflow.experiment == "dot-old"
    assert Settings(_env_file=None, influx_port=1, influx={"port": 2}).influx.port == 2
    assert Settings(_env_file=None, influx_port=3).influx.port == 3  # keywords beat the environment


def test_a_section_alone_takes_defaults_not_the_environment(monkeypatch) -> None:
    monkeypatch.setenv("VIGIL_INFLUX__PORT", "9999")
    assert InfluxSettings().base_url == "http://127.0.0.1:8086"


def test_settings_env_round_trips(tmp_path: Path, monkeypatch) -> None:
    """What `vigil up` hands its children (the new names) rebuilds the same settings in the child."""
    _clean_env(monkeypatch)
    original = Settings(
        _env_file=None,
        run_dir=tmp_path / "run",
        influx_port=4321,
        influx_password=SecretStr("s3cret"),
        influx_create_databases=False,
        spark_master="local[2]",
    )
    env = settings_env(original)
    assert env["VIGIL_INFLUX__PORT"] == "4321" and "VIGIL_INFLUX_PORT" not in env
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    rebuilt = Settings(_env_file=None)
    assert rebuilt.model_dump(exclude={"influx": {"password"}}) == original.model_dump(
        exclude={"influx": {"password"}}
    )
    assert rebuilt.influx.password.get_secret_value() == "s3cret"


def test_host_warmup_setting_and_baseline_warmup_agree() -> None:
    """The detector's warm-up (a setting) and the baseline's "trusted" age (BaselineConfig, shared
    with training) are one number: a host must not alarm on a baseline that is still a running mean,
    nor be held back once it is trusted."""
    assert SECTIONS["detector"].model_fields["warmup_s"].default == BaselineConfig().warmup_s
