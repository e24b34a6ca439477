"""The `echoops` command tree: help on every command, entry points, start-up import guard."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer.main

from echoops.cli import app
from echoops.core.config import VARS

ROOT = Path(__file__).resolve().parent.parent


def _walk(cmd, path):
    yield path, cmd
    for name in sorted(getattr(cmd, "commands", {}) or {}):
        yield from _walk(cmd.commands[name], [*path, name])


COMMANDS = list(_walk(typer.main.get_command(app), ["echoops"]))


def _case(path, cmd):
    return pytest.param(path, cmd, id=" ".join(path))


def test_tree_has_the_expected_top_level_commands():
    names = {p[1] for p, _ in COMMANDS if len(p) == 2}
    assert {"config", "serve", "up", "scheduler", "demo", "slo", "page", "portal", "costs", "scale"} <= names


@pytest.mark.parametrize(("path", "cmd"), [_case(p, c) for p, c in COMMANDS])
def test_every_command_has_a_one_line_summary(path, cmd):
    text = (cmd.help or "").strip()
    assert text, f"{' '.join(path)} has no help text"
    summary = text.split("\n\n")[0].strip()
    assert "\n" not in summary, f"{' '.join(path)}: the summary (first paragraph) must be one line"
    assert 10 <= len(summary) <= 160, f"{' '.join(path)}: summary of {len(summary)} chars"


LEAVES = [(p, c) for p, c in COMMANDS if not hasattr(c, "commands")]


@pytest.mark.parametrize(("path", "cmd"), [_case(p, c) for p, c in LEAVES])
def test_every_leaf_command_has_an_example(path, cmd):
    assert "Example" in (cmd.help or ""), f"{' '.join(path)} --help shows no example"


@pytest.mark.parametrize(("path", "cmd"), [_case(p, c) for p, c in COMMANDS])
def test_help_renders(cli, path, cmd):
    result = cli(*path[1:], "--help")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("Usage: ")
    assert (cmd.help or "").strip().split("\n")[0][:40] in " ".join(result.stdout.split())


def _run(*args: str, env: dict | None = None, **kw) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k not in {var.env for var in VARS}}
    return subprocess.run(args, cwd=ROOT, env={**base, **(env or {})}, capture_output=True, text=True, timeout=60, **kw)


def test_python_dash_m_echoops(log_dir):
    r = _run(sys.executable, "-m", "echoops", "--help")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("Usage: ")
    for name in ("config", "serve", "up", "scheduler", "slo", "page", "portal", "costs", "scale"):
        assert name in r.stdout
    r = _run(sys.executable, "-m", "echoops", "config", "--json", env={"ECHOOPS_LOG_DIR": str(log_dir)})
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["settings"]["ECHOOPS_LOG_DIR"] == str(log_dir)


def test_console_script():
    script = Path(sys.executable).with_name("echoops")
    if not script.exists():
        pytest.skip("echoops console script not installed in this environment")
    r = _run(str(script), "--help")
    assert r.returncode == 0 and r.stdout.startswith("Usage: ")


# Heavy modules only the commands that need them may import (lazily): the start-up target is
# `echoops --help` / `echoops config` within 1.3x of a hello-world Typer app (bench/foundation_startup.py).
HEAVY = ("httpx", "bottle", "gunicorn", "croniter", "rich", "sqlite3")

# Modules loaded before echoops (coverage's own, under `pytest --cov`, uses sqlite3) do not count.
IMPORT_PROBE = """
import io, sys, contextlib
heavy = {heavy!r}
before = set(sys.modules)
import echoops.cli
def loaded():
    return sorted(m for m in set(sys.modules) - before if m.split(".")[0] in heavy)
after_import = loaded()
out = io.StringIO()
with contextlib.redirect_stdout(out):
    try:
        echoops.cli.app({argv!r})
    except SystemExit as exc:
        code = exc.code
print(after_import, loaded(), code)
"""


@pytest.mark.parametrize("argv", [["--help"], ["config", "--json"], ["slo", "--help"], ["scale", "status", "--help"]])
def test_cli_start_up_imports_nothing_heavy(log_dir, argv):
    r = _run(sys.executable, "-c", IMPORT_PROBE.format(heavy=HEAVY, argv=argv), env={"ECHOOPS_LOG_DIR": str(log_dir)})
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[] [] 0"


def test_config_error_is_one_line_on_stderr_in_a_real_process():
    # rich used to wrap a long message at 80 columns when stderr is not a terminal
    env = {"COST_CAP_DAILY_USD": "-5", "SLO_LAT_P95_MS": "nan", "MODEL_CAPS_JSON": '{"gpt-4o-mini": -1}'}
    r = _run(sys.executable, "-m", "echoops", "config", env=env)
    assert r.returncode == 2
    assert r.stdout == ""
    assert r.stderr == (
        "Error: invalid configuration: SLO_LAT_P95_MS='nan': must be a finite number; "
        "COST_CAP_DAILY_USD='-5': must be >= 0; MODEL_CAPS_JSON='{\"gpt-4o-mini\": -1}': "
        "'gpt-4o-mini': must be >= 0\n"
    )


def test_unknown_command_is_usage_error(cli):
    result = cli("nope")
    assert result.exit_code == 2
    assert "No such command 'nope'" in result.stderr


def test_root_help_documents_exit_codes(cli):
    result = cli("--help")
    assert result.exit_code == 0
    text = " ".join(result.stdout.split())
    assert "Exit codes: 0 ok, 1 domain failure (gate closed, cap hit), 2 bad usage or config." in text


def test_emit_json_is_exact(capsys):
    from echoops.commands.render import emit_json

    emit_json({"b": 1, "a": [1.5, None], "p": Path("/x")})
    assert capsys.readouterr().out == '{\n  "b": 1,\n  "a": [\n    1.5,\n    null\n  ],\n  "p": "/x"\n}\n'
