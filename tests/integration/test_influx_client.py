"""InfluxClient against a real InfluxDB 1.6: round trips, escaping, injection, chunking, errors, restarts."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest
from influxdb_client import Point as ClientPoint
from influxdb_client import WritePrecision

from toolkit.stack.influxdb import start_influxdb
from vigil.influx import (
    InfluxClient,
    InfluxError,
    InfluxUnavailable,
    quote_ident,
    quote_literal,
    tag_in,
    time_range,
)
from vigil.lineprotocol import LineProtocolError, Point, parse_line
from vigil.processes import free_port, read_record, stop_process
from vigil.settings import Settings

T0 = 1_700_000_000 * 10**9  # a fixed instant, ns
S = 10**9


def _select(influx: InfluxClient, db: str, measurement: str, where: str = "") -> pd.DataFrame:
    q = f"SELECT * FROM {quote_ident(measurement)}" + (f" WHERE {where}" if where else "")
    return influx.query_df(db, q)


# --- round trips -----------------------------------------------------------------------------------


def test_write_read_round_trip_several_series(influx: InfluxClient, fresh_db: str) -> None:
    points = [
        Point("cpu", {"host": h, "cpu": "cpu-total"}, {"usage_idle": 90.0 - i, "n": i}, T0 + i * 10 * S)
        for h in ("h1", "h2")
        for i in range(6)
    ]
    assert influx.write_points(fresh_db, points) == 12
    frame = influx.query_df(fresh_db, 'SELECT "usage_idle", "n" FROM "cpu" GROUP BY "host"')
    assert list(frame.columns) == ["_measurement", "time", "usage_idle", "n", "host"]
    assert sorted(frame["host"].unique()) == ["h1", "h2"]
    assert frame["time"].dt.tz is not None and frame["time"].min() == pd.Timestamp(T0, unit="ns", tz="UTC")
    h1 = frame[frame["host"] == "h1"].sort_values("time")
    assert h1["usage_idle"].tolist() == [90.0, 89.0, 88.0, 87.0, 86.0, 85.0]
    assert h1["n"].tolist() == list(range(6))


def test_group_by_time_with_fill(influx: InfluxClient, fresh_db: str) -> None:
    # points at 0s, 10s and 40s: the 20s and 30s buckets are empty and must come back filled.
    influx.write_points(
        fresh_db, [Point("m", {"host": "a"}, {"v": float(t)}, T0 + t * S) for t in (0, 10, 40)]
    )
    q = (
        f'SELECT mean("v") AS v FROM "m" WHERE {time_range(T0, T0 + 50 * S)} '
        'GROUP BY time(10s), "host" fill(-1)'
    )
    frame = influx.query_df(fresh_db, q)
    assert frame["v"].tolist() == [0.0, 10.0, -1.0, -1.0, 40.0]
    assert set(frame["host"]) == {"a"}


def test_precision_is_explicit(influx: InfluxClient, fresh_db: str) -> None:
    influx.write_lines(fresh_db, ["m v=1i 1700000000"], precision="s")
    assert influx.query(fresh_db, 'SELECT "v" FROM "m"')[0]["values"] == [[T0, 1]]
    with pytest.raises(ValueError, match="precision"):
        influx.write_lines(fresh_db, ["m v=1i 1"], precision="seconds")


def test_small_batches_write_everything(settings: Settings, fresh_db: str) -> None:
    client = InfluxClient(settings.influx, batch_size=7)
    assert client.write_lines(fresh_db, (f"m v={i}i {T0 + i}" for i in range(100))) == 100
    assert client.query(fresh_db, 'SELECT count("v") FROM "m"')[0]["values"][0][1] == 100


# --- escaping -----------------------------------------------------------------------------------------

NASTY = [
    "with space",
    "com,ma",
    "equ=als",
    'dou"ble',
    "sin'gle",
    "back\\slash",
    "ünïcødé ✓ 🚀",
    "mix ,=\"' \\x end",
]


@pytest.mark.parametrize("text", NASTY)
def test_escaping_round_trip_everywhere(influx: InfluxClient, fresh_db: str, text: str) -> None:
    """The same awkward text as measurement, tag key, tag value, field key and string value."""
    value = text + "\nsecond line"  # newlines are fine inside string field values
    tag_key, field_key = "t." + text, "f." + text  # a tag and a field may not share a name
    point = Point(text, {tag_key: text, "plain": "p"}, {field_key: 1.5, "s": value}, T0)
    influx.write_points(fresh_db, [point])

    assert influx.measurements(fresh_db) == [text]
    assert influx.tag_values(fresh_db, text, tag_key) == [text]
    keys = [
        v[0] for s in influx.query(fresh_db, f"SHOW TAG KEYS FROM {quote_ident(text)}") for v in s["values"]
    ]
    assert sorted(keys) == sorted([tag_key, "plain"])
    fields = influx.query(fresh_db, f"SHOW FIELD KEYS FROM {quote_ident(text)}")[0]["values"]
    assert sorted(fields) == sorted([[field_key, "float"], ["s", "string"]])

    frame = _select(influx, fresh_db, text, f"{quote_ident(tag_key)} = {quote_literal(text)}")
    assert frame[[tag_key, field_key, "s"]].to_dict("records") == [
        {tag_key: text, field_key: 1.5, "s": value}
    ]


def test_string_field_values_with_quotes_backslashes_and_newlines(
    influx: InfluxClient, fresh_db: str
) -> None:
    values = ['"', "\\", "\\\\", 'end\\"', "a\nb\r\nc", "trailing\\", "😀 ü", "' OR 1=1 --"]
    influx.write_points(fresh_db, [Point("m", {"i": str(i)}, {"s": v}, T0) for i, v in enumerate(values)])
    frame = influx.query_df(fresh_db, 'SELECT "s" FROM "m" GROUP BY "i"')
    assert dict(zip(frame["i"].astype(int), frame["s"], strict=True)) == dict(enumerate(values))


@pytest.mark.parametrize(
    ("measurement", "tags"),
    [("a\nb", {"h": "x"}), ("m", {"h": "x\ny"}), ("m", {"h\nk": "x"}), ("m", {"h": "ends\\"})],
)
def test_what_influxdb_cannot_store_is_refused_before_sending(
    influx: InfluxClient, fresh_db: str, measurement: str, tags: dict[str, str]
) -> None:
    with pytest.raises(LineProtocolError):
        influx.write_points(fresh_db, [Point(measurement, tags, {"v": 1.0}, T0)])
    assert influx.measurements(fresh_db) == []  # nothing half-written


def test_injection_attempt_matches_only_itself(influx: InfluxClient, fresh_db: str) -> None:
    evil = "a' OR host =~ /.*/ --"
    hosts = ["a", "b", evil, "a' OR 'x'='x", "a\\' OR 1=1"]
    influx.write_points(
        fresh_db, [Point("cpu", {"host": h}, {"v": float(i)}, T0) for i, h in enumerate(hosts)]
    )
    for i, host in enumerate(hosts):
        frame = influx.query_df(
            fresh_db, f'SELECT "v", "host" FROM "cpu" WHERE "host" = {quote_literal(host)}'
        )
        assert frame["host"].tolist() == [host]
        assert frame["v"].tolist() == [float(i)]
    frame = influx.query_df(fresh_db, f'SELECT "v", "host" FROM "cpu" WHERE {tag_in("host", [evil, "b"])}')
    assert sorted(frame["host"]) == sorted([evil, "b"])


def test_identifiers_with_quotes_via_quote_ident(influx: InfluxClient, fresh_db: str) -> None:
    measurement, field, tag = 'we"ird', 'f"x', 't"k'
    influx.write_points(fresh_db, [Point(measurement, {tag: "v"}, {field: 2.0}, T0)])
    q = f"SELECT {quote_ident(field)} FROM {quote_ident(measurement)} WHERE {quote_ident(tag)} = 'v'"
    frame = influx.query_df(fresh_db, q)
    assert frame[field].tolist() == [2.0]
    # A database name with quotes works through the same quoting.
    odd_db = fresh_db + '_q"uote'
    assert influx.create_database(odd_db)
    try:
        influx.write_points(odd_db, [Point("m", {}, {"v": 1.0}, T0)])
        assert influx.measurements(odd_db) == ["m"]
    finally:
        influx.drop_database(odd_db)


def test_our_serialisation_matches_influxdb_client_point() -> None:
    """For plain cases our lines mean the same as the official client's (it sorts fields)."""
    cases = [
        ("cpu", {"host": "web-1", "cpu": "cpu-total"}, {"usage_idle": 97.5, "n": 3}),
        ("cpu load,x", {"host name": "a=b,c d", "a": "ü"}, {"v": 1.5, "s": 'say "hi" \\ x', "b": True}),
        ("m=x", {"k": "v=1"}, {"f=1": 2, "g h": -1.25e-7}),
    ]
    for measurement, tags, fields in cases:
        ours = Point(measurement, tags, dict(sorted(fields.items())), T0).to_line()
        theirs_point = ClientPoint(measurement)
        for key, value in tags.items():
            theirs_point = theirs_point.tag(key, value)
        for key, value in fields.items():
            theirs_point = theirs_point.field(key, value)
        theirs = theirs_point.time(T0, WritePrecision.NS).to_line_protocol()
        assert ours.split(" ")[0] == theirs.split(" ")[0]  # measurement + tags byte for byte
        a, b = parse_line(ours), parse_line(theirs)
        assert (a.measurement, a.tags, a.fields, a.field_types, a.time_ns) == (
            b.measurement,
            b.tags,
            b.fields,
            b.field_types,
            b.time_ns,
        )


