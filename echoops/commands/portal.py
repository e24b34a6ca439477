"""`echoops portal` (filled by its phase)."""

import typer

app = typer.Typer(help="portal commands.", no_args_is_help=True)
