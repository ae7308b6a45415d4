"""Run one scenario (or the suite) against any Vigil deployment described by a ``Settings``.

``run_scenario``: write the ground-truth window to ``vigil_labels``, run the load
as child processes, poll the detector's combined predictions for this host while
the load runs and for a grace period after, then write the report (Markdown,
JSON, PNG). Ctrl-C or SIGTERM stop the load at once, shorten the label to what
really ran, and still write the report.

Which host: the collector tags points with ``settings.collection.hostname`` or the machine's
name, and the loads run on this machine, so that is the host whose predictions
are read and whose window is labelled.

One job per module: ``watch`` (the host, the grace, polling the detector's predictions),
``scenario`` (:func:`run_scenario`), ``reporting`` (:func:`build_report`), ``rest`` (the rest
between scenarios), ``suite`` (:func:`run_suite`), ``table`` (its table), ``airflow``
(:func:`run_for_airflow`). The names below are re-exported.
"""

from __future__ import annotations

from stress.runner.airflow import run_for_airflow
from stress.runner.reporting import build_report
from stress.runner.rest import MAX_REST_S, QUIET_INTERVALS, Rest, alarm_summary, quiet_since, rest_until_quiet
from stress.runner.scenario import run_scenario
from stress.runner.suite import SUITE_ORDER, run_suite
from stress.runner.table import SUITE_COLUMNS, format_table, table_rows
from stress.runner.watch import Echo, default_grace_s, default_max_lag_s, monitored_host

__all__ = [
    "MAX_REST_S",
    "QUIET_INTERVALS",
    "SUITE_COLUMNS",
    "SUITE_ORDER",
    "Echo",
    "Rest",
    "alarm_summary",
    "build_report",
    "default_grace_s",
    "default_max_lag_s",
    "format_table",
    "monitored_host",
    "quiet_since",
    "rest_until_quiet",
    "run_for_airflow",
    "run_scenario",
    "run_suite",
    "table_rows",
]