# --- queries --------------------------------------------------------------------------------------------


def test_chunked_query_equals_single_query(influx: InfluxClient, fresh_db: str) -> None:
    start = pd.Timestamp(T0, unit="ns", tz="UTC")
    influx.write_points(
        fresh_db,
        [Point("m", {"host": f"h{i % 3}"}, {"v": float(i)}, T0 + i * 60 * S) for i in range(600)],  # 10 h
    )
    end = start + timedelta(hours=10)
    template = 'SELECT "v" FROM "m" WHERE {time} GROUP BY "host"'
    single = influx.query_df(fresh_db, template.format(time=time_range(start, end)))
    chunked = influx.query_window(fresh_db, template, start, end, chunk=timedelta(minutes=47))
    assert len(single) == 600
    key = ["host", "time"]
    pd.testing.assert_frame_equal(
        single.sort_values(key).reset_index(drop=True), chunked.sort_values(key).reset_index(drop=True)
    )
    # An empty window is an empty frame, not an error.
    assert influx.query_window(fresh_db, template, end + timedelta(days=1), end + timedelta(days=2)).empty


# --- errors ---------------------------------------------------------------------------------------------


def test_field_type_conflict_is_surfaced_and_not_retried(influx: InfluxClient, fresh_db: str) -> None:
    influx.write_lines(fresh_db, ["m v=1i 1"])
    began = time.monotonic()
    with pytest.raises(InfluxError, match="field type conflict") as info:
        influx.write_lines(fresh_db, ['m v="text" 2'])
    assert info.value.status == 400
    assert time.monotonic() - began < 1.0  # 4xx: no backoff round
    assert influx.query(fresh_db, 'SELECT count("v") FROM "m"')[0]["values"][0][1] == 1


