"""Delivery through the outbox against a loopback Bot API server and a real aiosmtpd server."""

from __future__ import annotations

import time

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from echoops.core import config, pager
from echoops.core.pager import outbox as pager_outbox
from tests.fakes_smtp import PASSWORD, USER, FakeSMTP, make_cert
from tests.fakes_telegram import FakeTelegram, blocked, cant_parse, server_error, too_many

T0 = time.time()


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch):
    # Real sleeps, shorter: the schedule's shape (doubling, jitter) is what is under test.
    monkeypatch.setattr(pager_outbox, "BACKOFF_BASE_S", 0.02)


@pytest.fixture
def tg(monkeypatch):
    with FakeTelegram() as fake:
        fake.configure(monkeypatch)
        yield fake


@pytest.fixture
def smtp(monkeypatch):
    with FakeSMTP() as fake:
        fake.configure(monkeypatch)
        yield fake


def page_events(log_dir, channel=None):
    lines = [orjson.loads(x) for x in (log_dir / "incidents.ndjson").read_bytes().splitlines()]
    return [e for e in lines if e["event"] == "page" and (channel is None or e["channel"] == channel)]


def outbox_row(incident_id, channel):
    row = (
        pager.db(config.settings())
        .execute(
            "SELECT state, attempts, last_status, next_attempt_at FROM pager_outbox WHERE incident_id=? AND channel=?",
            (incident_id, channel),
        )
        .fetchone()
    )
    return dict(row)


def test_critical_reaches_telegram_and_email_once(tg, smtp, log_dir):
    out = pager.raise_incident("CRITICAL", "SLO burn <fast> & 14x", "slo", {"burn": 14.4}, now=T0)
    assert out["channels"] == {"telegram": "pending", "email": "pending"}
    result = pager.run(now=T0)
    assert result["deliveries"] == {"ok": 2}
    [sent] = tg.delivered
    assert sent["parse_mode"] == "HTML" and sent["chat_id"] == tg.chat_id
    assert "SLO burn &lt;fast&gt; &amp; 14x" in sent["text"] and out["id"] in sent["text"]
    [mail] = smtp.messages
    assert mail["Subject"] == "[CRITICAL] slo: SLO burn <fast> & 14x"
    assert mail["To"] == "oncall@example.com, backup@example.com"
    assert mail["Message-ID"] == f"<{out['id']}.page@echoops>"
    assert "SLO burn <fast> & 14x" in mail.get_content()
    assert smtp.envelopes == [("echoops@example.com", ["oncall@example.com", "backup@example.com"])]
    # Both deliveries are due at the same instant, so their order in the log is not fixed.
    events = page_events(log_dir)
    assert sorted((e["channel"], e["attempt"], e["status"], e["ok"], e["sev"], e["id"]) for e in events) == [
        ("email", 1, 250, True, "CRITICAL", out["id"]),
        ("telegram", 1, 200, True, "CRITICAL", out["id"]),
    ]
    assert outbox_row(out["id"], "telegram")["state"] == "ok"
    assert outbox_row(out["id"], "email")["state"] == "ok"
    # a second run (and a deduped raise) sends nothing more
    assert pager.raise_incident("CRITICAL", "SLO burn <fast> & 14x", "slo", now=T0 + 10)["deduped"] is True
    assert pager.run(now=T0 + 20)["deliveries"] == {}
    assert len(tg.delivered) == 1 and len(smtp.messages) == 1


def test_500_four_times_then_200_is_five_attempts(tg, log_dir):
    tg.script(server_error(), server_error(502), server_error(), server_error(503))
    out = pager.raise_incident("CRITICAL", "db down", "db", now=T0)
    pager.run(now=T0)
    assert [(e["attempt"], e["status"], e["ok"]) for e in page_events(log_dir, "telegram")] == [
        (1, 500, False),
        (2, 502, False),
        (3, 500, False),
        (4, 503, False),
        (5, 200, True),
    ]
    assert len(tg.delivered) == 1
    assert outbox_row(out["id"], "telegram")["state"] == "ok"
    assert outbox_row(out["id"], "email")["state"] == "skipped"


