"""Keeping what the detector never uses out of its memory.

Its memory budget is 300 MB at 10,000 hosts and imports take most of that (pandas,
scikit-learn and SciPy), so the detector's entry points hide, before anything imports them:

* **pyarrow** (~34 MB): pandas imports it whenever it is installed (MLflow and Evidently
  install it). The detector never calls it: every frame it builds is numpy-backed, and the
  champion contract (:mod:`vigil.model`) is numpy too.
* **SQLAlchemy** (~17 MB): ``river.anomaly`` imports River's SQL stream reader, which imports
  it if it is there (MLflow and Airflow install it); the detector reads InfluxDB, not SQL.

MLflow itself stays out by design (``detector.registry``).

And it fixes glibc's mmap threshold (:func:`return_large_blocks`): each iteration allocates
and frees arrays of a few MB, and glibc's default moves the threshold up to the largest block
freed, after which such blocks come from the heap and stay in the process when freed.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
from importlib.abc import Loader, MetaPathFinder
from importlib.machinery import ModuleSpec
from types import ModuleType


class _KeepOut(MetaPathFinder, Loader):
    """Makes importing one package (and its submodules) fail as if it were not installed.

    Why a finder and not ``sys.modules["pyarrow"] = None``: scikit-learn looks pyarrow up in
    ``sys.modules`` and uses whatever it finds there (``None.Table`` fails every transform).
    Why it fails the import in its loader and not in ``find_spec``: a library that only probes
    with ``importlib.util.find_spec`` (MLflow does, for SQLAlchemy) must get an answer, not an
    exception; it is told the package exists, and only importing it fails.
    """

    def __init__(self, package: str) -> None:
        self.package = package

    def find_spec(
        self, fullname: str, path: object = None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if fullname == self.package or fullname.startswith(self.package + "."):
            return ModuleSpec(fullname, self)
        return None

    def create_module(self, spec: ModuleSpec) -> ModuleType | None:
        raise ModuleNotFoundError(
            f"{self.package} is kept out of the detector (detector.lean)", name=spec.name
        )

    def exec_module(self, module: ModuleType) -> None:  # never reached: create_module raises
        raise ModuleNotFoundError(f"{self.package} is kept out of the detector (detector.lean)")


#: What the detector process never imports.
KEPT_OUT = ("pyarrow", "sqlalchemy")


def keep_unused_out() -> bool:
    """Make importing :data:`KEPT_OUT` fail in this process (pandas and River run without them).

    Returns False, changing nothing, when one of them is already imported (e.g. in a test
    process) or this already ran.
    """
    if any(p in sys.modules for p in KEPT_OUT) or any(isinstance(f, _KeepOut) for f in sys.meta_path):
        return False
    for package in KEPT_OUT:
        sys.meta_path.insert(0, _KeepOut(package))
    return True


#: glibc's ``mallopt`` parameter number of ``M_MMAP_THRESHOLD`` (malloc.h).
_M_MMAP_THRESHOLD = -3
#: Blocks from this size up are mmapped and go back to the system when freed (glibc's initial value).
MMAP_THRESHOLD_BYTES = 128 * 1024


def return_large_blocks() -> bool:
    """Pin glibc's mmap threshold at :data:`MMAP_THRESHOLD_BYTES`, so large blocks are always
    mmapped, and unmapped when freed.

    Why: glibc raises the threshold to the size of each mmapped block freed (up to 32 MB), and
    from then on blocks of that size come from the heap, which seldom shrinks: peak RSS at
    10,000 hosts was 299-300 MB with the default, 283 MB pinned (``bench/detector_bench.py``),
    at no measurable cost in throughput. Setting the threshold explicitly turns the adjustment
    off (``man mallopt``). Returns False where there is no glibc (nothing changes).
    """
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):  # not glibc
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))


def make_process_lean() -> None:
    """Everything above, for an entry point of the detector process, before pandas is imported."""
    keep_unused_out()
    return_large_blocks()
