"""`echoops costs` commands, and eight racing `costs tick` processes that must not double count."""

from __future__ import annotations

import os
import subprocess
import sys

import orjson
import pytest

from echoops.core import config, costs, store

DAY = 1795737600  # 2026-11-27T00:00:00Z
NOON = DAY + 12 * 3600


def usage(log_dir, n: int, tokens: int = 1_000_000, model: str = "gpt-4o-mini") -> None:
    line = orjson.dumps({"ts": NOON - 60, "model": model, "input_tokens": tokens, "output_tokens": 0}) + b"\n"
    with open(log_dir / "ai_usage.ndjson", "ab") as fh:
        fh.write(line * n)


def test_status_json_is_the_endpoint_document(cli, log_dir):
    usage(log_dir, 10)
    assert cli("costs", "tick", "--now", str(NOON)).exit_code == 0
    result = cli("costs", "status", "--json", "--now", str(NOON))
    assert result.exit_code == 0
    assert orjson.loads(result.stdout) == costs.status(now=NOON)
    table = cli("costs", "status", "--now", str(NOON))
    assert table.exit_code == 0
    assert "gpt-4o-mini" in table.stdout and "$1.50" in table.stdout


def test_check_exit_codes(cli, log_dir):
    assert cli("costs", "check", "gpt-4o-mini", "--now", str(NOON)).exit_code == 0
    usage(log_dir, 100)  # $15 = the gpt-4o-mini cap
    cli("costs", "tick", "--now", str(NOON))
    result = cli("costs", "check", "gpt-4o-mini", "--json", "--now", str(NOON))
    assert result.exit_code == 1
    assert orjson.loads(result.stdout) == {
        "action": "throttle",
        "model": "gpt-4o-mini",
        "reason": "gpt-4o-mini daily cap reached ($15.00 of $15.00); no fallback configured",
        "retry_after_s": 43200,
    }
    human = cli("costs", "check", "gpt-4o-mini", "--now", str(NOON), env={"COLUMNS": "120"})
    assert human.exit_code == 1
    assert human.stdout == (
        "THROTTLE: gpt-4o-mini daily cap reached ($15.00 of $15.00); no fallback configured (retry in 43200 s)\n"
    )
    assert cli("costs", "check", "gpt-4o", "--now", str(NOON)).exit_code == 0
    # a name the endpoint refuses is bad usage here too, not a decision about model " "
    for junk in (" ", "x" * 201, "gpt\n4o"):
        bad = cli("costs", "check", junk, "--now", str(NOON))
        assert (bad.exit_code, bad.stdout) == (2, ""), junk
        assert "model" in bad.stderr


def test_set_cap_cli(cli, log_dir):
    result = cli("costs", "set-cap", "--scope", "model", "--key", "gpt-4o", "--usd", "7.5", "--json")
    assert result.exit_code == 0
    assert orjson.loads(result.stdout)["cap"] == {
        "scope": "model",
        "key": "gpt-4o",
        "usd_cap": 7.5,
        "old_usd_cap": None,
        "old_source": None,
    }
    bad = cli("costs", "set-cap", "--scope", "model", "--usd", "5")
    assert bad.exit_code == 2
    assert "key" in bad.stderr
    assert cli("costs", "set-cap", "--scope", "daily", "--usd", "-1").exit_code == 2
    assert cli("costs", "set-cap", "--scope", "daily", "--usd", "nan").exit_code == 2
    assert cli("costs", "set-cap", "--scope", "week", "--usd", "1").exit_code == 2


def test_every_costs_command_has_help_with_an_example(cli):
    for cmd in ("status", "tick", "set-cap", "check"):
        result = cli("costs", cmd, "--help")
        assert result.exit_code == 0
        assert "Example:" in result.stdout
    assert "Example:" in cli("costs", "--help").stdout


@pytest.mark.slow
def test_eight_racing_ticks_do_not_double_count(log_dir):
    usage(log_dir, 20_000, tokens=5000)  # 20k calls x 5000 tokens x $0.15/M = $15.00: the gpt-4o-mini cap
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "echoops", "costs", "tick", "--json", "--now", str(NOON)],
            env=dict(os.environ),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(8)
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0] * 8, [e.decode()[-500:] for _, e in outs]
    lines = sorted(orjson.loads(o)["lines"] for o, _ in outs)
    assert lines == [0] * 7 + [20_000]  # exactly one tick read the lines
    settings = config.settings()
    row = store.db(settings, costs.SCHEMA).execute("SELECT calls, cost_p FROM costs_spend").fetchone()
    assert (row[0], row[1]) == (20_000, 15 * 10**12)
    assert costs.status(now=NOON)["models"]["gpt-4o-mini"]["spent_usd"] == 15.0
    # eight processes saw the cap reached; one page and one event, not eight
    from echoops.core import pager

    fps = [r[0] for r in pager.db(settings).execute("SELECT fingerprint FROM pager_incidents")]
    assert sorted(fps) == ["costs:forecast:global:2026-11-27", "costs:throttle:gpt-4o-mini:2026-11-27"]
    events = [orjson.loads(x)["event"] for x in (log_dir / "costs.ndjson").read_bytes().splitlines()]
    assert events.count("cost_throttle") == 1 and events.count("cost_tick") == 8