def test_five_failures_mark_failed_then_the_next_run_retries(tg, log_dir):
    tg.script(*[server_error()] * 5)
    out = pager.raise_incident("CRITICAL", "db down", "db", now=T0)
    assert pager.run(now=T0)["deliveries"] == {"pending": 4, "failed": 1}
    row = outbox_row(out["id"], "telegram")
    assert (row["state"], row["attempts"], row["last_status"]) == ("failed", 5, "500")
    assert 300 <= row["next_attempt_at"] - T0 < 330  # next round in 5 min
    summary = pager.summarize(now=T0 + 1)
    assert summary["groups"][0]["deliveries"] == {"telegram": "failed", "email": "skipped"}
    assert summary["totals"]["deliveries"]["failed"] == 1
    assert pager.run(now=T0 + 60)["deliveries"] == {}  # not due yet
    assert pager.run(now=T0 + 400)["deliveries"] == {"ok": 1}
    assert [e["attempt"] for e in page_events(log_dir)] == [1, 2, 3, 4, 5, 6]
    assert outbox_row(out["id"], "telegram")["state"] == "ok"


def test_retrying_stops_after_pager_retry_hours(tg, monkeypatch, log_dir):
    monkeypatch.setenv("PAGER_RETRY_HOURS", "1")
    tg.script(*[blocked()] * 20)
    out = pager.raise_incident("CRITICAL", "db down", "db", now=T0)
    t = T0
    for _ in range(10):
        pager.run(now=t)
        t += 3600
    row = outbox_row(out["id"], "telegram")
    assert row["state"] == "failed" and row["next_attempt_at"] is None  # given up, still visible
    assert row["attempts"] < 10


def test_429_waits_retry_after(tg, log_dir):
    tg.script(too_many(1))
    pager.raise_incident("CRITICAL", "db down", "db", now=T0)
    start = time.monotonic()
    pager.run(now=T0)
    assert time.monotonic() - start >= 1.0
    assert [(e["status"], e["ok"]) for e in page_events(log_dir)] == [(429, False), (200, True)]


def test_cant_parse_entities_resends_once_as_plain_text(tg, log_dir):
    tg.script(cant_parse())
    pager.raise_incident("CRITICAL", "bad <b markup", "web", now=T0)
    pager.run(now=T0)
    assert [r["json"].get("parse_mode") for r in tg.requests] == ["HTML", None]
    assert "bad <b markup" in tg.delivered[0]["text"]
    assert [(e["attempt"], e["status"], e["ok"]) for e in page_events(log_dir)] == [(1, 400, False), (2, 200, True)]


def test_403_is_not_retried_in_the_run(tg, log_dir):
    tg.script(blocked())
    out = pager.raise_incident("CRITICAL", "db down", "db", now=T0)
    assert pager.run(now=T0)["deliveries"] == {"failed": 1}
    assert len(tg.requests) == 1
    [event] = page_events(log_dir)
    assert (event["status"], event["ok"], event["error"]) == (403, False, "Forbidden: bot was blocked by the user")
    assert outbox_row(out["id"], "telegram")["state"] == "failed"


def test_text_over_4096_is_truncated_not_rejected(tg):
    # 4096 bytes of msg plus the header and details lines: over Telegram's 4096 characters
    pager.raise_incident("CRITICAL", "x" * 4000 + "😀" * 24, "web", now=T0)
    pager.run(now=T0)
    [sent] = tg.delivered
    assert len(sent["text"].encode("utf-16-le")) // 2 <= 4096
    assert "…" in sent["text"]


def test_email_retries_4xx_not_5xx(smtp, log_dir):
    smtp.script_data("451 4.3.0 Mailbox busy, try later", "250", "554 5.7.1 rejected")
    first = pager.raise_incident("CRITICAL", "disk full on a", "host", now=T0)
    pager.run(now=T0)
    assert [(e["status"], e["ok"]) for e in page_events(log_dir, "email")] == [(451, False), (250, True)]
    assert len(smtp.messages) == 1 and outbox_row(first["id"], "email")["state"] == "ok"
    second = pager.raise_incident("CRITICAL", "cpu on fire", "host", now=T0 + 1)
    pager.run(now=T0 + 1)
    assert outbox_row(second["id"], "email")["state"] == "failed"
    assert [(e["status"], e["ok"]) for e in page_events(log_dir, "email")][2:] == [(554, False)]


def test_email_timeout_is_retried(smtp, monkeypatch, log_dir):
    monkeypatch.setenv("SMTP_TIMEOUT_S", "0.5")
    smtp.delay_data(1.5)
    out = pager.raise_incident("CRITICAL", "disk full", "host", now=T0)
    pager.run(now=T0)
    statuses = [e["status"] for e in page_events(log_dir, "email")]
    assert statuses[0] in ("TimeoutError", "SMTPServerDisconnected") and statuses[-1] == 250
    assert outbox_row(out["id"], "email")["state"] == "ok"