def test_invalid_line_protocol_is_a_4xx_with_the_server_text(influx: InfluxClient, fresh_db: str) -> None:
    with pytest.raises(InfluxError, match="unable to parse") as info:
        influx.write_lines(fresh_db, ["m v=notanumber 1"])
    assert info.value.status == 400


def test_error_inside_http_200_is_raised(influx: InfluxClient) -> None:
    with pytest.raises(InfluxError, match="database not found"):
        influx.query("no_such_db_here", 'SELECT * FROM "m"')


def test_bad_influxql_is_raised(influx: InfluxClient, fresh_db: str) -> None:
    with pytest.raises(InfluxError, match="error parsing query"):
        influx.query(fresh_db, "SELEKT nonsense")


def test_unreachable_server_names_the_url() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    client = InfluxClient(Settings(_env_file=None).influx, url=url, retries=2, backoff_s=0.01, timeout_s=1)
    with pytest.raises(InfluxUnavailable, match=url.replace(".", r"\.")):
        client.write_lines("db", ["m v=1 1"])
    with pytest.raises(InfluxUnavailable, match="cannot reach"):
        client.ping()
    assert not client.healthy()


def test_retention_policy_creation_and_rp_writes(
    settings: Settings, influx: InfluxClient, fresh_db: str
) -> None:
    assert influx.create_retention_policy(fresh_db, "short", "2h")
    names = [
        v[0]
        for v in influx.query(fresh_db, f"SHOW RETENTION POLICIES ON {quote_ident(fresh_db)}")[0]["values"]
    ]
    assert "short" in names
    with_rp = InfluxClient(settings.influx, rp="short")
    now_ns = time.time_ns()
    with_rp.write_lines(fresh_db, [f"m v=1i {now_ns}"])
    assert with_rp.query(fresh_db, 'SELECT "v" FROM "m"')[0]["values"] == [[now_ns, 1]]
    assert influx.query(fresh_db, 'SELECT "v" FROM "m"') == []  # not in the default RP


