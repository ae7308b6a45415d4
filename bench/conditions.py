"""What a benchmark figure was measured under: the command and the machine's load average.

Why: the development machines have two cores shared by several people, and a figure taken
under a load average of 12 says little about the code. Every bench prints
:func:`header` once and :func:`load` beside every figure, so a reader can tell a quiet
measurement from a busy one without asking.

>>> load().startswith("load ")
True
"""

from __future__ import annotations

import os
import shlex
import sys
import time


def command() -> str:
    """The command line that ran this bench, as a shell would re-run it."""
    return " ".join(shlex.quote(a) for a in [os.path.relpath(sys.executable), *sys.argv])


def load() -> str:
    """The 1-, 5- and 15-minute load averages now, with the core count (``load 0.4/0.5/0.3 on 2 cores``)."""
    one, five, fifteen = os.getloadavg()
    return f"load {one:.1f}/{five:.1f}/{fifteen:.1f} on {os.cpu_count()} cores"


def header() -> str:
    """One line naming the command, the time (UTC) and the load when the bench started."""
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    return f"command: {command()}\nstarted {stamp}, {load()}"
