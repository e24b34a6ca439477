"""`echoops serve` (the shim on gunicorn) and `echoops up` (serve + scheduler)."""

from __future__ import annotations

import typer

from echoops.core import config, ports
from echoops.core.errors import ConfigError, NotConfigured, ValidationError

ACCESS_LOG_OPT = typer.Option(
    True,
    "--access-log/--no-access-log",
    help="One line per request on stdout (time, client, request line with token= values redacted, status, ms).",
)


def serve(
    host: str = typer.Option(None, help="Bind address (default ECHOOPS_HOST)."),
    port: int = typer.Option(None, min=1, max=65535, help="Port (default ECHOOPS_PORT)."),
    workers: int = typer.Option(None, min=1, max=64, help="gunicorn workers (default ECHOOPS_WORKERS)."),
    access_log: bool = ACCESS_LOG_OPT,
    demo: bool = typer.Option(False, "--demo", hidden=True),  # removed: see below
) -> None:
    """Serve the dashboard and /api on gunicorn. Refuses to start without DASHBOARD_KEY.

    Prints the URL and the log dir, then an access log line per request (--no-access-log
    turns it off). A DASHBOARD_KEY shorter than 16 characters, or a port that is in use, is
    refused too (exit 2). In a folder where `echoops up --demo` ran, it serves the demo.

    Example: DASHBOARD_KEY=$(openssl rand -hex 16) echoops serve --port 5000 --workers 2
    """
    if demo:
        # `serve --demo` used to start with no key and no data (every admin route 503); the
        # demo is `up --demo`, and its echoops.env makes a plain `serve` there serve the demo.
        raise ValidationError(
            "serve --demo is gone: run `echoops up --demo` (server, scheduler and live demo traffic), "
            "or `echoops serve` in a folder where `echoops up --demo` ran",
            field="demo",
        )
    s = config.settings()
    if not s.dashboard_key:
        raise NotConfigured("DASHBOARD_KEY is not set: set it (admin routes need it), or run `echoops up --demo`")
    weak = config.weak_dashboard_key(s.dashboard_key)
    if weak:
        raise ConfigError(f"{weak}: use a long random key, e.g. `openssl rand -hex 16`")
    host, port = host or s.host, port or s.port
    ports.ensure_free(host, port)  # PortInUse: exit 2 at once, naming the holder (gunicorn retries 5 s)
    s.log_dir.mkdir(parents=True, exist_ok=True)
    # lazy: bottle and the shim cost ~60 ms; only `serve` needs them
    import bottle

    from shim.app import POST_FORK, app
    from shim.server import gunicorn_options

    typer.echo(f"echoops serve: {ports.url(host, port)} (log dir {s.log_dir}; Ctrl-C stops)")
    bottle.run(
        app=app,
        server="gunicorn",
        host=host,
        port=port,
        quiet=True,
        **gunicorn_options(s, workers or s.workers, POST_FORK, access_log=access_log),
    )


def up(
    demo: bool = typer.Option(
        False, "--demo", help="The live demo: seeded log dir, demo traffic, generated key, ./echoops.env."
    ),
    host: str = typer.Option(None, help="Bind address (default ECHOOPS_HOST)."),
    port: int = typer.Option(None, min=1, max=65535, help="Port (default ECHOOPS_PORT)."),
    access_log: bool = ACCESS_LOG_OPT,
) -> None:
    """Run the whole thing: the server and the scheduler (and the demo traffic) as child processes.

    --demo writes ./echoops.env (the demo's log dir, port and generated secrets), so every
    echoops command later run in this folder reads the demo. Exits 2 before starting when the
    port is in use or another `up` runs on the same log dir; non-zero when a child dies;
    SIGINT/SIGTERM stop them all.
    Example: echoops up --demo --port 5050
    """
    from echoops.core.supervisor import run_up  # lazy: ~35 ms that only `up` needs

    def say(text: str) -> None:
        typer.echo(text)

    def warn(text: str) -> None:
        typer.echo(text, err=True)

    raise typer.Exit(run_up(demo=demo, host=host, port=port, access_log=access_log, out=say, err=warn))
