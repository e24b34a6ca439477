"""`echoops page` (filled by its phase)."""

import typer

app = typer.Typer(help="page commands.", no_args_is_help=True)
