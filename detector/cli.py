"""``vigil detector run``: the online detector service (settings from VIGIL_* variables)."""

from __future__ import annotations

import logging

from detector.lean import make_process_lean

make_process_lean()  # before pandas is imported (detector.lean says why)

import click  # noqa: E402
import pandas as pd  # noqa: E402

from vigil.logs import configure_logging  # noqa: E402
from vigil.settings import get_settings  # noqa: E402


@click.group()
def detector() -> None:
    """The online anomaly detector."""


@detector.command("run")
@click.option("--start", default=None, help="Where to start without a checkpoint (ISO time); default: now.")
@click.option("--no-http", is_flag=True, help="Do not serve /health and /metrics.")
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    help="Shard processes under one supervisor (default VIGIL_DETECTOR__WORKERS, 1); worker i serves "
    "HTTP on VIGIL_DETECTOR__PORT + i.",
)
def run(start: str | None, no_http: bool, workers: int | None) -> None:
    """Poll InfluxDB, score every host-interval with the champion and the online model, write predictions."""
    settings = get_settings()
    workers = workers or settings.detector.workers
    if workers > 1:
        from detector.supervisor import Supervisor

        args = (["--start", start] if start else []) + (["--no-http"] if no_http else [])
        raise click.exceptions.Exit(Supervisor(settings.detector, workers, args).run())
    if settings.detector.shard_count > 1:  # a worker: its shard on every log line
        for handler in logging.getLogger().handlers:
            handler.setFormatter(
                logging.Formatter(
                    f"%(asctime)s %(levelname)s [shard {settings.detector.shard_index}/{settings.detector.shard_count}] "
                    "%(name)s: %(message)s"
                )
            )
    from detector.factory import build_detector

    begin = None
    if start:
        begin = pd.Timestamp(start)
        begin = begin.tz_localize("UTC") if begin.tzinfo is None else begin.tz_convert("UTC")
    det = build_detector(settings, start=begin, http=not no_http)  # FastAPI only if it serves
    raise click.exceptions.Exit(det.run())


if __name__ == "__main__":  # ``python -m detector.cli run``: how the supervisor starts its shards
    configure_logging()  # the format `vigil` itself sets up
    detector()
