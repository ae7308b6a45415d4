"""Line protocol: serialiser and strict parser, and the real Telegraf samples."""

from __future__ import annotations

import math
import re

import pytest

from toolkit.collector.parity import FIXTURE
from vigil.lineprotocol import (
    LineProtocolError,
    Point,
    coerce_point,
    escape_key,
    escape_measurement,
    format_field_value,
    parse_line,
    parse_lines,
)

SAMPLES = FIXTURE  # the vendored copy of the real Telegraf samples (one file for every test)
MARKER = re.compile(r"^# !invalid-lp next (\d+) line")


def fixture_lines() -> tuple[list[str], list[str]]:
    """(valid, invalid) lines of the Telegraf samples, honouring the ``# !invalid-lp`` markers."""
    valid: list[str] = []
    invalid: list[str] = []
    skip = 0
    for line in SAMPLES.read_text().splitlines():
        marker = MARKER.match(line)
        if marker:
            skip = int(marker.group(1))
            continue
        if not line.strip() or line.startswith("#"):
            continue
        if skip:
            invalid.append(line)
            skip -= 1
        else:
            valid.append(line)
    return valid, invalid


# --- the real Telegraf output -------------------------------------------------------------------------


def test_every_valid_telegraf_sample_parses_and_every_marked_line_is_rejected() -> None:
    valid, invalid = fixture_lines()
    assert len(valid) == 73  # the fixture README's count
    assert len(invalid) == 4
    parsed = [parse_line(line) for line in valid]
    assert {p.measurement for p in parsed} >= {"cpu", "mem", "net", "diskio", "system", "processes"}
    for line in invalid:
        with pytest.raises(LineProtocolError):
            parse_line(line)


def test_samples_reserialise_to_equivalent_lines() -> None:
    """Our serialiser writes what our parser reads back, for everything Telegraf writes."""
    valid, _ = fixture_lines()
    for line in valid:
        parsed = parse_line(line)
        if "unsigned" in parsed.field_types.values():
            continue  # Point has no unsigned type; Vigil never writes one
        again = parse_line(Point(parsed.measurement, parsed.tags, parsed.fields, parsed.time_ns).to_line())
        assert (again.measurement, again.tags, again.fields, again.field_types, again.time_ns) == (
            parsed.measurement,
            parsed.tags,
            parsed.fields,
            parsed.field_types,
            parsed.time_ns,
        )


def test_types_of_a_telegraf_line() -> None:
    p = parse_line('procstat,host=h,pattern=x pid=12i,cpu_usage=1.5,cmdline="a \\"b\\"",running=true 5')
    assert p.field_types == {
        "pid": "integer",
        "cpu_usage": "float",
        "cmdline": "string",
        "running": "boolean",
    }
    assert p.fields["cmdline"] == 'a "b"'
    assert p.time_ns == 5


# --- serialising --------------------------------------------------------------------------------------


def test_escaping_of_measurement_tags_and_field_keys() -> None:
    point = Point("cpu load,x", {"host name": "a=b,c d", "k=": "ü 🚀"}, {"f ,=": 1}, 7)
    line = point.to_line()
    assert line == "cpu\\ load\\,x,host\\ name=a\\=b\\,c\\ d,k\\==ü\\ 🚀 f\\ \\,\\==1i 7"
    back = parse_line(line)
    assert (back.measurement, back.tags, back.fields) == (point.measurement, point.tags, point.fields)


def test_measurement_keeps_equals_sign_unescaped() -> None:
    assert escape_measurement("a=b c") == "a=b\\ c"


@pytest.mark.parametrize(
    "value",
    ['say "hi"', "back\\slash", "trailing\\", "new\nline", "tab\there", "a,b=c d", "ünïcødé ✓", ""],
)
def test_string_field_values_round_trip(value: str) -> None:
    line = Point("m", {"t": "v"}, {"s": value}, 1).to_line()
    assert "\n" not in line.split('"', 1)[0]  # newlines can only live inside the quoted value
    assert parse_line(line).fields == {"s": value}


@pytest.mark.parametrize(
    "tags",
    [{"host": "a\nb"}, {"ho\nst": "a"}, {"host": "ends\\"}, {"host": "a\\ b"}, {"host": "a\\,b"}],
)
def test_identifiers_influxdb_cannot_store_are_refused(tags: dict[str, str]) -> None:
    with pytest.raises(LineProtocolError):
        Point("m", tags, {"v": 1.0}).to_line()


def test_measurement_with_newline_is_refused() -> None:
    with pytest.raises(LineProtocolError, match="newline"):
        Point("a\nb", {}, {"v": 1.0}).to_line()


def test_field_values_are_typed_like_telegraf() -> None:
    assert format_field_value(3) == "3i"
    assert format_field_value(True) == "true"
    assert format_field_value(0.1) == "0.1"
    assert format_field_value(1e300) == "1e+300"
    with pytest.raises(LineProtocolError):
        format_field_value(float("nan"))
    with pytest.raises(LineProtocolError):
        format_field_value([1])  # type: ignore[arg-type]


def test_non_finite_fields_are_dropped_and_a_point_without_fields_refused() -> None:
    assert Point("m", {}, {"a": math.nan, "b": 1.0}, 1).to_line() == "m b=1.0 1"
    with pytest.raises(LineProtocolError, match="no finite field"):
        Point("m", {}, {"a": math.inf}, 1).to_line()


def test_empty_tag_values_are_left_out() -> None:
    assert Point("m", {"a": "", "b": "x"}, {"v": 1}, None).to_line() == "m,b=x v=1i"


def test_tags_are_sorted_like_influxdb_expects() -> None:
    assert Point("m", {"z": "1", "a": "2"}, {"v": 1}, 1).to_line() == "m,a=2,z=1 v=1i 1"


def test_coerce_point_unwraps_numpy_scalars_and_drops_none() -> None:
    import numpy as np

    point = coerce_point("m", {"host": 5, "x": None}, {"a": np.float64(1.5), "b": np.int64(2), "c": None}, 3)
    assert point.to_line() == "m,host=5 a=1.5,b=2i 3"


def test_escape_key_names_what_failed() -> None:
    with pytest.raises(LineProtocolError, match="tag value"):
        escape_key("", "tag value")


# --- parsing errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "line",
    [
        "",
        "# comment",
        "cpu",
        "cpu,host=a",
        ",host=a v=1",
        "cpu,host v=1",
        "cpu,host= v=1",
        "cpu v=",
        "cpu v=abc",
        'cpu v="open',
        "cpu v=1 notatime",
        "cpu v=1i2",
        "cpu v=nan",
        "cpu v=1,",
        "cpu =1",
        "cpu v:1",
    ],
)
def test_invalid_lines_are_rejected(line: str) -> None:
    with pytest.raises(LineProtocolError):
        parse_line(line)


def test_parse_lines_skips_comments_and_blanks_and_fails_on_the_first_bad_line() -> None:
    text = "# header\n\ncpu v=1 1\nmem used=2i 2\n"
    assert [p.measurement for p in parse_lines(text)] == ["cpu", "mem"]
    with pytest.raises(LineProtocolError):
        parse_lines(text + "broken\n")


def test_unsigned_and_boolean_spellings() -> None:
    p = parse_line("m a=5u,b=T,c=False,d=-2i,e=-1.5e-3")
    assert p.fields == {"a": 5, "b": True, "c": False, "d": -2, "e": -0.0015}
    assert p.field_types["a"] == "unsigned"
    assert p.time_ns is None
