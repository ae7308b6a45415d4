"""``vigil detector run``: the online detector service (settings from VIGIL_* variables)."""

from __future__ import annotations

import sys

from detector.lean import make_process_lean

make_process_lean()  # before pandas is imported (detector.lean says why)

import click  # noqa: E402
import pandas as pd  # noqa: E402

from vigil.settings import get_settings  # noqa: E402


@click.group()
def detector() -> None:
    """The online anomaly detector."""


@detector.command("run")
@click.option("--start", default=None, help="Where to start without a checkpoint (ISO time); default: now.")
@click.option("--no-http", is_flag=True, help="Do not serve /health and /metrics.")
def run(start: str | None, no_http: bool) -> None:
    """Poll InfluxDB, score every host-interval with the champion and the online model, write predictions."""
    from detector.service import Detector

    settings = get_settings()
    begin = None
    if start:
        begin = pd.Timestamp(start)
        begin = begin.tz_localize("UTC") if begin.tzinfo is None else begin.tz_convert("UTC")
    det = Detector(settings, start=begin)
    sys.exit(det.run(serve_http=not no_http))
