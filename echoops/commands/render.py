"""Output helpers shared by every command: the options every command has, rich for people
(tables, panels), and what `output` does without Typer (JSON, lines, errors on stderr)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import typer

from echoops.commands.output import STATE_STYLE, emit_json, error, input_errors, note

__all__ = [
    "JSON_OPT",
    "NOW_OPT",
    "STATE_STYLE",
    "console",
    "emit_json",
    "err_console",
    "error",
    "input_errors",
    "note",
    "reading",
]

# Options every feature command shares (one definition, one help text).
JSON_OPT = typer.Option(False, "--json", help="Print JSON for jq (the endpoint's body).")
NOW_OPT = typer.Option(None, "--now", help="Pretend the time is this (ISO-8601 or epoch s).")


def console():
    # lazy: rich costs ~15 ms; only human output needs it
    from rich.console import Console

    return Console()


def err_console():
    # lazy: rich costs ~15 ms; only human output needs it
    from rich.console import Console

    return Console(stderr=True)


@contextmanager
def reading() -> Iterator[None]:
    """Around a read-only command's core call: when the log dir holds no echoops data, answer
    as an empty store would, from a scratch dir removed afterwards, and say so on stderr.

    Reads open `echoops.db` (and the pager writes its summary, the portal its audit line); in
    a folder that is not an echoops log dir that would leave files behind for a question.
    """
    # lazy: the store and tempfile cost start-up time; only the read commands need them
    import tempfile

    from echoops.core import config, store

    s = config.settings()
    if store.holds_data(s):
        yield
        return
    note(
        f"{s.log_dir} holds no echoops data yet (it is empty or missing): this is an empty store's "
        "answer and nothing was written there; run `echoops up --demo`, or set ECHOOPS_LOG_DIR to your log dir"
    )
    before = os.environ.get("ECHOOPS_LOG_DIR")
    with tempfile.TemporaryDirectory(prefix="echoops-empty-") as scratch:
        os.environ["ECHOOPS_LOG_DIR"] = scratch  # config re-reads on change: every core call sees it
        try:
            yield
        finally:
            store.close_all()  # the scratch echoops.db is deleted next
            if before is None:
                del os.environ["ECHOOPS_LOG_DIR"]
            else:
                os.environ["ECHOOPS_LOG_DIR"] = before


def state_text(state: str) -> str:
    """A state word with its colour as rich markup (the word itself is always shown)."""
    return f"[{STATE_STYLE.get(state, 'white')}]{state.upper()}[/]"
