"""`echoops config`: the effective settings, secrets masked; exit 2 when invalid."""

from __future__ import annotations

import sys

import typer

from echoops.commands.render import Col, emit_json, plain_table
from echoops.core import config as core_config
from echoops.core import native
from echoops.core.files import dumps


def config(json_out: bool = typer.Option(False, "--json", help="Print JSON for jq.")) -> None:
    """Show the effective settings (secrets masked) and where each comes from. Exits 2 on invalid config.

    Values come from the environment, else from ./echoops.env (what `echoops up --demo`
    writes), else the defaults; --json lists each one's source, and whether the ingest runs
    its compiled loops (`ingest_loops`: compiled | python).

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
                "ingest_loops": native.loops(),
            }
        )
        return
    # A plain table: rich's import and layout cost about 45 ms, a third of the whole start-up
    # budget (bench/foundation_startup.py), for a dump people mostly pipe to grep. The meaning
    # wraps beside the value, or moves under its row on a narrow terminal.
    rows = []
    for var in core_config.VARS:
        value = values[var.env]
        shown = "-" if value is None else (dumps(value).decode() if isinstance(value, (dict, list)) else str(value))
        rows.append([var.env, shown, var.unit, var.doc])
    cols = [Col("variable"), Col("value"), Col("unit"), Col("meaning", wide=True)]
    head = ""
    if env_file is not None:
        shown = f"./{env_file}" if not env_file.is_absolute() else str(env_file)
        head = f"settings file: {shown} (the environment wins over it)\n"
    loops = (
        "ingest loops: compiled (echoops.core.native)\n"
        if native.loops() == "compiled"
        else "ingest loops: python (the compiled twin is not built: reinstall with gcc and the Python headers)\n"
    )
    text = head + plain_table(cols, rows) + loops + "".join(f"warning: {warning}\n" for warning in s.warnings)
    sys.stdout.write(text)
