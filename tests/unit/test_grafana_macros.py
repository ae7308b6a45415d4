"""Grafana's InfluxQL macro expansion, checked against what Grafana's own code produces."""

from __future__ import annotations

import pandas as pd
import pytest

from toolkit.grafana.macros import (
    TimeRange,
    Variable,
    escape_regex,
    expand_query,
    format_interval,
    panel_interval_ms,
    round_interval,
)

TR = TimeRange.of(pd.Timestamp("2026-01-01T00:00:00Z"), pd.Timestamp("2026-01-01T06:00:00Z"))


def test_time_filter_is_epoch_ms_inclusive_like_grafana_backend() -> None:
    out = expand_query("SELECT 1 FROM m WHERE $timeFilter", TR, interval_ms=10_000)
    assert out == "SELECT 1 FROM m WHERE time >= 1767225600000ms and time <= 1767247200000ms"
    same = expand_query("WHERE $__timeFilter", TR, interval_ms=1)
    assert same == "WHERE time >= 1767225600000ms and time <= 1767247200000ms"


def test_interval_macros() -> None:
    q = "GROUP BY time($__interval) -- $interval $__interval_ms"
    assert expand_query(q, TR, interval_ms=30_000) == "GROUP BY time(30s) -- 30s 30000"
    assert (
        format_interval(60_000) == "1m"
        and format_interval(500) == "500ms"
        and format_interval(7_200_000) == "2h"
    )


def test_panel_interval_is_rounded_and_floored_at_the_datasource_minimum() -> None:
    # 6 h over 1000 points = 21.6 s -> Grafana rounds to 20 s
    assert round_interval(21_600) == 20_000
    assert panel_interval_ms(TR) == 20_000
    short = TimeRange.of(TR.start, TR.start + pd.Timedelta(minutes=5))
    assert panel_interval_ms(short) == 10_000  # 300 ms would be finer than Telegraf's 10 s


def test_host_variable_all_is_regex_escaped_and_joined() -> None:
    host = Variable("host", ("web-1", "db.1"), multi=True, include_all=True)
    q = 'SELECT x FROM m WHERE "host" =~ /^$host$/ AND ${host} = [[host]]'
    out = expand_query(q, TR, interval_ms=1000, variables=[host])
    assert out == 'SELECT x FROM m WHERE "host" =~ /^(web-1|db\\.1)$/ AND (web-1|db\\.1) = (web-1|db\\.1)'


def test_single_value_escaped_only_inside_a_regex() -> None:
    host = Variable("host", ("a/b.c",))
    assert expand_query("WHERE host = '$host'", TR, interval_ms=1, variables=[host]) == "WHERE host = 'a/b.c'"
    assert expand_query("WHERE host =~ /^$host$/", TR, interval_ms=1, variables=[host]) == (
        "WHERE host =~ /^a\\/b\\.c$/"
    )
    assert escape_regex("a.b/c|d(*)") == "a\\.b\\/c\\|d\\(\\*\\)"


def test_unknown_variable_is_an_error_not_a_broken_query() -> None:
    with pytest.raises(ValueError, match=r"unexpanded Grafana variable '\$region'"):
        expand_query("WHERE region = '$region' AND $timeFilter", TR, interval_ms=1000)


def test_time_range_must_be_ordered() -> None:
    with pytest.raises(ValueError, match="must end after it starts"):
        TimeRange.of(TR.end, TR.start)