# --- InfluxDB restarted in the middle of a batched write -------------------------------------------------


@pytest.fixture()
def own_influx(tmp_path: Path) -> Iterator[tuple[Path, int, int]]:
    """An influxd of this test's own (it gets stopped and restarted)."""
    ports = (free_port(), free_port())
    start_influxdb(tmp_path, *ports, name="restart")
    yield tmp_path, *ports
    record = read_record(tmp_path, "restart")  # the test replaces the first process
    if record is not None:
        stop_process(record)


def test_restart_during_batched_write_loses_and_duplicates_nothing(
    own_influx: tuple[Path, int, int], caplog: pytest.LogCaptureFixture
) -> None:
    run_dir, http_port, rpc_port = own_influx
    settings = Settings(_env_file=None, influx_port=http_port)
    client = InfluxClient(settings.influx, batch_size=500, retries=10, backoff_s=0.2, timeout_s=5)
    client.create_database("restart")
    total = 50_000
    halfway = threading.Event()

    def lines() -> Iterator[str]:
        for i in range(total):
            if i == total // 5:
                halfway.set()
            yield f"m,host=h{i % 10} v={i}i {T0 + i * S}"

    result: dict[str, object] = {}

    def writer() -> None:
        try:
            result["written"] = client.write_lines("restart", lines(), precision="ns")
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            result["error"] = exc

    caplog.set_level(logging.WARNING, logger="vigil.influx")
    thread = threading.Thread(target=writer)
    thread.start()
    assert halfway.wait(60), "writer never got going"
    record = read_record(run_dir, "restart")
    assert record is not None and stop_process(record)
    time.sleep(1.0)  # the writer now hits a dead port and backs off
    start_influxdb(run_dir, http_port, rpc_port, name="restart")
    thread.join(120)
    assert not thread.is_alive()
    assert "error" not in result, result.get("error")
    assert result["written"] == total
    assert any("retry" in r.getMessage() for r in caplog.records), "the restart was never noticed"
    counts = client.query("restart", 'SELECT count("v"), sum("v") FROM "m"')[0]["values"][0]
    assert counts[1:] == [total, total * (total - 1) // 2]  # nothing lost, nothing duplicated
