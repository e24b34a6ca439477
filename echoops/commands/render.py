"""Output helpers shared by every command: the options every command has, rich for people
(tables, panels), and what `output` does without Typer (JSON, lines, errors on stderr)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import typer

from echoops.commands.output import STATE_STYLE, emit_json, error, input_errors, note, usd, when

__all__ = [
    "JSON_OPT",
    "NOW_OPT",
    "STATE_STYLE",
    "Col",
    "console",
    "emit_json",
    "err_console",
    "error",
    "input_errors",
    "note",
    "panel",
    "plain_table",
    "reading",
    "state_text",
    "table",
    "usd",
    "when",
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


# ---- people's output: panels and tables that fit the terminal ---------------------------------
#
# Every status and summary command prints a panel (a titled box around its headline lines, the
# border in the state's colour) and/or a table through these two, so they look alike and fit
# 80 columns: nothing is ever cut with an ellipsis, long text wraps (rich reads the width from
# the terminal, or COLUMNS; 80 when piped).

MIN_WIDE = 24  # the narrowest the wrapping column may get before the rows turn into blocks


@dataclass(frozen=True)
class Col:
    """A table column. The `wide` one (a message, a reason) wraps in the room the others leave;
    every other column is as wide as its longest line, so numbers, ids and timestamps stay whole."""

    name: str
    justify: str = "left"
    wide: bool = False


def panel(title: str, lines: list[str], *, state: str | None = None, out: Any = None) -> None:
    """Print `lines` (rich markup; escape user text) in a box titled `title`, the border in the
    colour of `state`; a line longer than the box wraps inside it."""
    # lazy: rich costs ~15 ms; only human output needs it
    from rich import box
    from rich.markup import escape
    from rich.panel import Panel
    from rich.text import Text

    body = Text("\n").join(Text.from_markup(line) for line in lines)
    border = STATE_STYLE.get(state, "white") if state else "blue"
    (out or console()).print(
        Panel(body, title=f"[bold]{escape(title)}[/]", title_align="left", border_style=border, box=box.ROUNDED),
        highlight=False,
    )


def table(cols: list[Col], rows: list[list[str]], *, title: str | None = None, out: Any = None) -> None:
    """Print `rows` (cells in rich markup; "\\n" stacks lines in a cell) under `cols`, fitted to
    the terminal: the fixed columns as wide as their longest line, the wide one wrapping in the
    rest. When that would leave the wide column under MIN_WIDE (or the fixed ones alone do not
    fit), each row is printed as a block of `name  value` lines instead, like psql's expanded
    display, so nothing is ever cut."""
    # lazy: rich costs ~15 ms; only human output needs it
    from rich import box
    from rich.markup import escape
    from rich.table import Table
    from rich.text import Text

    out = out or console()
    cells = [[Text.from_markup(cell) for cell in row] for row in rows]
    widths = [
        max([len(col.name)] + [max(line.cell_len for line in row[i].split("\n")) for row in cells])
        for i, col in enumerate(cols)
    ]
    gaps = 3 * (len(cols) - 1)  # a space of padding either side of a one-space rule
    fixed = sum(w for w, col in zip(widths, cols, strict=True) if not col.wide) + gaps
    wide = [i for i, col in enumerate(cols) if col.wide]
    room = out.width - fixed
    fits = room >= min(MIN_WIDE, widths[wide[0]]) if wide else room >= 0
    if title:
        out.print(f"[bold]{escape(title)}[/]", highlight=False)
    if not fits:
        _blocks(cols, cells, out)
        return
    grid = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=(0, 1), header_style="bold")
    for i, col in enumerate(cols):
        if col.wide:
            grid.add_column(col.name, justify=col.justify, width=min(room, widths[i]), overflow="fold")
        else:
            grid.add_column(col.name, justify=col.justify, width=widths[i], no_wrap=True)
    for row in cells:
        grid.add_row(*row)
    out.print(grid, highlight=False)


def _blocks(cols: list[Col], cells: list[list[Any]], out: Any) -> None:
    """Each row as `name  value` lines (values wrap under themselves), a rule between rows."""
    # lazy: rich costs ~15 ms; only human output needs it
    from rich.table import Table

    label = max(len(col.name) for col in cols)
    for n, row in enumerate(cells):
        if n:
            out.print("─" * min(out.width, 40), style="dim", highlight=False)
        grid = Table.grid(padding=(0, 2))
        grid.add_column(width=label, no_wrap=True, style="bold")
        grid.add_column(overflow="fold")
        for col, cell in zip(cols, row, strict=True):
            grid.add_row(col.name, cell)
        out.print(grid, highlight=False)


def plain_table(cols: list[Col], rows: list[list[str]], *, title: str | None = None, width: int | None = None) -> str:
    """`rows` as plain text fitted to `width` (default: the terminal's, COLUMNS, or 80), without
    rich: for outputs that can run to thousands of rows, or that must start fast (`config`).

    Fixed columns are as wide as their longest cell; the wide one wraps in the room left, its
    continuation lines under its start (the wide column must be the last). When that room is
    under MIN_WIDE, the wide text moves under its row instead, indented, wrapped to the full
    width; when even the fixed columns do not fit, each row's cells are written one after the
    other (wrapped), its wide text under them. Nothing is ever cut."""
    import shutil  # lazy: only the plain tables need the terminal size
    import textwrap

    width = width or shutil.get_terminal_size((80, 24)).columns
    widths = [max([len(col.name)] + [len(row[i]) for row in rows]) for i, col in enumerate(cols)]
    wide = next((i for i, col in enumerate(cols) if col.wide), None)
    fixed = [i for i in range(len(cols)) if i != wide]
    start = sum(widths[i] + 2 for i in fixed)  # where the wide column starts (it comes last)
    room = width - start
    under = wide is not None and room < min(MIN_WIDE, widths[wide])
    if start - 2 > width:  # the fixed columns alone are too wide: no columns at all
        out = [title] if title else []
        out += textwrap.wrap("  ".join(cols[i].name for i in fixed), width, subsequent_indent="    ")
        out += [] if wide is None else ["    " + cols[wide].name]
        out.append("-" * min(width, 40))
        for row in rows:
            head = "  ".join(row[i] for i in fixed if row[i])
            out += textwrap.wrap(head, width, subsequent_indent="    ", break_on_hyphens=False)
            if wide is not None and row[wide]:
                out += textwrap.wrap(row[wide], width, initial_indent="    ", subsequent_indent="    ")
        return "\n".join(out) + "\n"

    def cells(values: list[str]) -> str:
        return "  ".join(
            values[i].rjust(widths[i]) if cols[i].justify == "right" else values[i].ljust(widths[i]) for i in fixed
        )

    lines = [title] if title else []
    names = [col.name for col in cols]
    rule = ["-" * (min(widths[i], room) if i == wide else widths[i]) for i in range(len(cols))]
    for head in (names, rule):
        lines.append((cells(head) + ("" if wide is None or under else "  " + head[wide])).rstrip())
    for row in rows:
        text = "" if wide is None else row[wide]
        if wide is None or not text:
            lines.append(cells(row).rstrip())
        elif under:
            lines.append(cells(row).rstrip())
            lines += textwrap.wrap(text, width, initial_indent="    ", subsequent_indent="    ", break_on_hyphens=False)
        else:
            parts = textwrap.wrap(text, room, break_on_hyphens=False) or [""]
            lines.append(cells(row) + "  " + parts[0])
            lines += [" " * start + part for part in parts[1:]]
    return "\n".join(lines) + "\n"
