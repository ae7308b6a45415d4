"""Vigil's error policy in one place.

* Every error Vigil raises on purpose derives from :class:`VigilError` (each also keeps the
  built-in base it always had — ``RuntimeError``, ``ValueError`` — so existing ``except`` clauses
  keep working). A caller that wants "anything Vigil refused" catches ``VigilError``.
* :class:`BadDataError` marks errors about the data itself (a dataset failing its expectations, a
  window too short to inject anomalies into): the same input fails the same way every time, so
  the Airflow DAGs catch it **by type** and fail the task without retrying
  (``dags/_common.py``); infrastructure errors (connection refused, timeouts, 5xx) are retried.
* Command-line interfaces report failures as ``click.ClickException`` / ``click.UsageError`` (exit
  status 1 / 2), never with ``sys.exit`` of their own.
* Blocking HTTP retries go through ``tenacity`` with exponential backoff and jitter.

>>> issubclass(BadDataError, VigilError)
True
"""

from __future__ import annotations


class VigilError(Exception):
    """Base class of the errors Vigil raises on purpose."""


class BadDataError(VigilError):
    """The input data is bad: retrying with the same data cannot help."""


__all__ = ["BadDataError", "VigilError"]
