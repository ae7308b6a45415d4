"""Keeping what the detector never uses out of its memory.

pandas imports pyarrow whenever it is installed (MLflow and Evidently install it), which costs
a process ~34 MB of RSS. The detector never calls it: every frame it builds is numpy-backed,
and the champion contract (:mod:`vigil.model`) is numpy too. Its memory budget is 300 MB at
10,000 hosts and imports take most of that (pandas, scikit-learn and SciPy, MLflow), so the
detector's entry points hide pyarrow before pandas is first imported.
"""

from __future__ import annotations

import sys
from importlib.abc import MetaPathFinder
from importlib.machinery import ModuleSpec
from types import ModuleType


class _KeepOut(MetaPathFinder):
    """Answers "not installed" for one package and its submodules.

    Why a finder and not ``sys.modules["pyarrow"] = None``: scikit-learn looks pyarrow up in
    ``sys.modules`` and uses whatever it finds there (``None.Table`` fails every transform).
    """

    def __init__(self, package: str) -> None:
        self.package = package

    def find_spec(
        self, fullname: str, path: object = None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if fullname == self.package or fullname.startswith(self.package + "."):
            raise ModuleNotFoundError(
                f"{self.package} is kept out of the detector (detector.lean)", name=fullname
            )
        return None


def keep_pyarrow_out() -> bool:
    """Make ``import pyarrow`` fail in this process (pandas then runs without it).

    Returns False, changing nothing, when pyarrow is already imported (e.g. in a test process).
    """
    if "pyarrow" in sys.modules or any(isinstance(f, _KeepOut) for f in sys.meta_path):
        return False
    sys.meta_path.insert(0, _KeepOut("pyarrow"))
    return True
