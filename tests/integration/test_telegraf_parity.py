"""telegraf/telegraf.conf and the local collector against the real Telegraf output samples.

Parity means: same measurement names, tag keys, field names and field types as
the samples, except for the differences ``toolkit.collector.parity`` lists with a
reason (options that telegraf.conf leaves off, READMEs that are stale).
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator

import pytest

from toolkit.collector import Collector, load_config
from toolkit.collector.config import LOCAL_INPUTS, TELEGRAF_CONF, expand_placeholders
from toolkit.collector.parity import (
    FIXTURE,
    allowed_differences,
    compare,
    read_fixture,
    rejects,
    schema_from_lines,
)
from vigil.influx import InfluxClient, quote_ident, quote_literal
from vigil.processes import free_port
from vigil.settings import Settings

#: Telegraf plugin (fixture group) -> measurements it writes that the collector mirrors.
PLUGIN_MEASUREMENTS = {
    "cpu": ["cpu"],
    "mem": ["mem"],
    "net": ["net"],
    "diskio": ["diskio"],
    "system": ["system"],
    "processes": ["processes"],
    "procstat": ["procstat", "procstat_lookup"],
}


@pytest.fixture(scope="module")
def target_app() -> Iterator[subprocess.Popen]:
    """A process whose command line matches telegraf.conf's procstat pattern (stands in for the app)."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", "stress.target_app"])
    yield proc
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture(scope="module")
def offline_settings() -> Settings:
    """Settings whose InfluxDB does not exist: gathering needs no server."""
    return Settings(_env_file=None, influx_port=free_port(), influx_create_databases=False)


@pytest.fixture(scope="module")
def two_gathers(offline_settings: Settings, target_app: subprocess.Popen) -> tuple[list[str], list[str]]:
    collector = Collector(offline_settings)
    first = [p.to_line() for p in collector.collect()]
    time.sleep(1.0)
    second = [p.to_line() for p in collector.collect()]
    return first, second


def test_telegraf_conf_is_valid_toml_with_the_required_agent_setup() -> None:
    text = TELEGRAF_CONF.read_text()
    conf = tomllib.loads(expand_placeholders(text, {}))
    assert conf["agent"]["interval"] == "10s"
    inputs = conf["inputs"]
    for name in (
        "cpu",
        "mem",
        "net",
        "diskio",
        "system",
        "processes",
        "docker",
        "procstat",
        "prometheus",
        "internal",
    ):
        assert name in inputs, name
    assert inputs["cpu"][0]["totalcpu"] is True and inputs["cpu"][0]["percpu"] is False
    assert "stress.target_app" in inputs["procstat"][0]["pattern"]
    assert inputs["docker"][0]["docker_label_include"], "unbounded label tags: set docker_label_include"
    assert inputs["prometheus"][0]["urls"] == ["http://detector:9108/metrics"]
    out = conf["outputs"]["influxdb"][0]
    assert out["database"] == "telegraf" and out["skip_database_creation"] is False
    # Credentials and endpoints come from the environment only (never literal secrets in the file).
    for option, var in (
        ("urls", "VIGIL_INFLUX_URL"),
        ("database", "VIGIL_INFLUX_RAW_DB"),
        ("username", "VIGIL_INFLUX_USERNAME"),
        ("password", "VIGIL_INFLUX_PASSWORD"),
        ("skip_database_creation", "VIGIL_TELEGRAF_SKIP_DATABASE_CREATION"),
    ):
        assert re.search(rf"^\s*{option}\s*=.*\$\{{{var}(:-[^}}]*)?\}}", text, re.M), option
    assert re.search(r"^\s*password\s*=\s*\"\$\{VIGIL_INFLUX_PASSWORD:-\}\"", text, re.M)


def test_placeholders_resolve_from_values_then_defaults() -> None:
    text = 'a = "${VIGIL_X:-dflt}"\nb = ${VIGIL_B:-false}\nc = "${VIGIL_C}"'
    assert tomllib.loads(expand_placeholders(text, {"VIGIL_X": "given"})) == {
        "a": "given",
        "b": False,
        "c": "",
    }


def test_fixture_markers_are_honoured_by_the_strict_parser() -> None:
    samples = read_fixture()
    assert samples.invalid, "the fixture marks some README lines as invalid"
    assert all(rejects(line) for line in samples.invalid)
    n_valid = sum(len(v) for v in samples.valid.values()) + len(samples.stale)
    assert n_valid == 73  # the fixture README: 73 valid lines
    assert [line for line, _ in samples.stale][0].startswith("net,interface=all")
    assert FIXTURE.read_bytes().startswith(b"# Telegraf input-plugin")


