"""Output helpers shared by every command: the options every command has, rich for people
(tables, panels), and what `output` does without Typer (JSON, lines, errors on stderr)."""

from __future__ import annotations

import typer

from echoops.commands.output import STATE_STYLE, emit_json, error, input_errors

__all__ = ["JSON_OPT", "NOW_OPT", "STATE_STYLE", "console", "emit_json", "err_console", "error", "input_errors"]

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


def state_text(state: str) -> str:
    """A state word with its colour as rich markup (the word itself is always shown)."""
    return f"[{STATE_STYLE.get(state, 'white')}]{state.upper()}[/]"
