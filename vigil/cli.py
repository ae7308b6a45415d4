"""The ``vigil`` command: one entry point, each sub-command living next to the code it runs.

Sub-commands are imported lazily so ``vigil status`` does not pay for importing
Spark, MLflow and Airflow, and so the core package does not import
``pipelines``/``detector``/``stress`` (imports point the other way).
"""

from __future__ import annotations

import importlib
import importlib.util
import logging

import click

#: command name -> "module:attribute" of a click command or group.
COMMANDS: dict[str, str] = {
    "up": "vigil.stack.cli:up",
    "down": "vigil.stack.cli:down",
    "status": "vigil.stack.cli:status",
    "collect": "vigil.collector.cli:collect",
    "seed": "vigil.seed.cli:seed",
    "pipeline": "pipelines.cli:pipeline",
    "retrain": "vigil.airflow_client:retrain_command",
    "detector": "detector.cli:detector",
    "stress": "stress.cli:stress",
    "demo": "stress.demo:demo",
    "dashboard": "vigil.dashboard.cli:dashboard",
    "evaluate": "pipelines.nab.cli:evaluate",
    "incidents": "detector.incidents.cli:incidents",
    "label": "detector.labels_cli:label",
    "replay": "stress.replay:replay",
    "backtest": "pipelines.backtest:backtest_command",
}


class LazyGroup(click.Group):
    """A click group that imports a sub-command only when it is used."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(name for name, target in COMMANDS.items() if _module_exists(target.split(":")[0]))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, attr = target.split(":")
        if not _module_exists(module_name):
            return None
        return getattr(importlib.import_module(module_name), attr)


def _module_exists(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


@click.group(cls=LazyGroup)
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
def main(verbose: bool) -> None:
    """Vigil: anomaly detection for infrastructure metrics, end to end."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


if __name__ == "__main__":
    main()
