"""Output every command shares, without importing Typer or rich: JSON for scripts, lines for
people (coloured through rich only on a terminal), errors and warnings on stderr.

A human line is built from parts, each a plain string or `(text, style)`: on a terminal rich
prints it with the styles; anywhere else (the scheduler's log, a pipe, CliRunner) it is written
as the plain text, one line, never wrapped, never parsed for markup (user text is safe in it).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from echoops.core import clock, config
from echoops.core.errors import EchoopsError
from echoops.core.files import dumps

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

Part = str | tuple[str, str]


def emit_json(obj: Any) -> None:
    """Print `obj` as indented JSON on stdout (exactly what the matching endpoint returns)."""
    sys.stdout.write(dumps(obj, indent=True).decode() + "\n")
    sys.stdout.flush()


def say(*parts: Part, err: bool = False) -> None:
    """One line of `parts` on stdout (stderr with `err`): styled on a terminal, plain elsewhere."""
    stream: TextIO = sys.stderr if err else sys.stdout
    if stream.isatty():
        # lazy: rich costs ~40 ms; only a person at a terminal sees the colours
        from rich.console import Console
        from rich.text import Text

        Console(stderr=err).print(Text.assemble(*parts), soft_wrap=True, highlight=False)
        return
    stream.write("".join(p if isinstance(p, str) else p[0] for p in parts) + "\n")
    stream.flush()


def note(text: str) -> None:
    """One `echoops: …` line on stderr for people (stdout stays the command's output, --json clean)."""
    sys.stderr.write(f"echoops: {text}\n")
    sys.stderr.flush()


# These show the log dir themselves (a banner, the settings table).
_SAY_OWN_LOG_DIR = {"up", "serve", "config"}


def note_log_dir(args: Sequence[str]) -> None:
    """`echoops: reading logs/demo (ECHOOPS_LOG_DIR from ./echoops.env)` on stderr when the log
    dir is not ./logs: always when echoops.env chose it (a folder setting is easy to forget),
    and to a person at a terminal when the environment did (a script or a scheduler job that
    sets ECHOOPS_LOG_DIR knows where it points)."""
    if not args or args[0] in _SAY_OWN_LOG_DIR or "--help" in args:
        return
    try:
        s = config.settings()
    except EchoopsError:
        return  # the command reports the bad configuration itself
    if s.log_dir.absolute() == Path("logs").absolute():
        return
    origin = config.source("ECHOOPS_LOG_DIR")
    if origin == "file":
        path = config.env_file()
        shown = f"./{path}" if path is not None and not path.is_absolute() else str(path)
        note(f"reading {s.log_dir} (ECHOOPS_LOG_DIR from {shown})")
    elif sys.stderr.isatty():
        note(f"reading {s.log_dir} (ECHOOPS_LOG_DIR)")


def state(word: str) -> tuple[str, str]:
    """A state word, upper-case, with its colour (the word itself is always shown)."""
    return (word.upper(), STATE_STYLE.get(word, "white"))


def error(message: str) -> None:
    """`Error: …` on stderr as one line."""
    say(("Error:", "bold red"), " " + message, err=True)


def input_errors(errors: list[dict[str, str]]) -> None:
    """One `Warning: <source>: <error> (<detail>); skipped` line on stderr per input a tick could not read."""
    for e in errors:
        say(("Warning:", "yellow"), f" {e['source']}: {e['error']} ({e['detail']}); skipped", err=True)


def when(value: object, *, seconds: bool = False, zone: bool = False) -> str:
    """A timestamp (ISO-8601 or epoch s) for people: `2026-11-30 06:51` in UTC (`:42` with
    `seconds`, ` UTC` with `zone`); `-` when there is none or it is unreadable."""
    ts = clock.parse_ts(value) if value not in (None, "") else None
    if ts is None:
        return "-"
    text = time.strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M", time.gmtime(ts))
    return text + (" UTC" if zone else "")


def usd(value: float | None) -> str:
    """Dollars for people: `$1,234.57`; a non-zero amount under a cent keeps 4 decimals (`$0.0042`)."""
    if value is None:
        return "-"
    sign = "-" if value < 0 else ""
    amount = abs(value)
    return f"{sign}${amount:.4f}" if 0 < amount < 0.01 else f"{sign}${amount:,.2f}"


def fmt(value: Any, unit: str = "") -> str:
    """A number for a human line (`-` when there is none)."""
    return "-" if value is None else f"{value:g}{unit}"
