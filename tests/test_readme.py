"""The README stays true: its env table, endpoint table and first commands match the code."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from echoops.core.scheduler import crontab
from shim.app import bottle_app

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    assert "\npytest --cov\n" in ci and "\nmypy\n" in ci


def test_first_two_commands_install_run_demo_and_test():
    top = README.splitlines()[:20]
    commands = [line for line in top if line.startswith("python3 -m venv")]
    assert len(commands) == 2
    assert commands[0].endswith("pip install -e . && echoops up --demo")
    assert commands[1].endswith("pip install -e '.[test]' && pytest --cov")  # what .ci/run runs
    assert "bash .ci/run" not in commands[1]


def test_env_table_is_generated_from_config():
    generated = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "env_table.py")], capture_output=True, text=True, check=True
    ).stdout.strip()
    section = README.split("<!-- env-table:start -->\n", 1)[1].split("\n<!-- env-table:end -->", 1)[0]
    assert section == generated, "run: python scripts/env_table.py --write"


def test_every_route_is_in_the_endpoint_table():
    table = README.split("## HTTP endpoints", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in table.splitlines():
        m = re.match(r"\| ([A-Z, ]+) \| `([^`?]+)", line)
        if m:
            rows[m.group(2)] = {method.strip() for method in m.group(1).split(",")}
    for route in bottle_app.routes:
        if route.rule.startswith("/static/"):
            continue
        assert route.rule in rows, f"{route.method} {route.rule} missing from the README endpoint table"
        assert route.method in rows[route.rule], f"{route.method} {route.rule}: method not in the README row"


def test_repo_schedule_lists_the_packaged_default_jobs():
    repo = crontab.parse((ROOT / "schedule.cron").read_text(), path=ROOT / "schedule.cron")
    packaged = crontab.parse(crontab.default_path().read_text(), path=crontab.default_path())
    assert [(j.name, j.schedule, j.argv, j.enabled, j.local) for j in repo.jobs] == [
        (j.name, j.schedule, j.argv, j.enabled, j.local) for j in packaged.jobs
    ]
    assert [j.name for j in repo.enabled] == [
        "slo tick",
        "page run",
        "costs tick",
        "scale tick",
        "scale sample",
        "slo ingest",
        "page logs",
    ]


def test_the_python_examples_import_only_the_public_api_and_run(log_dir, capsys):
    blocks = [b.split("```", 1)[0] for b in README.split("```python\n")[1:]]
    assert len(blocks) >= 2  # the Python API section and the cost guard
    for block in blocks:
        imports = [line for line in block.splitlines() if line.startswith(("from ", "import "))]
        assert imports and all(line.startswith("from echoops.api import ") for line in imports), imports
        exec(compile(block, "README.md", "exec"), {})  # against the test's empty log dir
    assert capsys.readouterr().out == ""  # a fresh install is green: nothing to print


def test_the_demo_schedule_runs_the_default_jobs_every_minute():
    # a job added to the default schedule belongs in the live demo's too (every minute there)
    demo = crontab.parse(crontab.demo_text(), path=Path("schedule.demo.cron"))
    packaged = crontab.parse(crontab.default_path().read_text(), path=crontab.default_path())
    assert [(j.argv, j.local) for j in demo.enabled] == [(j.argv, j.local) for j in packaged.enabled]
    assert {j.schedule for j in demo.enabled} == {"* * * * *"}


def test_ci_uses_its_own_venv_and_temp_files():
    ci = (ROOT / ".ci" / "run").read_text()
    assert ".venv" not in ci.replace("checkout's .venv", "")  # never creates or deletes the checkout's venv
    assert 'venv="${ECHOOPS_CI_VENV:-$scratch/venv}"' in ci and "scratch=$(mktemp -d" in ci
    assert "/tmp/echoops-pip.log" not in ci
