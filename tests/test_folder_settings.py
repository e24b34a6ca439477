"""The folder's echoops.env (precedence, syntax, mode), the log-dir note on stderr, and reads
that never create files in a log dir without echoops data."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from echoops.core import config, envfile
from echoops.core.errors import ConfigError
from tests.conftest import TEST_KEY

SECRET = "portal-signing-secret-0123456789abcdef"


@pytest.fixture
def folder(tmp_path, monkeypatch):
    """A working dir with no ECHOOPS_LOG_DIR in the environment: commands default to ./logs."""
    cwd = tmp_path / "work"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    monkeypatch.delenv("ECHOOPS_LOG_DIR")
    monkeypatch.delenv("ECHOOPS_ENV_FILE")  # the default: ./echoops.env
    return cwd


# --- envfile: syntax and writing -------------------------------------------------------------


def test_parse_reads_what_a_posix_shell_reads():
    text = (
        "# comment\n\n"
        "A=1\n"
        "export B='two words'  # trailing comment\n"
        'C="say \\"hi\\" $HOME"\n'
        "D=a#b\n"
        "E=\n"
        "F=back\\ slash\n"
    )
    assert envfile.parse(text, path=Path("x.env")) == {
        "A": "1",
        "B": "two words",
        "C": 'say "hi" $HOME',
        "D": "a#b",
        "E": "",
        "F": "back slash",
    }


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("just-a-secret-value", "x.env line 2: expected NAME=value"),
        ("A='open", "x.env line 2: A: unterminated ' quote"),
        ('A="open', 'x.env line 2: A: unterminated " quote'),
        ("A=two words", "x.env line 2: A: quote a value that has spaces"),
    ],
)
def test_a_bad_line_names_the_file_and_line_and_never_echoes_the_value(line, message):
    with pytest.raises(ConfigError) as info:
        envfile.parse("OK=1\n" + line + "\n", path=Path("x.env"))
    assert info.value.detail == message
    assert "secret" not in info.value.detail


def test_update_keeps_other_lines_quotes_values_and_is_private(tmp_path):
    path = tmp_path / "echoops.env"
    path.write_text("# mine\nTELEGRAM_CHAT_ID=42\nECHOOPS_PORT=5000\nECHOOPS_PORT=5001\n")
    path.chmod(0o644)
    envfile.update(path, {"ECHOOPS_PORT": "6000", "PORTAL_SELLER_NAME": "Echo Pilot #1"}, header="ignored")
    assert path.read_text() == ("# mine\nTELEGRAM_CHAT_ID=42\nECHOOPS_PORT=6000\nPORTAL_SELLER_NAME='Echo Pilot #1'\n")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert envfile.read(path)["PORTAL_SELLER_NAME"] == "Echo Pilot #1"
    fresh = tmp_path / "new.env"
    envfile.update(fresh, {"A": "it's"}, header="line one\n\nline three")
    assert fresh.read_text() == "# line one\n#\n# line three\nA='it'\"'\"'s'\n"
    assert envfile.read(fresh) == {"A": "it's"} and envfile.read(tmp_path / "none.env") is None


# --- precedence ----------------------------------------------------------------------------


def test_the_environment_beats_the_file_and_the_file_beats_the_default(cli, folder, monkeypatch):
    (folder / "echoops.env").write_text("ECHOOPS_LOG_DIR=data\nECHOOPS_PORT=6001\nSLO_MIN_REQUESTS=50\n")
    monkeypatch.setenv("ECHOOPS_PORT", "7002")
    monkeypatch.setenv("SLO_MIN_REQUESTS", "")  # empty counts as unset: the file's value stands
    result = cli("config", "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["settings"]["ECHOOPS_LOG_DIR"] == "data"
    assert doc["settings"]["ECHOOPS_PORT"] == 7002
    assert doc["settings"]["SLO_MIN_REQUESTS"] == 50
    assert doc["env_file"] == "echoops.env"
    assert {k: doc["sources"][k] for k in ("ECHOOPS_LOG_DIR", "ECHOOPS_PORT", "SLO_MIN_REQUESTS", "SCALE_MIN")} == {
        "ECHOOPS_LOG_DIR": "file",
        "ECHOOPS_PORT": "env",
        "SLO_MIN_REQUESTS": "file",
        "SCALE_MIN": "default",
    }
    table = cli("config")
    assert "settings file: ./echoops.env (the environment wins over it)" in table.stdout


def test_unknown_names_in_the_file_are_warnings_and_bad_lines_exit_2(cli, folder):
    (folder / "echoops.env").write_text("ECHOOPS_LOG_DIR=data\nOPENAI_API_KEY=sk-xyz\n")
    doc = json.loads(cli("config", "--json").stdout)
    assert "echoops.env: OPENAI_API_KEY is not an echoops setting (ignored)" in doc["warnings"]
    (folder / "echoops.env").write_text("ECHOOPS_LOG_DIR=data\nsk-live-pasted-alone\n")
    bad = cli("slo", "status")
    assert bad.exit_code == 2
    assert bad.stderr == "Error: echoops.env line 2: expected NAME=value\n"
    (folder / "echoops.env").write_text("SCALE_MIN=-1\n")
    bad = cli("scale", "status")
    assert bad.exit_code == 2 and "SCALE_MIN='-1'" in bad.stderr


def test_echoops_env_file_names_another_file_and_only_settings_are_taken(cli, folder, monkeypatch, tmp_path):
    other = tmp_path / "ops.env"
    other.write_text("ECHOOPS_LOG_DIR=data\nECHOOPS_ENV_FILE=loop.env\nOPENAI_API_KEY=sk-not-ours\n")
    (folder / "echoops.env").write_text("ECHOOPS_LOG_DIR=not-this-one\n")
    monkeypatch.setenv("ECHOOPS_ENV_FILE", str(other))
    doc = json.loads(cli("config", "--json").stdout)
    assert doc["settings"]["ECHOOPS_LOG_DIR"] == "data" and doc["env_file"] == str(other)
    assert doc["settings"]["ECHOOPS_ENV_FILE"] == str(other)
    assert doc["warnings"][:2] == [
        f"{other}: ECHOOPS_ENV_FILE is read from the environment only (ignored here)",
        f"{other}: OPENAI_API_KEY is not an echoops setting (ignored)",
    ]
    assert "OPENAI_API_KEY" not in config.environment({})  # never handed to the processes echoops starts


# --- the note: which log dir a command reads ------------------------------------------------


def test_a_command_says_on_stderr_when_echoops_env_chose_the_log_dir(cli, folder):
    (folder / "echoops.env").write_text("ECHOOPS_LOG_DIR=logs/demo\n")
    (folder / "logs" / "demo").mkdir(parents=True)
    (folder / "logs" / "demo" / "requests.ndjson").write_text('{"ts": 1800000000, "status": 200, "latency_ms": 5}\n')
    result = cli("slo", "status", "--json")
    assert result.exit_code == 0
    assert json.loads(result.stdout)["state"] == "green"  # stdout is the JSON alone
    assert result.stderr == "echoops: reading logs/demo (ECHOOPS_LOG_DIR from ./echoops.env)\n"
    assert (folder / "logs" / "demo" / "echoops.db").exists() and not (folder / "logs" / "echoops.db").exists()
    assert cli("slo", "--help").stderr == ""  # help reads nothing


def test_no_note_for_logs_or_for_a_script_that_set_the_environment(cli, folder, monkeypatch, tmp_path):
    (folder / "logs").mkdir()
    (folder / "logs" / "requests.ndjson").write_text('{"ts": 1800000000, "status": 200, "latency_ms": 5}\n')
    assert cli("slo", "status", "--json").stderr == ""
    monkeypatch.setenv("ECHOOPS_LOG_DIR", str(tmp_path / "elsewhere"))
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "app.ndjson").write_text("")
    assert cli("slo", "status", "--json").stderr == ""  # stderr is not a terminal here


# --- reads create nothing where there is no echoops data -------------------------------------


READS = [
    ("slo", "status", "--json"),
    ("slo", "gate"),
    ("page", "summarize", "--json"),
    ("costs", "status", "--json"),
    ("scale", "status", "--json"),
    ("scheduler", "list", "--json"),
    ("portal", "receipts", "qa@echopilot.ai", "--json"),
]


@pytest.mark.parametrize("args", READS, ids=[" ".join(a[:2]) for a in READS])
def test_reading_an_empty_folder_creates_nothing_and_says_why_it_is_empty(cli, folder, monkeypatch, args):
    monkeypatch.setenv("PORTAL_SIGNING_SECRET", SECRET)
    (folder / "logs").mkdir()  # the checkout's logs/ with only .gitkeep
    (folder / "logs" / ".gitkeep").write_text("")
    result = cli(*args)
    assert result.exit_code == 0, result.output
    assert result.stderr == (
        "echoops: logs holds no echoops data yet (it is empty or missing): this is an empty store's "
        "answer and nothing was written there; run `echoops up --demo`, or set ECHOOPS_LOG_DIR to your log dir\n"
    )
    assert sorted(p.name for p in folder.rglob("*")) == [".gitkeep", "logs"]
    assert "ECHOOPS_LOG_DIR" not in os.environ  # the scratch dir was only for the call
    if "--json" in args:
        json.loads(result.stdout)


def test_a_hand_made_gate_flag_alone_is_data_the_gate_reads(cli, folder):
    (folder / "logs").mkdir()
    (folder / "logs" / "deploy_gate.flag").write_text("frozen for the launch\n")
    result = cli("slo", "gate")
    assert result.exit_code == 1 and "frozen for the launch" in result.stderr


def test_a_missing_log_dir_is_not_created_by_a_read(cli, folder):
    assert cli("slo", "status", "--json").exit_code == 0
    assert list(folder.iterdir()) == []


def test_writes_still_create_the_store(cli, folder):
    assert cli("slo", "tick").exit_code == 0
    assert (folder / "logs" / "echoops.db").exists()
    assert cli("slo", "status").stderr == ""  # now it holds echoops data


def test_a_secret_in_the_file_is_used_and_masked(cli, folder, monkeypatch):
    monkeypatch.delenv("DASHBOARD_KEY")
    key = "file-held-dashboard-key-0123456789"
    (folder / "echoops.env").write_text(f"DASHBOARD_KEY={key}\n")
    result = cli("config", "--json")
    doc = json.loads(result.stdout)
    assert doc["settings"]["DASHBOARD_KEY"] == "***" and doc["sources"]["DASHBOARD_KEY"] == "file"
    assert key not in result.output and TEST_KEY not in result.output


def test_at_a_terminal_a_command_names_a_log_dir_the_environment_chose(tmp_path):
    """A person at a terminal is told too (a pty as stderr, a real process)."""
    import pty
    import subprocess
    import sys

    other = tmp_path / "elsewhere"
    other.mkdir()
    (other / "app.ndjson").write_text("")
    leader, follower = pty.openpty()
    env = dict(os.environ, ECHOOPS_LOG_DIR=str(other))
    proc = subprocess.run(
        [sys.executable, "-m", "echoops", "slo", "status", "--json"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=follower,
        timeout=60,
    )
    os.close(follower)
    said = os.read(leader, 4096).decode()
    os.close(leader)
    assert proc.returncode == 0 and json.loads(proc.stdout)["state"] == "green"
    assert said == f"echoops: reading {other} (ECHOOPS_LOG_DIR)\r\n"


def test_envfile_errors(tmp_path):
    with pytest.raises(ConfigError) as info:
        envfile.read(tmp_path)  # a directory
    assert info.value.detail.startswith(f"{tmp_path}: cannot read it: ")
    (tmp_path / "target").mkdir()
    with pytest.raises(OSError):
        envfile.update(tmp_path / "target", {"A": "1"}, header="h")  # cannot replace a directory
    assert sorted(p.name for p in tmp_path.iterdir()) == ["logs", "target"]  # no temp file left behind
