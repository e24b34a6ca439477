"""`echoops scale` (filled by its phase)."""

import typer

app = typer.Typer(help="scale commands.", no_args_is_help=True)
