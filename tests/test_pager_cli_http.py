"""The pager's edges: `echoops page ...` in process, /api/incidents on a live gunicorn, the
background drain, a SIGKILLed `page run`, and a grep of every output for the secrets."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import orjson
import pytest

from echoops.core import config, pager
from tests.fakes_smtp import PASSWORD, USER, FakeSMTP
from tests.fakes_telegram import blocked, hang, hold, server_error


@pytest.fixture(autouse=True)
def no_escalation(monkeypatch):
    """These tests drive hours of simulated time to check the retry schedule, attempt by attempt;
    escalation (a second page after PAGER_ESCALATE_MIN) has its own tests (test_pager_answer.py)."""
    monkeypatch.setenv("PAGER_ESCALATE_MIN", "0")


def test_every_page_command_has_help_and_an_example(cli):
    from echoops.commands.page import app

    assert "Example:" in (app.info.help or "")
    for command in app.registered_commands:
        doc = command.callback.__doc__ or ""
        assert doc.strip().splitlines()[0], command.name
        assert "Example:" in doc, command.name
        result = cli("page", command.name, "--help")
        assert result.exit_code == 0 and "Example:" in result.stdout


def test_cli_raise_delivers_now_and_dedups(cli, tg):
    args = ("page", "raise", "--severity", "critical", "--msg", "SLO burn", "--source", "slo", "--json")
    first = cli(*args, "--meta", '{"burn": 14.4}')
    assert first.exit_code == 0, first.output
    body = orjson.loads(first.stdout)
    assert body["deduped"] is False and body["deliveries"] == {"telegram": "ok", "email": "skipped"}
    assert len(tg.delivered) == 1
    again = orjson.loads(cli(*args).stdout)
    assert again["deduped"] is True and again["id"] == body["id"] and len(tg.delivered) == 1
    human = cli("page", "raise", "--severity", "INFO", "--msg", "deploy done", "--source", "ci")
    assert human.exit_code == 0 and "new incident inc_" in human.stdout and "not paged" in human.stdout


def test_cli_raise_makes_the_first_attempt_and_leaves_the_retries_to_the_outbox(cli, tg, log_dir):
    from echoops.core.clock import iso

    t0 = 1_800_000_000
    tg.script(server_error())
    args = ("page", "raise", "--severity", "CRITICAL", "--msg", "db down", "--source", "db", "--now", str(t0))
    started = time.monotonic()
    result = cli(*args)
    took = time.monotonic() - started  # the backoff counts from the answer: --now plus the send's duration
    assert result.exit_code == 1  # the first attempt failed; it is retried
    assert len(tg.requests) == 1  # no waiting for the backoff in the CLI
    body = orjson.loads(cli(*args, "--json").stdout)  # deduped: nothing attempted again
    assert body["deduped"] is True and len(tg.requests) == 1
    row = pager.db(config.settings()).execute("SELECT state, attempts, next_attempt_at FROM pager_outbox").fetchone()
    assert (row["state"], row["attempts"]) == ("pending", 1) and t0 + 10 <= row["next_attempt_at"] <= t0 + 11 + took
    assert f"telegram PENDING (attempt 1: 500; retry at {iso(row['next_attempt_at'])})" in " ".join(
        result.stdout.split()
    )
    run = cli("page", "run", "--now", str(t0 + 300))  # the outbox takes it from there
    assert run.exit_code == 0 and len(tg.delivered) == 1


def test_an_always_500_channel_sees_at_most_6_attempts_over_two_simulated_days(cli, tg, log_dir):
    t0 = 1_800_000_000
    tg.script(*[server_error()] * 50)
    raised = cli("page", "raise", "--severity", "CRITICAL", "--msg", "db down", "--source", "db", "--now", str(t0))
    assert raised.exit_code == 1
    t = t0 + 300
    codes = []
    while t <= t0 + 2 * 86400:  # the scheduler's */5 for the first hour, then hourly
        codes.append(cli("page", "run", "--now", str(t)).exit_code)
        t += 300 if t < t0 + 3600 else 3600
    assert len(tg.requests) == 6
    assert codes.count(1) == 1  # the run whose attempt made it `failed`
    body = orjson.loads(cli("page", "summarize", "--json", "--now", str(t0 + 3600)).stdout)
    db_group = next(g for g in body["groups"] if g["source"] == "db")
    assert body["totals"]["deliveries"]["failed"] == 1 and db_group["failed_deliveries"] == 1
    table = cli("page", "summarize", "--now", str(t0 + 2 * 86400), env={"COLUMNS": "250"})
    assert "FAILED telegram delivery of CRITICAL db: db down after 6 attempt(s): Internal Server Error" in table.stdout
    assert "echoops page retry inc_" in table.stdout
    # by hand: a new series, its first attempt now (still 500 here: exit 1, the outbox retries)
    retried = cli("page", "retry", "--all-failed", "--json", "--now", str(t0 + 2 * 86400 + 60))
    body = orjson.loads(retried.stdout)
    assert retried.exit_code == 1 and len(tg.requests) == 7
    assert [r["channel"] for r in body["retried"]] == ["telegram"]
    assert list(body["deliveries"].values()) == [{"telegram": "pending"}]
    assert cli("page", "retry").exit_code == 2  # neither an id nor --all-failed
    nothing = cli("page", "retry", "--all-failed")
    assert nothing.exit_code == 1 and "no failed delivery of any incident to retry" in nothing.stderr


def test_page_run_writes_incident_summary_json_in_a_fresh_log_dir(cli, log_dir):
    assert not (log_dir / "incident_summary.json").exists()
    (log_dir / "app.ndjson").write_bytes(orjson.dumps({"severity": "CRITICAL", "msg": "boom"}) + b"\n")
    result = cli("page", "run", "--now", "2027-01-15T08:00:00Z")
    assert result.exit_code == 0
    written = orjson.loads((log_dir / "incident_summary.json").read_bytes())
    assert written["generated_at"] == "2027-01-15T08:00:00.000Z" and written["hours"] == 24
    assert [(g["source"], g["msg"], g["count"]) for g in written["groups"]] == [("app", "boom", 1)]
    assert not [p.name for p in log_dir.iterdir() if p.name.startswith("incident_summary") and p.suffix != ".json"]
    cli("page", "run", "--now", "2027-01-16T09:00:00Z")  # every run rewrites it: the incident left the 24h
    assert orjson.loads((log_dir / "incident_summary.json").read_bytes())["groups"] == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--severity", "LOUD", "--msg", "m", "--source", "s"), "severity must be one of"),
        (("--severity", "INFO", "--msg", "", "--source", "s"), "msg must be a non-empty string"),
        (("--severity", "INFO", "--msg", "m", "--source", "s", "--meta", "[1]"), "meta must be a JSON object"),
        (("--severity", "INFO", "--msg", "m", "--source", "s", "--meta", "{"), "--meta is not valid JSON"),
    ],
)
def test_cli_raise_rejects_bad_input_with_exit_2(cli, args, message):
    result = cli("page", "raise", *args)
    assert result.exit_code == 2
    assert "Error:" in result.stderr and message in result.stderr


def test_cli_summarize_table_json_and_file(cli, log_dir):
    t0 = 1_800_000_000
    for i, (sev, msg, src) in enumerate([("CRITICAL", "db down 1", "db"), ("WARNING", "slow 250ms", "web")]):
        assert (
            cli("page", "raise", "--severity", sev, "--msg", msg, "--source", src, "--now", str(t0 + i)).exit_code == 0
        )
    cli("page", "raise", "--severity", "CRITICAL", "--msg", "db down 2", "--source", "db", "--now", str(t0 + 5))
    table = cli("page", "summarize", "--now", str(t0 + 10), env={"COLUMNS": "200"})
    assert table.exit_code == 0 and "db down 1" in table.stdout and "SKIPPED" in table.stdout
    body = orjson.loads(cli("page", "summarize", "--json", "--hours", "1", "--now", str(t0 + 10)).stdout)
    assert [(g["source"], g["count"], g["paged"], g["deliveries"]) for g in body["groups"]] == [
        ("db", 2, False, {"telegram": "skipped", "email": "skipped"}),  # raised, but no channel took it
        ("web", 1, False, {}),
    ]
    assert body["totals"]["incidents"] == 3 and body["totals"]["groups"] == 2
    day = orjson.loads(cli("page", "summarize", "--json", "--now", str(t0 + 10)).stdout)
    assert orjson.loads((log_dir / "incident_summary.json").read_bytes()) == day  # the file holds the last 24h
    assert day["groups"] == body["groups"]
    bad = cli("page", "summarize", "--hours", "0")
    assert bad.exit_code == 2 and "hours" in bad.stderr


def test_cli_test_channel_reports_what_telegram_answered(cli, tg, monkeypatch):
    result = cli("page", "test", "--channel", "telegram")
    assert result.exit_code == 0 and "telegram: OK 200 ok" in result.stdout
    assert tg.delivered[0]["text"].startswith("<b>[TEST] INFO")
    tg.script(blocked())
    refused = cli("page", "test", "--json")
    assert refused.exit_code == 1
    assert orjson.loads(refused.stdout) == {
        "results": {"telegram": {"ok": False, "status": 403, "detail": "Forbidden: bot was blocked by the user"}}
    }
    missing = cli("page", "test", "--channel", "email")
    assert missing.exit_code == 2 and "email needs SMTP_HOST, SMTP_FROM and SMTP_TO" in missing.stderr


def test_http_raise_validates_and_summarize_groups(server):
    c = server.client()
    ok = c.post("/api/incidents/raise", json={"severity": "critical", "msg": "SLO burn", "source": "slo"})
    assert ok.status_code == 200
    body = ok.json()
    assert set(body) == {"id", "fingerprint", "deduped", "channels", "state"}
    assert body["channels"] == {"telegram": "skipped", "email": "skipped"} and body["deduped"] is False
    assert c.post("/api/incidents/raise", json={"severity": "CRITICAL", "msg": "SLO burn", "source": "slo"}).json()[
        "deduped"
    ]
    cases = [
        ({"severity": "nope", "msg": "m", "source": "s"}, "severity"),
        ({"severity": "INFO", "source": "s"}, "msg"),
        ({"severity": "INFO", "msg": "m", "source": "x" * 101}, "source"),
        ({"severity": "INFO", "msg": "m", "source": "s", "meta": [1]}, "meta"),
        ({"severity": "INFO", "msg": "m", "source": "s", "colour": "red"}, "colour"),
    ]
    for payload, field in cases:
        r = c.post("/api/incidents/raise", json=payload)
        assert r.status_code == 400 and r.json()["field"] == field and r.json()["error"] == "invalid", payload
    r = c.post("/api/incidents/raise", content=b"[1,2]", headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["field"] == "body"
    summary = c.post("/api/incidents/summarize?hours=2").json()
    [group] = summary["groups"]
    assert (group["count"], group["source"], group["severity"], group["pages_raised"]) == (2, "slo", "CRITICAL", 1)
    assert summary["hours"] == 2
    assert c.post("/api/incidents/summarize?hours=-1").json()["field"] == "hours"
    assert server.client(None).post("/api/incidents/summarize").status_code == 401


def test_http_critical_is_delivered_by_the_server_within_seconds(live_server, tg):
    server = live_server()
    c = server.client()
    start = time.monotonic()
    r = c.post("/api/incidents/raise", json={"severity": "CRITICAL", "msg": "checkout down", "source": "web"})
    assert r.json()["channels"] == {"telegram": "pending", "email": "skipped"}
    assert r.elapsed.total_seconds() < 1.0  # did not wait for Telegram
    assert tg.wait_delivered(1, timeout=10), "not delivered by the server's drain within 10 s"
    assert time.monotonic() - start < 10
    # Pages enqueued by another process (the CLI, no drain) are picked up by the workers' polls.
    # Telegram holds the first send: that worker is stuck in it, so the second page can only
    # be sent by the other worker, which must leave the held (leased) one alone.
    tg.script(hold())
    for msg in ("queue stalled", "disk nearly full"):
        raised = subprocess.run(
            [sys.executable, "-m", "echoops", "page", "raise", "--no-send", "--json",
             "--severity", "CRITICAL", "--msg", msg, "--source", "cli"],
            check=True,
            capture_output=True,
        )  # fmt: skip
        assert orjson.loads(raised.stdout)["channels"] == {"telegram": "pending", "email": "skipped"}
    assert tg.wait_delivered(2, timeout=15), "the second worker did not send while the first was held"
    assert tg.hanging.is_set() and len(tg.requests) == 3  # 1 delivered before, 1 held, 1 delivered now
    tg.release()
    assert tg.wait_delivered(3, timeout=10)
    texts = [p["text"] for p in tg.delivered]
    assert [sum(msg in t for t in texts) for msg in ("checkout down", "queue stalled", "disk nearly full")] == [1, 1, 1]
    assert len(tg.requests) == 3  # each page sent exactly once, by two workers polling the same outbox


def test_page_run_killed_mid_send_is_unconfirmed_never_sent_twice_and_retried_by_hand(tg, cli, log_dir):
    # Telegram is at-most-once: an attempt that may have reached the chat is not re-sent
    (log_dir / "app.ndjson").write_bytes(orjson.dumps({"level": "CRITICAL", "msg": "disk full"}) + b"\n")
    tg.script(hang())
    cmd = [sys.executable, "-m", "echoops", "page", "run", "--json"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert tg.hanging.wait(20), "page run never reached Telegram"
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    tg.release()
    s = config.settings()
    row = (
        pager.db(s)
        .execute("SELECT incident_id, state, attempts, sending_attempt, claimed_by FROM pager_outbox")
        .fetchone()
    )
    assert (row["state"], row["attempts"], row["sending_attempt"]) == ("pending", 0, 1)
    assert row["claimed_by"].split(":")[1] == str(proc.pid)
    assert tg.delivered == []
    second = subprocess.run(cmd, capture_output=True)
    assert second.returncode == 1
    body = orjson.loads(second.stdout)
    assert body["ingest"]["lines"] == 0  # the line was consumed once, by the killed run
    assert body["deliveries"] == {"unconfirmed": 1} and body["summary"]["deliveries"]["unconfirmed"] == 1
    assert len(tg.requests) == 1  # nothing sent again
    third = subprocess.run(cmd, capture_output=True)
    assert orjson.loads(third.stdout)["deliveries"] == {} and len(tg.requests) == 1
    retried = cli("page", "retry", row["incident_id"])
    assert retried.exit_code == 0 and f"retried {row['incident_id']}: telegram OK" in retried.stdout
    assert len(tg.delivered) == 1
    # no email configured: no notice incident; the summary lists it until it is re-driven
    assert pager.db(s).execute("SELECT count(*) FROM pager_incidents").fetchone()[0] == 1


def test_secrets_never_reach_any_output(tg, monkeypatch, log_dir, cli, live_server):
    import socket

    with FakeSMTP(auth=True) as smtp:
        smtp.configure(monkeypatch)
        monkeypatch.setenv("SMTP_USER", USER)
        monkeypatch.setenv("SMTP_PASS", PASSWORD + "-wrong")  # a refused login quotes nothing back
        outputs = []
        outputs.append(cli("page", "raise", "--severity", "CRITICAL", "--msg", "one", "--source", "a").output)
        # Telegram unreachable: the connect error must not carry the URL (token) anywhere
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            dead = sock.getsockname()[1]
        monkeypatch.setenv("TELEGRAM_API_BASE", f"http://127.0.0.1:{dead}")
        outputs.append(cli("page", "raise", "--severity", "CRITICAL", "--msg", "two", "--source", "b").output)
        outputs.append(cli("page", "test").output)
        outputs.append(cli("page", "run", "--now", str(time.time())).output)  # no waiting for backoffs
        outputs.append(cli("page", "summarize", "--json").output)
        outputs.append(cli("config").output)
        monkeypatch.setenv("TELEGRAM_API_BASE", tg.url)
        server = live_server()
        c = server.client()
        outputs.append(c.post("/api/incidents/raise", json={"severity": "CRITICAL", "msg": "3", "source": "c"}).text)
        tg.wait_delivered(2, timeout=10)
        outputs.append(c.post("/api/incidents/summarize").text)
    from tests.conftest import stop_server

    stop_server(server.proc)
    outputs.append(server.proc.stderr.read().decode("utf-8", "replace"))
    token = tg.token
    secrets = [token, token.split(":")[1], PASSWORD]
    assert any('"status":"ConnectError"' in line for line in (log_dir / "incidents.ndjson").read_text().splitlines())
    for text in outputs:
        for secret in secrets:
            assert secret not in text
    for path in log_dir.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            for secret in secrets:
                assert secret.encode() not in data, f"{secret[:6]}… leaked into {path.name}"


def test_cli_run_exits_1_when_a_delivery_failed(cli, tg, log_dir):
    (log_dir / "app.ndjson").write_bytes(orjson.dumps({"severity": "CRITICAL", "msg": "boom"}) + b"\n")
    tg.script(blocked())
    result = cli("page", "run")
    assert result.exit_code == 1
    assert "1 CRITICAL, 1 new incidents" in result.stdout and "1 FAILED" in result.stdout
    with open(log_dir / "app.ndjson", "ab") as fh:
        fh.write(orjson.dumps({"severity": "CRITICAL", "msg": "boom"}) + b"\n")
    again = orjson.loads(cli("page", "run", "--json").stdout)["ingest"]
    assert (again["critical"], again["new_incidents"], again["incidents"][0]["deduped"]) == (1, 0, True)
    quiet = cli("page", "run", "--drain-only", "--json")
    body = orjson.loads(quiet.stdout)
    assert quiet.exit_code == 0 and (body["ingest"], body["deliveries"]) == (None, {})
    assert body["summary"]["deliveries"]["failed"] == 1  # still failed: shown, not retried
