"""`echoops demo` (filled by the foundation)."""

import typer

app = typer.Typer(help="demo commands.", no_args_is_help=True)
