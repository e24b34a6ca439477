"""`echoops demo`: synthetic inputs so every dashboard card shows something real."""

from __future__ import annotations

import typer

from echoops.commands import render
from echoops.core import clock

app = typer.Typer(
    help="Demo data: synthetic history (seed) and a live demo app (traffic) in the log dir.\n\n"
    "Example: echoops demo seed",
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


@app.command("traffic")
def traffic(
    force: bool = typer.Option(False, "--force", help="Write into a log dir that `demo seed` did not write."),
    interval: float = typer.Option(1.0, "--interval", min=0.1, max=60, help="Seconds between writes."),
) -> None:
    """Play the demo app in real time: requests, AI calls, queue samples, app log lines, purchases.

    Follows a 15-minute story that loops (normal, error burst, sustained burn, recovery; AI
    spend climbing to a throttle; a backlog building and draining) until SIGINT/SIGTERM.
    `echoops up --demo` runs it next to the server and the scheduler. It refuses a log dir
    without demo data (no demo.json from `demo seed`) unless --force: it appends to the inputs.
    Exit codes: 0 stopped by a signal, 2 not a demo log dir.

    Example: ECHOOPS_LOG_DIR=./logs/demo echoops demo traffic
    """
    # lazy: the demo package pulls in every control (15-45 ms each); only these commands need it
    import signal
    import threading

    from echoops.core import config, demo
    from echoops.core.errors import ValidationError

    s = config.settings()
    if not force and not demo.is_demo(s=s):
        raise ValidationError(
            f"{s.log_dir} holds no demo data (no {demo.MARKER}): the demo traffic appends to the app's inputs; "
            "run `echoops demo seed` first, or pass --force",
            field="force",
        )
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda _n, _f: stop.set())
    demo.run_traffic(stop=stop, s=s, interval_s=interval)
