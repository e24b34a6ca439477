"""`echoops config`: the effective settings, secrets masked; exit 2 when invalid."""

from __future__ import annotations

import sys

import typer

from echoops.commands.render import emit_json
from echoops.core import config as core_config
from echoops.core.files import dumps


def config(json_out: bool = typer.Option(False, "--json", help="Print JSON for jq.")) -> None:
    """Show the effective settings (secrets masked) and where each comes from. Exits 2 on invalid config.

    Values come from the environment, else from ./echoops.env (what `echoops up --demo`
    writes), else the defaults; --json lists each one's source.

    Example: ECHOOPS_PORT=8080 echoops config --json | jq .ECHOOPS_PORT
    """
    s = core_config.settings()  # raises ConfigError -> exit 2
    values = core_config.describe(s)
    env_file = core_config.env_file()
    if json_out:
        sources = {var.env: core_config.source(var.env) for var in core_config.VARS}
        emit_json(
            {
                "settings": values,
                "warnings": list(s.warnings),
                "env_file": None if env_file is None else str(env_file),
                "sources": sources,  # "env" | "file" (echoops.env) | "default"
            }
        )
        return
    # A plain aligned table: rich's import and layout cost about 45 ms, a third of the whole
    # start-up budget (bench/foundation_startup.py), for a dump people mostly pipe to grep.
    rows = [("variable", "value", "unit", "meaning")]
    for var in core_config.VARS:
        value = values[var.env]
        shown = "-" if value is None else (dumps(value).decode() if isinstance(value, (dict, list)) else str(value))
        rows.append((var.env, shown, var.unit, var.doc))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row[:3], widths, strict=True)) + "  " + row[3]
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * width for width in widths) + "  " + "-" * len(rows[0][3]))
    if env_file is not None:
        shown = f"./{env_file}" if not env_file.is_absolute() else str(env_file)
        lines.insert(0, f"settings file: {shown} (the environment wins over it)")
    lines += [f"warning: {warning}" for warning in s.warnings]
    sys.stdout.write("\n".join(lines) + "\n")
