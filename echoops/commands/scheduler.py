"""`echoops scheduler` (filled by the foundation)."""

import typer

app = typer.Typer(help="scheduler commands.", no_args_is_help=True)
