"""`echoops demo`: synthetic inputs so every dashboard card shows something real."""

from __future__ import annotations

import typer

from echoops.commands import render
from echoops.core import clock

app = typer.Typer(
    help="Demo data: write realistic synthetic inputs into the log dir.\n\nExample: echoops demo seed",
    no_args_is_help=True,
)


@app.command("seed")
def seed(
    now: str = typer.Option(None, "--now", help="End the data at this time (ISO-8601 or epoch s); default now."),
    force: bool = typer.Option(False, "--force", help="Replace input files that already exist."),
    json_out: bool = typer.Option(False, "--json", help="Print the counts as JSON."),
) -> None:
    """Write three days of requests, today's AI usage, queue samples and app logs into ECHOOPS_LOG_DIR.

    Refuses to overwrite existing inputs unless --force. --force replaces the input files
    but keeps what earlier ticks stored in echoops.db; to start over, use a fresh log dir.
    Exit codes: 0 written, 2 inputs already exist or bad --now.

    Example: ECHOOPS_LOG_DIR=./logs/demo echoops demo seed --now 2026-11-27T12:00:00Z
    """
    from echoops.core import demo  # lazy: 15-45 ms a package, off --help and other commands

    result = demo.seed(now=clock.parse_cli_time(now), force=force)
    if json_out:
        render.emit_json(result)
        return
    out = render.console()
    out.print(f"Seeded demo data in {result['log_dir']} (ending {result['now']}):", highlight=False)
    for name, count in result["counts"].items():
        out.print(f"  {name:<10} {count:>8} lines", highlight=False)
