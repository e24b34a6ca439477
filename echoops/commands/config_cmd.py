"""`echoops config`: the effective settings, secrets masked; exit 2 when invalid."""

from __future__ import annotations

import typer

from echoops.commands.render import console, emit_json
from echoops.core import config as core_config


def config(json_out: bool = typer.Option(False, "--json", help="Print JSON for jq.")) -> None:
    """Show the effective settings (secrets masked). Exits 2 on invalid config.

    Example: ECHOOPS_PORT=8080 echoops config --json | jq .ECHOOPS_PORT
    """
    s = core_config.settings()  # raises ConfigError -> exit 2
    values = core_config.describe(s)
    if json_out:
        emit_json({"settings": values, "warnings": list(s.warnings)})
        return
    from rich.table import Table

    table = Table(title="echoops settings", show_lines=False)
    for col in ("variable", "value", "unit", "meaning"):
        table.add_column(col)
    for var in core_config.VARS:
        value = values[var.env]
        table.add_row(var.env, "-" if value is None else str(value), var.unit, var.doc)
    out = console()
    out.print(table)
    for warning in s.warnings:
        out.print(f"[yellow]warning:[/] {warning}")
