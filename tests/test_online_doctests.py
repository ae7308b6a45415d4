"""The examples in vigil.online's docstrings are the API's documentation: keep them true."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "vigil.online",
    "vigil.online.config",
    "vigil.online.scaler",
    "vigil.online.threshold",
    "vigil.online.detector",
    "pipelines.nab.data",
    "pipelines.nab.scorer",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
