"""Baseline for the start-up benchmark: the smallest useful Typer app (one command, one option).

`python hello_typer.py --help` and `python hello_typer.py` are what `echoops --help` and
`echoops config` are compared with (bench/foundation_startup.py).
"""

import typer

app = typer.Typer(add_completion=False)


@app.command()
def hello(name: str = typer.Option("world", help="Who to greet.")) -> None:
    """Say hello."""
    print(f"Hello {name}")


if __name__ == "__main__":
    app()
