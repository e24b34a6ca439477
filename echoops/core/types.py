"""Result types shared by every control (no `from __future__ import annotations` here:
TypedDict needs to see `NotRequired` at run time)."""

from typing import TypedDict


class UnreadableInput(TypedDict):
    """An input file a tick could not read (permission, not a regular file, a dangling symlink):
    named, skipped, and every other input read (`ndjson.InputError.as_dict()`)."""

    source: str
    error: str
    detail: str
