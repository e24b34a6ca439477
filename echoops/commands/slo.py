"""`echoops slo` (filled by its phase)."""

import typer

app = typer.Typer(help="slo commands.", no_args_is_help=True)
