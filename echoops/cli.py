"""Root `echoops` command: mounts one sub-app per command module.

Exit codes: 0 ok, 1 a domain failure you can act on (gate closed, cap hit, delivery
failed), 2 bad usage or configuration.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from typer.core import TyperGroup

from echoops.commands import config_cmd, costs, demo, page, portal, scale, scheduler, serve, slo
from echoops.commands.render import error, note
from echoops.core import config
from echoops.core.errors import EchoopsError

# These show the log dir themselves (a banner, the settings table).
_SAY_OWN_LOG_DIR = {"up", "serve", "config"}


class EchoopsGroup(TyperGroup):
    """Reads the folder's echoops.env, says which log dir a command reads when it is not ./logs,
    and maps every EchoopsError to `Error: …` on stderr and its exit code, in one place."""

    def parse_args(self, ctx, args):
        ctx.meta["echoops.argv"] = list(args)  # the command line after `echoops`, for invoke
        return super().parse_args(ctx, args)

    def invoke(self, ctx):
        try:
            config.use_env_file()  # ./echoops.env, under the environment (core/envfile.py)
            _note_log_dir(ctx.meta.get("echoops.argv", []))
            return super().invoke(ctx)
        except EchoopsError as exc:
            error(exc.detail)
            raise typer.Exit(exc.exit_code) from None
        except OSError as exc:  # sqlite3.Error is not imported here (start-up time): see below
            _store_failure(exc)
            raise
        except Exception as exc:
            if type(exc).__module__.split(".")[0] in ("sqlite3", "psycopg", "psycopg_pool"):
                _store_failure(exc)
            raise


def _note_log_dir(args: list[str]) -> None:
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


def _store_failure(exc: Exception) -> None:
    """A full disk, a read-only or vanished store: `Error: the store is unavailable: ...`, exit 1."""
    from echoops.core import store  # lazy: only a failing command pays for the store module

    found = store.unavailable(exc)
    if found is not None:
        from echoops.commands.render import error  # lazy: rich, ~15 ms, only on this error path

        error(found.detail)
        raise typer.Exit(found.exit_code) from None


app = typer.Typer(
    cls=EchoopsGroup,
    name="echoops",
    help="SLOs, incident pager, customer portal, cost guardrails and autoscale for one app.\n\n"
    "Exit codes: 0 ok, 1 domain failure (gate closed, cap hit), 2 bad usage or config.\n\n"
    "Example: echoops up --demo",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

app.command("config")(config_cmd.config)
app.command("serve")(serve.serve)
app.command("up")(serve.up)
app.add_typer(scheduler.app, name="scheduler")
app.add_typer(demo.app, name="demo")
app.add_typer(slo.app, name="slo")
app.add_typer(page.app, name="page")
app.add_typer(portal.app, name="portal")
app.add_typer(costs.app, name="costs")
app.add_typer(scale.app, name="scale")


def main() -> None:
    app()
