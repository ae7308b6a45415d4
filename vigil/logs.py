"""One log format for every Vigil process: the ``vigil`` command and the processes started
without it (detector shards under the supervisor, the stress loads' detector), so their log
files read alike."""

from __future__ import annotations

import logging

#: Time, level, logger, message (a shard adds ``[shard i/n]`` to it: detector/cli.py).
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure_logging(verbose: bool = False) -> None:
    """Log to stderr at INFO (DEBUG with ``verbose``) in :data:`LOG_FORMAT`."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format=LOG_FORMAT)
