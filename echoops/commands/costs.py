"""`echoops costs` (filled by its phase)."""

import typer

app = typer.Typer(help="costs commands.", no_args_is_help=True)
