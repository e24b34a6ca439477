"""Compiled twins of the ingest hot loops (optional).

`_ingest.c` is built by the package's build hook (`hatch_build.py`) when a C compiler and the
Python headers are there, as `pip install` does; without them echoops installs and runs the same,
on the Python loops. Each C function is a line-for-line twin of a Python function that stays the
definition (tests/test_native.py holds each pair equal on generated batches), and hands every line
it is not sure of to the careful path.

`fold_requests` and `fold_usage` are None when the extension is not built; `loops()` says
which run (`echoops config` prints it).
"""

from __future__ import annotations

try:
    from echoops.core.native import _ingest
except ImportError:  # not built: the Python loops
    _ingest = None  # type: ignore[assignment]

fold_requests = None if _ingest is None else _ingest.fold_requests
fold_usage = None if _ingest is None else _ingest.fold_usage


def loops() -> str:
    """Which ingest loops this install runs: "compiled" or "python"."""
    return "compiled" if _ingest is not None else "python"