@pytest.mark.parametrize("tls", ["starttls", "ssl"])
def test_email_tls_verifies_certificates(tmp_path, monkeypatch, log_dir, tls):
    cert, key, ca = make_cert(tmp_path / "pki")
    with FakeSMTP(tls=tls, cert=(cert, key), auth=True) as fake:
        fake.configure(monkeypatch, tls)
        monkeypatch.setenv("SMTP_USER", USER)
        monkeypatch.setenv("SMTP_PASS", PASSWORD)
        # an untrusted certificate is refused (no retry in the round), nothing is sent
        out = pager.raise_incident("CRITICAL", "tls check", "host", now=T0)
        pager.run(now=T0)
        assert outbox_row(out["id"], "email")["state"] == "failed"
        assert page_events(log_dir, "email")[0]["status"] == "SSLCertVerificationError"
        assert fake.messages == []
        # trusting the CA, the next round delivers over TLS with the login
        monkeypatch.setenv("SSL_CERT_FILE", str(ca))
        pager.run(now=T0 + 400)
        assert len(fake.messages) == 1 and fake.logins == [(USER, PASSWORD)]
        assert outbox_row(out["id"], "email")["state"] == "ok"


def test_log_flood_makes_one_page(tg, smtp, log_dir):
    line = {"ts": None, "level": "CRITICAL", "msg": "payment provider timeout after 30s"}
    with open(log_dir / "app.ndjson", "wb") as fh:
        for i in range(1000):
            line["ts"] = T0 - 60 + i * 0.01
            line["msg"] = f"payment provider timeout after {i % 40}s"
            fh.write(orjson.dumps(line) + b"\n")
        fh.write(b'{"level":"INFO","msg":"fine"}\nnot json\n')
    result = pager.run(now=T0)
    assert result["ingest"]["critical"] == 1000 and len(result["ingest"]["incidents"]) == 1
    assert result["ingest"]["new_incidents"] == 1
    assert len(tg.delivered) == 1 and len(smtp.messages) == 1
    group = pager.summarize(now=T0)["groups"][0]
    assert (group["count"], group["source"], group["pages"]) == (1000, "app", 1)
    # more of the same within the hour: counted, not paged; nothing new: nothing read
    with open(log_dir / "app.ndjson", "ab") as fh:
        fh.write(orjson.dumps({"level": "critical", "msg": "payment provider timeout after 9s"}) + b"\n")
    again = pager.run(now=T0 + 60)["ingest"]
    assert again["incidents"][0]["deduped"] is True and again["new_incidents"] == 0
    assert pager.run(now=T0 + 61)["ingest"]["files"] == 0
    assert len(tg.delivered) == 1 and pager.summarize(now=T0 + 62)["groups"][0]["count"] == 1001


def test_a_big_backlog_is_read_in_short_transactions(tg, monkeypatch, log_dir):
    from echoops.core.pager import logs

    monkeypatch.setattr(logs, "READ_CHUNK", 4096)
    monkeypatch.setattr(logs, "BATCHES_PER_TRANSACTION", 2)
    with open(log_dir / "worker.ndjson", "wb") as fh:
        for i in range(1000):
            fh.write(orjson.dumps({"severity": "CRITICAL", "msg": f"job {i} crashed", "pad": "x" * 50}) + b"\n")
        fh.write(b'{"severity":"CRITICAL","msg":"partial line without newline"')
    result = pager.run(now=T0)
    assert result["ingest"]["lines"] == 1000 and result["ingest"]["critical"] == 1000
    assert len(result["ingest"]["incidents"]) > 5  # one per slice, all the same incident
    assert {i["id"] for i in result["ingest"]["incidents"]} == {result["ingest"]["incidents"][0]["id"]}
    assert result["ingest"]["new_incidents"] == 1  # the later slices only dedup into it
    assert len(tg.delivered) == 1
    assert pager.summarize(now=T0)["groups"][0]["count"] == 1000
    assert pager.run(now=T0 + 1)["ingest"]["lines"] == 0


