"""The scheduler's frequent jobs run without Typer (issue 20, start-up): `echoops slo tick` etc.
print and exit exactly as through the Typer app, and import neither Typer, pydantic nor rich."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import orjson
import pytest

from echoops.commands import jobs

NOW = "2026-11-27T12:00:00Z"
TYPER = "import sys; from echoops.cli import main; sys.argv[0] = 'echoops'; main()"


def _env(log_dir, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLO_", "COST", "SCALE_", "ECHOOPS_"))}
    return {**env, "ECHOOPS_LOG_DIR": str(log_dir), **extra}


def _seed(log_dir) -> None:
    log_dir.mkdir(parents=True, exist_ok=True)
    lines = [
        {"ts": f"2026-11-27T11:{m:02d}:00Z", "status": 500 if m % 3 else 200, "latency_ms": 900.0} for m in range(60)
    ]
    lines.append({"ts": "2026-11-27T11:00:00Z", "status": "x", "latency_ms": 1})
    (log_dir / "requests.ndjson").write_bytes(b"".join(orjson.dumps(x) + b"\n" for x in lines))
    usage = [{"ts": "2026-11-27T11:00:00Z", "model": "gpt-4o", "usd": 30.0}, {"ts": "bad", "model": "gpt-4o", "usd": 1}]
    (log_dir / "ai_usage.ndjson").write_bytes(b"".join(orjson.dumps(x) + b"\n" for x in usage))
    (log_dir / "queue.ndjson").write_bytes(
        orjson.dumps({"ts": "2026-11-27T11:55:00Z", "depth": 40, "workers": 1}) + b"\n"
    )
    (log_dir / "requests.d").mkdir()
    os.symlink(log_dir / "gone", log_dir / "requests-gone.ndjson")  # an unreadable input: a warning line


def _both(tmp_path, argv: list[str], **extra) -> tuple:
    """(fast run, Typer run) of `argv`, each on its own copy of the same log dir."""
    runs = []
    for name, launcher in (("fast", ["-m", "echoops"]), ("typer", ["-c", TYPER])):
        d = tmp_path / name
        shutil.copytree(tmp_path / "seed", d, symlinks=True)
        r = subprocess.run(
            [sys.executable, *launcher, *argv], env=_env(d, SLO_SOURCES="requests*.ndjson", **extra),
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        out = re.sub(r'"(inc_[0-9a-f]+|duration_ms": [0-9.]+)', '"<varies>', r.stdout)  # ids and timings
        runs.append((r.returncode, out.replace(str(d), "<dir>"), r.stderr.replace(str(d), "<dir>")))
    return runs[0], runs[1]


@pytest.mark.slow
@pytest.mark.parametrize(
    "argv",
    [
        ["slo", "tick", "--now", NOW],
        ["slo", "tick", "--json", f"--now={NOW}"],
        ["slo", "ingest", "--now", NOW],
        ["slo", "ingest", "--json", "--now", NOW],
        ["costs", "tick", "--now", NOW],
        ["costs", "tick", "--json", "--now", NOW],
        ["scale", "tick", "--now", NOW],
        ["scale", "tick", "--now", NOW, "--json"],
        ["scale", "sample", "--now", NOW],
        ["slo", "tick", "--now", "yesterday"],
        ["costs", "tick", "--now", "-5"],
    ],
)
def test_a_job_prints_and_exits_as_through_typer(tmp_path, argv):
    _seed(tmp_path / "seed")
    fast, typer_run = _both(tmp_path, argv, COST_CAP_DAILY_USD="25")
    assert fast == typer_run
    code, out, err = fast
    if argv[-1] == "yesterday":
        assert (code, out, err) == (2, "", "Error: --now: 'yesterday' is not an ISO-8601 time or epoch seconds\n")
    elif argv[:2] == ["slo", "tick"] and "--json" not in argv:
        assert code == 0
        assert out == (
            "slo tick: 61 new lines (1 bad), state GREEN, p95 899.17 ms, error rate 66.667%, burn 1h 66.67, "
            "remaining -6566.7%\n"
        )
        assert err == "Warning: requests-gone.ndjson: vanished (symlink to a missing file); skipped\n"
    elif argv[:2] == ["slo", "ingest"] and "--json" not in argv:
        assert (code, out) == (0, "slo ingest: 61 new lines (1 bad, 0 too old) from 2 sources, 60 minutes updated\n")
    elif argv[-1] == "-5":  # not a job's command line as it stands: Typer parses and refuses it
        assert (code, out, err) == (2, "", "Error: --now: '-5' is not an ISO-8601 time or epoch seconds\n")
    elif argv[:2] == ["costs", "tick"] and "--json" not in argv:
        assert (code, out) == (0, "2026-11-27: 2 new lines, 1 calls; global $30.00 of $25.00 (THROTTLE); alerts: 1\n")


def test_the_fast_path_imports_no_typer_pydantic_or_rich(tmp_path):
    r = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "echoops", "slo", "tick", "--json", "--now", NOW],
        env=_env(tmp_path), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    modules = {line.split("|")[-1].strip() for line in r.stderr.splitlines() if line.startswith("import time:")}
    assert "echoops.core.slo" in modules
    assert {m.split(".")[0] for m in modules} & {"typer", "pydantic", "rich", "click", "httpx", "bottle"} == set()


def test_other_command_lines_go_to_typer():
    assert jobs.parse(["slo", "tick"])[1:] == (None, False)
    assert jobs.parse(["slo", "tick", "--now=5", "--json"])[1:] == ("5", True)
    for argv in (
        ["slo", "tick", "--help"],
        ["slo", "tick", "--json", "--json"],
        ["slo", "tick", "--now"],
        ["slo", "tick", "--now", "--json"],
        ["slo", "tick", "--now="],
        ["slo", "status"],
        ["slo"],
        ["scale", "sample", "extra"],
        [],
    ):
        assert jobs.parse(argv) is None, argv
        assert jobs.run(argv) is None


def test_typer_help_still_answers_for_a_job():
    r = subprocess.run([sys.executable, "-m", "echoops", "slo", "tick", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "Ingest new requests" in r.stdout


def test_a_store_failure_is_mapped_the_same_way(tmp_path):
    _seed(tmp_path / "seed")
    (tmp_path / "seed" / "echoops.db").mkdir()  # a database that cannot be opened
    fast, typer_run = _both(tmp_path, ["slo", "tick", "--now", NOW])
    assert fast == typer_run
    code, out, err = fast
    assert (code, out) == (1, "") and err.startswith("Error: the store is unavailable: ")


def test_a_job_reads_the_folders_echoops_env_as_through_typer(tmp_path):
    """`echoops up --demo` writes ./echoops.env and its scheduler runs `echoops slo tick` in that
    folder: the fast path reads the file (and says so) exactly as the Typer app does."""
    _seed(tmp_path / "seed" / "logs" / "demo")
    (tmp_path / "seed" / "echoops.env").write_text("ECHOOPS_LOG_DIR=logs/demo\nSLO_SOURCES=requests*.ndjson\n")
    runs = []
    for name, launcher in (("fast", ["-m", "echoops"]), ("typer", ["-c", TYPER])):
        folder = tmp_path / name
        shutil.copytree(tmp_path / "seed", folder, symlinks=True)
        env = {k: v for k, v in _env(folder).items() if k != "ECHOOPS_LOG_DIR"}
        r = subprocess.run(
            [sys.executable, *launcher, "slo", "tick", "--json", "--now", NOW],
            env=env, cwd=folder, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        runs.append((r.returncode, orjson.loads(r.stdout)["ingest"]["lines"], r.stderr))
    assert runs[0] == runs[1]
    code, lines, err = runs[0]
    assert (code, lines) == (0, 61)  # the bad line is a line read too
    assert err.startswith("echoops: reading logs/demo (ECHOOPS_LOG_DIR from ./echoops.env)\n")
