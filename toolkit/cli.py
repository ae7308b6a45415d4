"""The ``vigil`` command: one entry point, each sub-command living next to the code it runs.

The command is tooling, the top layer, so it imports every part's CLI, each by a plain import
statement (so ``lint-imports`` sees the dependency), but inside a loader that runs only when its
sub-command is used:

* ``vigil status`` does not pay for importing Spark, MLflow and Airflow (``pipelines.backtest``
  alone takes seconds and hundreds of MB);
* ``detector.cli`` makes its process lean on import (``detector.lean``: pyarrow and SQLAlchemy
  kept out), which must happen only in the detector's own process, and the detector's worker
  processes (``python -m detector.cli run``) must not import the other parts.
"""

from __future__ import annotations

from collections.abc import Callable

import click

from vigil.logs import configure_logging


def _up() -> click.Command:
    from toolkit.stack.cli import up

    return up


def _down() -> click.Command:
    from toolkit.stack.cli import down

    return down


def _status() -> click.Command:
    from toolkit.stack.cli import status

    return status


def _collect() -> click.Command:
    from toolkit.collector.cli import collect

    return collect


def _seed() -> click.Command:
    from toolkit.seed.cli import seed

    return seed


def _pipeline() -> click.Command:
    from pipelines.cli import pipeline

    return pipeline


def _retrain() -> click.Command:
    from toolkit.airflow_client import retrain_command

    return retrain_command


def _detector() -> click.Command:
    from detector.cli import detector

    return detector


def _stress() -> click.Command:
    from stress.cli import stress

    return stress


def _demo() -> click.Command:
    from toolkit.demo import demo

    return demo


def _dashboard() -> click.Command:
    from toolkit.dashboard.cli import dashboard

    return dashboard


def _evaluate() -> click.Command:
    from pipelines.nab.cli import evaluate

    return evaluate


def _incidents() -> click.Command:
    from detector.incidents.cli import incidents

    return incidents


def _label() -> click.Command:
    from detector.labels_cli import label

    return label


def _replay() -> click.Command:
    from stress.replay import replay

    return replay


def _backtest() -> click.Command:
    from pipelines.backtest import backtest_command

    return backtest_command


#: command name -> the loader of its click command or group.
COMMANDS: dict[str, Callable[[], click.Command]] = {
    "up": _up,
    "down": _down,
    "status": _status,
    "collect": _collect,
    "seed": _seed,
    "pipeline": _pipeline,
    "retrain": _retrain,
    "detector": _detector,
    "stress": _stress,
    "demo": _demo,
    "dashboard": _dashboard,
    "evaluate": _evaluate,
    "incidents": _incidents,
    "label": _label,
    "replay": _replay,
    "backtest": _backtest,
}


class LazyGroup(click.Group):
    """A click group that imports a sub-command only when it is used."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        loader = COMMANDS.get(cmd_name)
        return None if loader is None else loader()


@click.group(cls=LazyGroup)
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
def main(verbose: bool) -> None:
    """Vigil: anomaly detection for infrastructure metrics, end to end."""
    configure_logging(verbose)


if __name__ == "__main__":
    main()
