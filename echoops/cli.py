"""Root `echoops` command: mounts one sub-app per command module.

Exit codes: 0 ok, 1 a domain failure you can act on (gate closed, cap hit, delivery
failed), 2 bad usage or configuration.
"""

from __future__ import annotations

import typer
from typer.core import TyperGroup

from echoops.commands import config_cmd, costs, demo, jobs, page, portal, scale, scheduler, serve, slo
from echoops.commands.output import error, note_log_dir
from echoops.core import config
from echoops.core.errors import EchoopsError


class EchoopsGroup(TyperGroup):
    """Reads the folder's echoops.env, says which log dir a command reads when it is not ./logs,
    and maps every EchoopsError to `Error: …` on stderr and its exit code, in one place."""

    def parse_args(self, ctx, args):
        ctx.meta["echoops.argv"] = list(args)  # the command line after `echoops`, for invoke
        return super().parse_args(ctx, args)

    def invoke(self, ctx):
        try:
            config.use_env_file()  # ./echoops.env, under the environment (core/envfile.py)
            note_log_dir(ctx.meta.get("echoops.argv", []))
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


def _store_failure(exc: Exception) -> None:
    """A full disk, a read-only or vanished store: `Error: the store is unavailable: ...`, exit 1."""
    code = jobs.store_failure(exc)
    if code is not None:
        raise typer.Exit(code) from None


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
