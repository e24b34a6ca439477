"""`echoops serve` (the shim on gunicorn) and `echoops up` (serve + scheduler)."""

from __future__ import annotations

import typer

from echoops.core import config
from echoops.core.errors import ConfigError, NotConfigured


def serve(
    host: str = typer.Option(None, help="Bind address (default ECHOOPS_HOST)."),
    port: int = typer.Option(None, min=1, max=65535, help="Port (default ECHOOPS_PORT)."),
    workers: int = typer.Option(None, min=1, max=64, help="gunicorn workers (default ECHOOPS_WORKERS)."),
    demo: bool = typer.Option(False, "--demo", help="Start even without DASHBOARD_KEY (admin routes answer 503)."),
) -> None:
    """Serve the dashboard and /api on gunicorn. Refuses to start without DASHBOARD_KEY unless --demo.

    A DASHBOARD_KEY shorter than 16 characters is refused too (exit 2).

    Example: DASHBOARD_KEY=$(openssl rand -hex 16) echoops serve --port 5000 --workers 2
    """
    s = config.settings()
    if not s.dashboard_key and not demo:
        raise NotConfigured("DASHBOARD_KEY is not set: set it (admin routes need it) or pass --demo")
    weak = config.weak_dashboard_key(s.dashboard_key)
    if weak:
        raise ConfigError(f"{weak}: use a long random key, e.g. `openssl rand -hex 16`")
    s.log_dir.mkdir(parents=True, exist_ok=True)
    # lazy: bottle and the shim cost ~60 ms; only `serve` needs them
    import bottle

    from shim.app import POST_FORK, app
    from shim.server import gunicorn_options

    bottle.run(
        app=app,
        server="gunicorn",
        host=host or s.host,
        port=port or s.port,
        quiet=True,
        **gunicorn_options(s, workers or s.workers, POST_FORK),
    )


def up(
    demo: bool = typer.Option(False, "--demo", help="Demo log dir, demo data, generated key."),
    host: str = typer.Option(None, help="Bind address (default ECHOOPS_HOST)."),
    port: int = typer.Option(None, min=1, max=65535, help="Port (default ECHOOPS_PORT)."),
) -> None:
    """Run the whole thing: the server and the scheduler as child processes.

    Exits non-zero when either child dies; SIGINT/SIGTERM stop both.
    Example: echoops up --demo
    """
    from echoops.core.supervisor import run_up  # lazy: ~35 ms that only `up` needs

    def say(text: str) -> None:
        typer.echo(text)

    def warn(text: str) -> None:
        typer.echo(text, err=True)

    raise typer.Exit(run_up(demo=demo, host=host, port=port, out=say, err=warn))