def test_two_drainers_never_send_a_delivery_twice(tg, smtp):
    import threading

    for i in range(6):
        pager.raise_incident("CRITICAL", f"problem kind {chr(97 + i)}", "svc", now=T0)
    s = config.settings()
    threads = [threading.Thread(target=pager_outbox.drain, args=(s,), kwargs={"now": T0}) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(tg.delivered) == 6 and len(smtp.messages) == 6
    assert len({m["text"] for m in tg.delivered}) == 6
    assert len(tg.requests) == 6


def test_background_drain_sends_a_new_page_during_another_ones_backoff(tg, monkeypatch):
    monkeypatch.setattr(pager_outbox, "BACKOFF_BASE_S", 20.0)  # the first page waits 20-30 s
    tg.script(server_error())
    drainer = pager_outbox.start_background_drain(config.settings())
    try:
        pager.raise_incident("CRITICAL", "first problem", "a")
        deadline = time.monotonic() + 5
        while len(tg.requests) < 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        start = time.monotonic()
        pager.raise_incident("CRITICAL", "second problem", "b")
        assert tg.wait_delivered(1, timeout=5)
        assert time.monotonic() - start < 3
        assert "second problem" in tg.delivered[0]["text"]
    finally:
        drainer.close()
    assert not drainer.thread.is_alive()


def test_a_crash_right_after_a_successful_send_does_not_send_again(tg, log_dir):
    pager.raise_incident("CRITICAL", "db down", "db", now=T0)
    log = log_dir / "incidents.ndjson"
    kept = log.read_bytes()
    log.unlink()
    log.mkdir()  # the event log cannot be written: the drainer dies right after the send
    with pytest.raises(IsADirectoryError):
        pager.run(now=T0)
    assert len(tg.delivered) == 1
    log.rmdir()
    log.write_bytes(kept)
    assert pager.run(now=T0 + 1)["deliveries"] == {}  # the store already said ok
    assert len(tg.delivered) == 1 and len(tg.requests) == 1


@given(msg=st.text(min_size=1, max_size=4096).filter(lambda m: m.strip() and len(m.encode()) <= 4096))
def test_any_valid_msg_fits_one_telegram_message(msg):
    from echoops.core.pager.channels import Page
    from echoops.core.pager.channels.telegram import MAX_CHARS, compose

    rich, plain = compose(Page("inc_x", "CRITICAL", "s" * 100, msg, "f" * 64, 10**9, T0))
    assert len(rich.encode("utf-16-le")) // 2 <= MAX_CHARS
    assert len(plain.encode("utf-16-le")) // 2 <= MAX_CHARS
    assert plain.count("\n\n") >= 2


def test_request_logging_never_shows_the_bot_token(tg, caplog):
    # httpx logs each request URL at INFO, and the token sits in the URL path: a host app
    # (or gunicorn) that turns on INFO logging must still not see it.
    import logging

    caplog.set_level(logging.DEBUG)
    pager.raise_incident("CRITICAL", "db down", "db", now=T0)
    assert pager.run(now=T0)["deliveries"] == {"ok": 1}
    assert len(tg.delivered) == 1
    assert tg.token.split(":")[1] not in caplog.text


def test_starttls_required_but_not_offered_sends_nothing(smtp, monkeypatch, log_dir):
    # SMTP_TLS=starttls against a server without STARTTLS: a permanent refusal, never plain text
    monkeypatch.setenv("SMTP_TLS", "starttls")
    out = pager.raise_incident("CRITICAL", "tls downgrade", "host", now=T0)
    assert pager.run(now=T0)["deliveries"] == {"failed": 1}
    assert smtp.messages == []
    assert [(e["status"], e["ok"]) for e in page_events(log_dir, "email")] == [("SMTPNotSupportedError", False)]
    assert outbox_row(out["id"], "email")["state"] == "failed"


def test_telegram_unreachable_is_retried(tg, monkeypatch, log_dir):
    import socket

    with socket.socket() as sock:  # a loopback port nobody listens on: connection refused
        sock.bind(("127.0.0.1", 0))
        dead = sock.getsockname()[1]
    monkeypatch.setenv("TELEGRAM_API_BASE", f"http://127.0.0.1:{dead}")
    out = pager.raise_incident("CRITICAL", "db down", "db", now=T0)
    assert pager.run(now=T0)["deliveries"] == {"pending": 4, "failed": 1}
    assert [(e["attempt"], e["status"], e["ok"]) for e in page_events(log_dir)] == [
        (n, "ConnectError", False) for n in range(1, 6)
    ]
    monkeypatch.setenv("TELEGRAM_API_BASE", tg.url)  # back online: the next round delivers
    assert pager.run(now=T0 + 400)["deliveries"] == {"ok": 1}
    assert len(tg.delivered) == 1 and outbox_row(out["id"], "telegram")["state"] == "ok"


def test_429_with_a_junk_retry_after_falls_back_to_backoff(tg, log_dir):
    tg.script(
        (429, {"ok": False, "error_code": 429, "description": "Too Many Requests", "parameters": {"retry_after": {}}})
    )
    pager.raise_incident("CRITICAL", "db down", "db", now=T0)
    assert pager.run(now=T0)["deliveries"] == {"pending": 1, "ok": 1}
    assert [(e["status"], e["ok"]) for e in page_events(log_dir)] == [(429, False), (200, True)]
