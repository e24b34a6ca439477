"""Every status and summary command is readable at 80 columns (and at 120): nothing cut with an
ellipsis, no line wider than the terminal (a link alone on its line excepted, so it can be
copied whole), and the same panel style everywhere.

The data is the demo's (three days of requests, today's AI usage, queue samples, purchases)
plus what makes lines long: a 500-character incident message, a model with a long name, a
silence with a long reason, refused portal lookups.
"""

from __future__ import annotations

import re
import time

import orjson
import pytest
from rich.cells import cell_len

from echoops.commands import render

LONG_MSG = (
    "payment webhook handler timed out after 30 s while the primary database connection pool was "
    "exhausted; 1,204 requests failed with 503 and the retry queue is at 8,000 jobs. " * 4
).strip()
URL = re.compile(r"^https?://\S+$")


@pytest.fixture
def busy(cli, log_dir, monkeypatch):
    """The demo's data with every tick run once, plus the long lines."""
    monkeypatch.setenv("PORTAL_SIGNING_SECRET", "s" * 40)
    assert cli("demo", "seed").exit_code == 0
    with open(log_dir / "ai_usage.ndjson", "ab") as fh:
        line = {"ts": time.time() - 60, "model": "claude-3-5-sonnet-20241022", "usd": 3.14159}
        fh.write(orjson.dumps(line) + b"\n")
    for job in (("slo", "tick"), ("page", "run"), ("costs", "tick"), ("scale", "tick")):
        assert cli(*job).exit_code in (0, 1), job
    raise_ = ("page", "raise", "--severity", "CRITICAL", "--source", "payments-webhook-worker", "--msg", LONG_MSG)
    assert cli(*raise_).exit_code == 0
    assert cli("page", "raise", "--severity", "WARNING", "--source", "db", "--msg", "replica lag 12 s").exit_code == 0
    silence = ("page", "silence", "--match", "source=db", "--match", "msg~=replica lag", "--for", "2h")
    assert cli(*silence, "--reason", "planned failover drill on the replica; lag expected for an hour").exit_code == 0
    assert cli("portal", "receipts", "qa@echopilot.ai").exit_code == 0
    assert cli("portal", "receipts", "not-an-email").exit_code == 2  # an audited refusal with a reason
    return log_dir


COMMANDS = [
    ("slo", "status"),
    ("page", "summarize"),
    ("page", "silences"),
    ("costs", "status"),
    ("costs", "check", "gpt-4o-mini"),
    ("scale", "status"),
    ("scale", "simulate", "{log_dir}/queue.ndjson"),
    ("portal", "receipts", "qa@echopilot.ai"),
    ("portal", "audit"),
    ("scheduler", "list"),
    ("config",),
]


def problems(text: str, width: int) -> list[str]:
    """Lines cut with an ellipsis or wider than `width` (a lone link may be: it must copy whole)."""
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        if "\u2026" in line:
            out.append(f"line {n} is cut: {line!r}")
        if cell_len(line.rstrip()) > width and not URL.match(line.strip()):
            out.append(f"line {n} has {cell_len(line.rstrip())} columns: {line!r}")
    return out


@pytest.mark.slow
@pytest.mark.parametrize("width", [80, 120])
def test_status_and_summary_commands_fit_the_terminal(busy, cli, width, monkeypatch):
    monkeypatch.setenv("COLUMNS", str(width))
    assert render.console().width == width  # rich takes the width from COLUMNS
    shown = {}
    for command in COMMANDS:
        args = [arg.format(log_dir=busy) for arg in command]
        result = cli(*args, env={"COLUMNS": str(width)})
        assert result.exit_code in (0, 1), (args, result.stderr)
        assert result.stdout.strip(), args
        assert problems(result.stdout, width) == [], " ".join(command)
        shown[command[:2]] = result.stdout
    # the same panel style for every status: a rounded box with the title on its top edge
    for command, title in [
        (("slo", "status"), "SLO & Error Budget"),
        (("page", "summarize"), "Incidents, last 24h"),
        (("costs", "status"), "AI spend on "),
        (("scale", "status"), "Autoscale"),
        (("portal", "receipts"), "Customer qa@echopilot.ai"),
    ]:
        assert shown[command].startswith(f"╭─ {title}"), command
    # the long message is all there, wrapped, not cut at 60 characters
    words = " ".join(shown[("page", "summarize")].split())
    assert "the retry queue is at 8,000 jobs." in words and LONG_MSG[:200].split()[-2] in words
    assert "planned failover drill on the replica; lag expected for an hour" in " ".join(
        shown[("page", "silences")].split()
    )
    assert "claude-3-5-sonnet-20241022" in shown[("costs", "status")]
    # the simulate change list has a header; the links of a receipt are whole, alone on their lines
    assert re.search(r"^time \(UTC\)\s+method\s+workers\s+backlog", shown[("scale", "simulate")], re.M)
    links = [line for line in shown[("portal", "receipts")].splitlines() if URL.match(line)]
    assert len(links) == 7 and all("token=v1." in link for link in links)  # 4 receipts, 2 invoices, unsubscribe
    changed = cli("costs", "set-cap", "--scope", "daily", "--usd", "30", env={"COLUMNS": str(width)})
    assert changed.stdout == "global daily cap: $25.00 (env) -> $30.00\n"


def test_a_table_too_narrow_for_its_text_prints_each_row_as_a_block(monkeypatch, capsys):
    monkeypatch.setenv("COLUMNS", "40")
    cols = [render.Col("id"), render.Col("when"), render.Col("text", wide=True)]
    render.table(cols, [["inc_01a22b394535dc37813f8b", "2026-11-30 06:51", "a message " * 6]])
    out = capsys.readouterr().out
    assert problems(out, 40) == []
    assert [line.split()[0] for line in out.splitlines() if line.strip()][:3] == ["id", "when", "text"]
    assert "inc_01a22b394535dc37813f8b" in out and "2026-11-30 06:51" in out


def test_plain_tables_wrap_beside_move_under_or_stack():
    cols = [render.Col("name"), render.Col("n", "right"), render.Col("text", wide=True)]
    rows = [["alpha", "1", "one two three four five six seven eight nine ten"], ["b", "22", ""]]
    assert render.plain_table(cols, rows, width=40) == (
        "name    n  text\n"
        "-----  --  -----------------------------\n"
        "alpha   1  one two three four five six\n"
        "           seven eight nine ten\n"
        "b      22\n"
    )
    # under 24 columns left for the text: it moves under its row
    assert render.plain_table(cols, rows, width=20) == (
        "name    n\n-----  --\nalpha   1\n"
        "    one two three\n    four five six\n    seven eight nine\n    ten\n"
        "b      22\n"
    )
    # the fixed columns alone are too wide: each row's cells one after the other, wrapped
    stacked = render.plain_table(
        [render.Col("a" * 30), render.Col("t", wide=True)], [["x" * 30, "words " * 9]], width=20
    )
    assert problems(stacked, 20) == [] and stacked.splitlines()[4:6] == ["x" * 20, "    " + "x" * 10]


def test_money_and_times_for_people():
    assert [render.usd(v) for v in (None, 0, 150.832, 7.67002, 0.0042, 12345.6)] == [
        "-", "$0.00", "$150.83", "$7.67", "$0.0042", "$12,345.60",
    ]  # fmt: skip
    assert render.when("2026-11-30T06:51:42.170Z") == "2026-11-30 06:51"
    assert render.when(1796021502, seconds=True, zone=True) == "2026-11-30 06:51:42 UTC"
    assert render.when(None) == render.when("junk") == "-"
