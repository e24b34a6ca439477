"""Output helpers shared by every command: JSON for scripts, rich for people, errors on stderr."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import typer

from echoops.core.files import dumps

# Options every feature command shares (one definition, one help text).
JSON_OPT = typer.Option(False, "--json", help="Print JSON for jq (the endpoint's body).")
NOW_OPT = typer.Option(None, "--now", help="Pretend the time is this (ISO-8601 or epoch s).")

STATE_STYLE = {
    "green": "green",
    "yellow": "yellow",
    "red": "bold red",
    "ok": "green",
    "warn": "yellow",
    "throttle": "bold red",
    "failed": "bold red",
    "unconfirmed": "bold red",
    "pending": "yellow",
    "skipped": "dim",
    "cancelled": "dim",
    "open": "bold red",
    "acked": "yellow",
    "silenced": "dim",
    "resolved": "green",
    "active": "yellow",
    "expired": "dim",
    "removed": "dim",
}


def emit_json(obj: Any) -> None:
    """Print `obj` as indented JSON on stdout (exactly what the matching endpoint returns)."""
    sys.stdout.write(dumps(obj, indent=True).decode() + "\n")
    sys.stdout.flush()


def console():
    # lazy: rich costs ~15 ms; only human output needs it
    from rich.console import Console

    return Console()


def err_console():
    # lazy: rich costs ~15 ms; only human output needs it
    from rich.console import Console

    return Console(stderr=True)


def error(message: str) -> None:
    """`Error: …` on stderr as one line (no markup interpretation of user text, no wrapping)."""
    # lazy: rich costs ~15 ms; only human output needs it
    from rich.markup import escape

    # soft_wrap: rich would otherwise break long messages at the terminal width (80 columns
    # when piped), splitting `VAR='value'` across lines for anyone grepping stderr.
    err_console().print(f"[bold red]Error:[/] {escape(message)}", highlight=False, soft_wrap=True)


def input_errors(errors: list[dict[str, str]]) -> None:
    """One `Warning: <source>: <error> (<detail>); skipped` line on stderr per input a tick could not read."""
    from rich.markup import escape  # lazy: rich, ~15 ms, only when an input could not be read

    for e in errors:
        err_console().print(
            f"[yellow]Warning:[/] {escape(e['source'])}: {e['error']} ({escape(e['detail'])}); skipped",
            highlight=False,
            soft_wrap=True,
        )


def note(text: str) -> None:
    """One `echoops: …` line on stderr for people (stdout stays the command's output, --json clean)."""
    sys.stderr.write(f"echoops: {text}\n")
    sys.stderr.flush()


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
