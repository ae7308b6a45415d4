"""The raw read + client-side ``per_interval`` equals what InfluxDB's own GROUP BY computes.

Why this test: the detector and training used to let the server aggregate
(``GROUP BY time(interval), "host" ... mean()/last()``); they now read raw points (one JSON
series instead of one per host) and aggregate in pandas. Against a real InfluxDB, with several
points per interval in random order, missing fields and two devices per host, both must agree.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from vigil.features import fetch_raw
from vigil.features.source import GROUP_KEYS, QUERY_GROUPS
from vigil.influx import InfluxClient, quote_ident, quote_literal

T0 = 1_767_225_600  # 2026-01-01, bucket-aligned


def _lines(rng: np.random.Generator) -> list[str]:
    lines = []
    for host in ("h1", "h2", "h 3"):
        esc = host.replace(" ", "\\ ")
        for _ in range(40):
            t_ns = T0 * 10**9 + int(rng.integers(0, 60 * 10**9))
            cpu = f"usage_idle={rng.uniform(0, 100):.3f}"
            if rng.random() < 0.7:
                cpu += f",usage_iowait={rng.uniform(0, 5):.3f}"
            lines.append(f"cpu,cpu=cpu-total,host={esc} {cpu} {t_ns}")
            lines.append(
                f"system,host={esc} load1={rng.uniform(0, 4):.3f},n_cpus={int(rng.integers(1, 9))}i {t_ns}"
            )
            for dev in ("eth0", "eth1"):
                lines.append(
                    f"net,host={esc},interface={dev} bytes_recv={int(rng.integers(0, 10**9))}i,"
                    f"bytes_sent={int(rng.integers(0, 10**9))}i {t_ns + 1}"
                )
    return lines


def _server_grouped(
    client: InfluxClient, db: str, name: str, start: pd.Timestamp, end: pd.Timestamp
) -> pd.DataFrame:
    measurement, where, per_tag = GROUP_KEYS[name]
    fields = QUERY_GROUPS[GROUP_KEYS[name]]
    select = ", ".join(f"{f.agg}({quote_ident(f.field)}) AS {quote_ident(f.field)}" for f in fields)
    conds = [f"{quote_ident(k)} = {quote_literal(v)}" for k, v in where]
    group = 'time(10s), "host"' + (f", {quote_ident(per_tag)}" if per_tag else "")
    template = (
        f"SELECT {select} FROM {quote_ident(measurement)} WHERE {' AND '.join([*conds, '{time}'])} "
        f"GROUP BY {group} fill(none)"
    )
    return client.query_window(db, template, start, end).drop(columns=["_measurement"])


@pytest.mark.parametrize("name", ["cpu[cpu=cpu-total]", "system", "net/interface"])
def test_raw_read_aggregates_like_influxdb_group_by(influx: InfluxClient, fresh_db: str, name: str) -> None:
    influx.write_lines(fresh_db, _lines(np.random.default_rng(7)), precision="ns")
    start, end = pd.Timestamp(T0, unit="s", tz="UTC"), pd.Timestamp(T0 + 60, unit="s", tz="UTC")
    ours = fetch_raw(influx, fresh_db, start, end, 10)[name]
    theirs = _server_grouped(influx, fresh_db, name, start, end)
    keys = ["host", "time"] + ([GROUP_KEYS[name][2]] if GROUP_KEYS[name][2] else [])
    ours = ours.sort_values(keys).reset_index(drop=True)
    theirs = theirs.sort_values(keys).reset_index(drop=True)[list(ours.columns)]
    assert len(ours) == len(theirs) > 0
    assert ours[keys].astype(str).equals(theirs[keys].astype(str))
    for f in QUERY_GROUPS[GROUP_KEYS[name]]:
        np.testing.assert_allclose(ours[f.field].to_numpy(float), theirs[f.field].to_numpy(float), rtol=1e-12)
