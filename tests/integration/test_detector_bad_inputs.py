"""A table of bad raw inputs, each with its expected handling: the loop never crashes, the good
host is still scored for every interval, and each fault is counted under its kind (detector
faults in ``errors``, bad values per host and kind by the data-quality guard).

Every case gets its own raw database (real InfluxDB) so a fault cannot leak into another case.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pytest
from support.detector_support import detector_settings, fresh_databases, predictions

from detector.factory import build_detector
from detector.service import Detector
from vigil.influx import InfluxClient, InfluxError
from vigil.processes import free_port

START = pd.Timestamp("2026-04-01T00:00:00Z")
N = 30  # intervals of 10 s


def host_lines(host: str, t_s: int, i: int, *, fields: dict[str, dict[str, str]] | None = None) -> list[str]:
    """Telegraf-schema lines for one host at one time; ``fields`` overrides per measurement."""
    tag = host.replace(" ", "\\ ").replace(",", "\\,").replace("=", "\\=")
    base = {
        "cpu": {"usage_idle": f"{90 - i % 3}", "usage_iowait": "1.0"},
        "mem": {"used_percent": f"{40 + i % 2}"},
        "system": {"load1": "0.5", "n_cpus": "4i"},
        "processes": {"total": "200i"},
        "net": {"bytes_recv": f"{1000 * i + 10**6}i", "bytes_sent": f"{500 * i + 10**6}i"},
        "diskio": {"read_bytes": f"{4000 * i}i", "write_bytes": f"{8000 * i}i"},
    }
    for m, f in (fields or {}).items():
        base[m] = {**base[m], **f} if f else {}
    extra = {"cpu": ",cpu=cpu-total", "net": ",interface=eth0", "diskio": ",name=sda"}
    out = []
    for m, f in base.items():
        if f:
            body = ",".join(f"{k}={v}" for k, v in f.items())
            out.append(f"{m}{extra.get(m, '')},host={tag} {body} {t_s}")
    return out


def good_history(hosts=("good",)) -> list[str]:
    t0 = int(START.value // 10**9)
    return [line for i in range(N) for h in hosts for line in host_lines(h, t0 + 10 * i, i)]


@dataclass
class Case:
    name: str
    lines: list[str]  # written before the detector runs
    expect_errors: dict[str, int]  # kind -> at least this many (detector faults)
    scored_hosts: set[str]  # hosts expected in the predictions
    after_first: list[str] = field(default_factory=list)  # written after the first iteration
    check: Callable[[pd.DataFrame], None] | None = None
    expect_quality: dict[tuple[str, str], int] = field(default_factory=dict)  # (host, kind) -> exactly


T0 = int(START.value // 10**9)


def _all_finite(pred: pd.DataFrame) -> None:
    """An absurd raw value is capped in the features (z_cap): every score stays a finite number."""
    assert np.isfinite(pred["score"].to_numpy(dtype=float)).all()


def _string_field() -> list[str]:
    # processes.total written as a string by every host of this database: each value is counted
    # as a type conflict and read as missing; the other metrics of the window are still scored
    return [line.replace("total=200i", 'total="two hundred"') for line in good_history()]


def _string_counter() -> list[str]:
    return [
        line.replace(f"bytes_recv={1000 * i + 10**6}i", 'bytes_recv="lots"')
        if line.startswith("net")
        else line
        for i in range(N)
        for line in host_lines("good", T0 + 10 * i, i)
    ]


def _nan_strings() -> list[str]:
    # "NaN"/"inf" cannot be written as numbers (InfluxDB answers 400), only as strings, and only in
    # a field that is a string in that shard: still not numbers, so type conflicts
    words = ("NaN", "inf", "-Infinity", "1e999", "42")
    return [
        line.replace("total=200i", f'total="{words[i % len(words)]}"')
        for i in range(N)
        for line in host_lines("good", T0 + 10 * i, i)
    ]


CASES = [
    Case(
        "string field: type conflict per value",
        _string_field(),
        {},
        {"good"},
        expect_quality={("good", "type_conflict"): N},
    ),
    Case(
        "string counter (last() of a string): type conflict",
        _string_counter(),
        {},
        {"good"},
        expect_quality={("good", "type_conflict"): N},
    ),
    Case(
        "NaN-like strings ('NaN', 'inf', '1e999', even '42'): type conflict",
        _nan_strings(),
        {},
        {"good"},
        expect_quality={("good", "type_conflict"): N},
    ),
    Case(
        "boolean gauge",
        [
            line.replace("used_percent=40", "used_percent=true").replace(
                "used_percent=41", "used_percent=false"
            )
            for line in good_history()
        ],
        {},
        {"good"},
        expect_quality={("good", "type_conflict"): N},
    ),
    Case(
        "missing measurement and field",
        [
            ln
            for i in range(N)
            for ln in host_lines("good", T0 + 10 * i, i, fields={"mem": {}, "cpu": {"usage_iowait": None}})
            if "usage_iowait=None" not in ln
        ]
        + [f"cpu,cpu=cpu-total,host=good usage_idle=90 {T0 + 10 * i}" for i in range(N)],
        {"missing_metric": N},
        {"good"},
        expect_quality={("good", "missing_field"): N},
    ),
    Case(
        "absurd value (1e300): out of range, kept out",
        good_history() + [f"mem,host=good used_percent=1e300 {T0 + 155}"],
        {},
        {"good"},
        check=lambda p: _all_finite(p),
        expect_quality={("good", "out_of_range"): 1},
    ),
    Case(
        "point without host tag",
        good_history() + [f"mem used_percent=50 {T0 + 10 * i}" for i in range(N)],
        {"missing_host_tag": N},
        {"good"},
    ),
    Case(
        "host appears then disappears",
        good_history() + [ln for i in range(10, 20) for ln in host_lines("flaky", T0 + 10 * i, i)],
        {},
        {"good", "flaky"},
    ),
    Case(
        "odd host names (space, comma, equals, unicode)",
        good_history(("good", "web 01,rack=a", "hôte-ü"))[:],
        {},
        {"good", "web 01,rack=a", "hôte-ü"},
    ),
    Case(
        "out-of-order and duplicate points",
        list(reversed(good_history())) + good_history()[:50],
        {},
        {"good"},
    ),
    Case(
        "counter backwards once (a wrong reading: it comes back)",
        [ln.replace(f"bytes_recv={1000 * 15 + 10**6}i", "bytes_recv=5i") for ln in good_history()],
        {},
        {"good"},
        expect_quality={("good", "counter_backwards"): 1},
    ),
    Case(
        "counter reset (a restart: it stays low)",
        [
            ln.replace(f"bytes_recv={1000 * i + 10**6}i", f"bytes_recv={1000 * i}i") if i >= 15 else ln
            for i in range(N)
            for ln in host_lines("good", T0 + 10 * i, i)
        ],
        {},
        {"good"},
        expect_quality={("good", "counter_reset"): 1},
    ),
    Case(
        "late point (after its interval was scored)",
        good_history(),
        {"late_point": 1},
        {"good"},
        after_first=[f"mem,host=good used_percent=55 {T0 + 5}"],
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_is_handled_and_counted(case: Case, settings, tmp_path):
    client = InfluxClient(settings.influx)
    raw_db, vigil_db = "bad_raw", "bad_vigil"
    with fresh_databases(client, raw_db, vigil_db):
        client.write_lines(raw_db, case.lines, precision="s")
        s = detector_settings(
            settings,
            tmp_path,
            raw_db,
            vigil_db,
            mlflow_port=free_port(),
            detector_history_hours=0.0,
            detector_max_catchup_intervals=6,
        )
        det = build_detector(s, start=START)
        end = START + pd.Timedelta(seconds=10 * N)
        det.run_once(now=end.value / 1e9)
        if case.after_first:
            client.write_lines(raw_db, case.after_first, precision="s")
        while det.watermark_ns < end.value:
            det.run_once(now=end.value / 1e9)
        det.run_once(now=end.value / 1e9)
        for kind, at_least in case.expect_errors.items():
            assert det.metrics.errors[kind] >= at_least, (kind, dict(det.metrics.errors))
        found = {(dict(s.labels)["host"], dict(s.labels)["kind"]): s.value for s in _dq_samples(det)}
        assert found == {k: float(v) for k, v in case.expect_quality.items()}, found
        pred = predictions(client, vigil_db)
        combined = pred[pred["source"] == "combined"]
        assert set(combined["host"]) == case.scored_hosts
        good = combined[combined["host"] == "good"]
        assert len(good) == N and not good.duplicated("time").any(), "the good host is scored every interval"
        if case.check:
            case.check(pred)


def _dq_samples(det: Detector):
    """The data-quality counter's samples as /metrics renders them."""
    from prometheus_client.parser import text_string_to_metric_families

    text = det.metrics.render().decode()
    return [
        s
        for fam in text_string_to_metric_families(text)
        if fam.name == "vigil_detector_data_quality"
        for s in fam.samples
        if s.name.endswith("_total")
    ]


def test_nan_and_inf_are_refused_by_influxdb_before_the_detector(influx, fresh_db):
    """NaN/inf cannot be stored (line protocol has no such float): the writer gets a clear 400."""
    for bad in ("NaN", "inf", "-Inf"):
        with pytest.raises(InfluxError) as err:
            influx.write_lines(fresh_db, [f"mem,host=x used_percent={bad} {T0}"], precision="s")
        assert err.value.status == 400
