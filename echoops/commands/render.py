"""Output helpers shared by every command: JSON for scripts, rich for people, errors on stderr."""

from __future__ import annotations

import sys
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


def state_text(state: str) -> str:
    """A state word with its colour as rich markup (the word itself is always shown)."""
    return f"[{STATE_STYLE.get(state, 'white')}]{state.upper()}[/]"
