"""`echoops` (the console script) and `python -m echoops`.

The scheduler's frequent jobs (`slo tick`, `costs tick`, `scale tick`, `scale sample`, with
`--json`/`--now`) run straight from `echoops.commands.jobs`, without building the Typer app;
every other command line goes to `echoops.cli`.
"""

import sys


def main() -> None:
    from echoops.commands import jobs  # lazy: keeps `import echoops.__main__` free of side effects

    code = jobs.run(sys.argv[1:])
    if code is not None:
        sys.exit(code)
    from echoops.cli import main as cli  # lazy: Typer, pydantic and the command tree, ~0.15 s

    cli()


if __name__ == "__main__":
    main()
