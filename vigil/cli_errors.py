"""How Vigil's command-line interfaces fail: by raising click exceptions, never ``sys.exit``.

* a bad combination of options: ``click.UsageError`` (exit status 2, with the usage line);
* a refusal or a failure of the step itself (an empty window, an unknown model, a bad label):
  :class:`CliError` — ``error: <message>`` on stderr, exit status 2, as these commands always
  answered;
* other failures: ``click.ClickException`` (``Error: <message>``, exit status 1);
* an interrupted run: :func:`interrupted` (exit status 130, the shell's for SIGINT), and a command
  that hands on a service's own exit status: ``click.exceptions.Exit(code)``.
"""

from __future__ import annotations

from typing import IO, Any

import click

#: Exit status of an interrupted command (128 + SIGINT).
INTERRUPTED = 130


class CliError(click.ClickException):
    """A command refused its input or its step failed: ``error: <message>``, exit status 2."""

    exit_code = 2

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"error: {self.format_message()}", err=file is None, file=file)


def interrupted(message: str | None = None) -> click.exceptions.Exit:
    """The exception to raise when the user interrupted a command (Ctrl-C): exit status 130."""
    if message:
        click.echo(message, err=True)
    return click.exceptions.Exit(INTERRUPTED)


__all__ = ["INTERRUPTED", "CliError", "interrupted"]
