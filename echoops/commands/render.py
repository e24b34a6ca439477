"""Output helpers shared by every command: JSON for scripts, rich for people, errors on stderr."""

from __future__ import annotations

import sys
from typing import Any

from echoops.core.files import dumps

STATE_STYLE = {
    "green": "green",
    "yellow": "yellow",
    "red": "bold red",
    "ok": "green",
    "warn": "yellow",
    "throttle": "bold red",
    "failed": "bold red",
    "pending": "yellow",
    "skipped": "dim",
}


def emit_json(obj: Any) -> None:
    """Print `obj` as indented JSON on stdout (exactly what the matching endpoint returns)."""
    sys.stdout.write(dumps(obj, indent=True).decode() + "\n")
    sys.stdout.flush()


def console():
    from rich.console import Console

    return Console()


def err_console():
    from rich.console import Console

    return Console(stderr=True)


def error(message: str) -> None:
    """`Error: …` on stderr (no markup interpretation of user text)."""
    from rich.markup import escape

    err_console().print(f"[bold red]Error:[/] {escape(message)}", highlight=False)


def state_text(state: str) -> str:
    """A state word with its colour as rich markup (the word itself is always shown)."""
    return f"[{STATE_STYLE.get(state, 'white')}]{state.upper()}[/]"
