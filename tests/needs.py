"""What a test needs from the machine: skipped with the reason outside CI, a failure in CI.

`.ci/run` installs every package and program the tests use (the test extra, Debian's servers),
so in CI (`CI=true`) a missing one is a broken CI, never a silent skip.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType
from typing import NoReturn

import pytest

PIP_TEST = "pip install -e '.[test]'"


def need(reason: str, *, module_level: bool = False) -> NoReturn:
    """Skip with `reason` (the whole module with `module_level`), or fail in CI."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}: CI must install it")
    pytest.skip(reason, allow_module_level=module_level)


def module(name: str, install: str = PIP_TEST, *, module_level: bool = False) -> ModuleType:
    """`import name`, or `need` it (named with how to install it)."""
    try:
        return importlib.import_module(name)
    except ImportError:
        need(f"{name.split('.')[0]} is not installed ({install})", module_level=module_level)