def test_config_enables_every_locally_readable_input(offline_settings: Settings) -> None:
    config = load_config(offline_settings.influx, offline_settings.detector)
    assert config.local_inputs == list(LOCAL_INPUTS)
    assert config.interval_s == 10.0
    assert config.procstat[0].pattern == "stress.target_app"


def test_first_gather_lacks_two_sample_fields_like_telegraf(two_gathers: tuple[list[str], list[str]]) -> None:
    first, second = (schema_from_lines(lines) for lines in two_gathers)
    assert "cpu" not in first  # usage_* needs two samples and time_* is off
    assert {"usage_user", "usage_idle", "usage_iowait"} <= set(second["cpu"].fields)
    assert "io_util" not in first["diskio"].fields and "io_util" in second["diskio"].fields
    assert "cpu_usage" not in first["procstat"].fields and "cpu_usage" in second["procstat"].fields


def test_collector_matches_telegraf_samples(
    offline_settings: Settings, two_gathers: tuple[list[str], list[str]]
) -> None:
    config = load_config(offline_settings.influx, offline_settings.detector)
    actual = schema_from_lines(two_gathers[0] + two_gathers[1])
    samples = read_fixture()
    enabled = [p for p in PLUGIN_MEASUREMENTS if config.enabled(p)]
    assert enabled == list(PLUGIN_MEASUREMENTS)
    measurements = [m for p in enabled for m in PLUGIN_MEASUREMENTS[p]]
    problems = compare(
        actual, samples.schema(enabled), allowed_differences(config), measurements=measurements
    )
    assert problems == []
    # Spot checks of the rules the comparison encodes.
    assert actual["cpu"].tag_keys == {"cpu", "host"}
    assert actual["mem"].fields["total"] == "integer" and actual["mem"].fields["used_percent"] == "float"
    assert actual["net"].fields["bytes_recv"] == "integer"
    assert actual["processes"].fields["zombies"] == "integer" and "zombie" not in actual["processes"].fields
    assert actual["system"].fields["uptime_format"] == "string"
    assert actual["procstat"].tag_keys == {"host", "pattern", "process_name", "user"}


def test_comparison_catches_a_type_or_name_drift(offline_settings: Settings) -> None:
    """The checker itself must fail on the mistakes it exists to catch."""
    config = load_config(offline_settings.influx, offline_settings.detector)
    samples = read_fixture()
    bad = schema_from_lines(
        [
            "mem,host=h total=1.5,used_percent=2i,swap_used=1i 1",  # float bytes, int percent, unknown field
            "processes,host=h zombie=0i 1",
        ]
    )
    problems = compare(
        bad,
        samples.schema(["mem", "processes"]),
        allowed_differences(config),
        measurements=["mem", "processes"],
    )
    joined = "\n".join(problems)
    assert "mem.total: type float, Telegraf writes integer" in joined
    assert "mem.used_percent: type integer, Telegraf writes float" in joined
    assert "mem.swap_used: field not written by Telegraf" in joined
    assert "processes.total: Telegraf writes it" in joined


def test_collector_output_loads_into_influxdb(
    settings: Settings, influx: InfluxClient, fresh_db: str, target_app: subprocess.Popen
) -> None:
    collector = Collector(settings, db=fresh_db)
    written = collector.once(prime_s=0.5)
    assert written > 0 and collector.buffer.written == written and len(collector.buffer) == 0
    lines = [p.to_line() for p in collector.collect()]
    expected = schema_from_lines(lines)
    stored = set(influx.measurements(fresh_db))
    assert {"cpu", "mem", "net", "diskio", "system", "processes", "procstat", "procstat_lookup"} <= stored
    for measurement, schema in expected.items():
        rows = influx.query(fresh_db, f"SHOW FIELD KEYS FROM {quote_ident(measurement)}")
        types = {name: kind for s in rows for name, kind in s["values"]}
        for name, kind in schema.fields.items():
            if name in types:  # fields present only in the later gather were not written by once()
                assert types[name] == kind, (measurement, name)
    host = collector.host
    df = influx.query_df(
        fresh_db, f"SELECT * FROM {quote_ident('mem')} WHERE {quote_ident('host')} = {quote_literal(host)}"
    )
    assert len(df) == 1 and int(df["total"].iloc[0]) > 0
