"""raise_incident: validation, fingerprints, dedup windows, the outbox rows and the event log."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from echoops.core import pager
from echoops.core.errors import ValidationError
from echoops.core.pager.fingerprint import fingerprint, normalize

# the store and feature tests run on both backends (SQLite; PostgreSQL: tests/postgres_server.py)
pytestmark = pytest.mark.backends

T0 = 1_800_000_000.0


def events(log_dir, name="incidents.ndjson"):
    path = log_dir / name
    return [orjson.loads(line) for line in path.read_bytes().splitlines()] if path.exists() else []


def outbox(settings):
    rows = pager.db(settings).execute(
        "SELECT incident_id, channel, state FROM pager_outbox "
        "ORDER BY created_at, CASE channel WHEN 'telegram' THEN 0 ELSE 1 END"
    )
    return [tuple(r) for r in rows]


def test_volatile_parts_group_together():
    assert normalize("timeout after 31s") == normalize("timeout after 29s") == "timeout after #s"
    assert normalize("req 3f2a9c1b77 failed for 550e8400-e29b-41d4-a716-446655440000 at 0xDEADBEEF") == (
        "req # failed for # at #"
    )
    assert normalize("deadline facade") == "deadline facade"  # hex-looking words stay words
    assert fingerprint("api", "timeout after 31s") == fingerprint("api", "timeout after 29s")
    assert fingerprint("api", "timeout after 31s") != fingerprint("worker", "timeout after 31s")
    assert len(fingerprint("api", "x")) == 64


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (("BOGUS", "m", "s"), "severity"),
        ((None, "m", "s"), "severity"),
        (("CRITICAL", "", "s"), "msg"),
        (("CRITICAL", "   ", "s"), "msg"),
        (("CRITICAL", 5, "s"), "msg"),
        (("CRITICAL", "x" * 4097, "s"), "msg"),
        (("CRITICAL", "é" * 2049, "s"), "msg"),  # 4098 bytes: the limit is bytes, not chars
        (("CRITICAL", "m", ""), "source"),
        (("CRITICAL", "m", "s" * 101), "source"),
        (("CRITICAL", "m", "s", []), "meta"),
        (("CRITICAL", "m", "s", "{}"), "meta"),
        (("CRITICAL", "m", "s", {"k": "v" * 16400}), "meta"),
        (("CRITICAL", "m", "s", None, ""), "fingerprint"),
        (("CRITICAL", "m", "s", None, 7), "fingerprint"),
    ],
)
def test_invalid_input_names_the_field(settings, log_dir, args, field):
    with pytest.raises(ValidationError) as exc:
        pager.raise_incident(*args, now=T0, s=settings)
    assert exc.value.field == field
    assert not (log_dir / "incidents.ndjson").exists()


def test_a_request_body_with_an_unknown_field_is_refused_by_core(settings, log_dir):
    body = {"severity": "INFO", "msg": "m", "source": "s", "sevrity": "CRITICAL", "colour": "red"}
    with pytest.raises(ValidationError) as exc:
        pager.raise_request(body, now=T0, s=settings)
    assert (exc.value.field, exc.value.detail) == (
        "colour",
        "unknown field 'colour' (allowed: severity, msg, source, meta, fingerprint)",
    )
    assert not (log_dir / "incidents.ndjson").exists()
    with pytest.raises(ValidationError) as exc:
        pager.raise_request({"msg": "m", "source": "s"}, now=T0, s=settings)
    assert exc.value.field == "severity"
    out = pager.raise_request({"severity": "info", "msg": "m", "source": "s", "meta": {"k": 1}}, now=T0, s=settings)
    assert (out["deduped"], out["channels"]) == (False, {})
    assert events(log_dir)[0]["meta"] == {"k": 1}


def test_limits_are_inclusive(settings):
    out = pager.raise_incident("info", "x" * 4096, "s" * 100, {"k": "v" * 16000}, now=T0, s=settings)
    assert out["deduped"] is False and out["channels"] == {}


def test_critical_without_credentials_is_skipped_visibly(settings, log_dir):
    out = pager.raise_incident("critical", "SLO burn", "slo", {"burn": 14.4}, now=T0, s=settings)
    assert set(out) == {"id", "fingerprint", "deduped", "channels", "state"}
    assert out["deduped"] is False
    assert out["fingerprint"] == fingerprint("slo", "SLO burn")
    assert out["channels"] == {"telegram": "skipped", "email": "skipped"}
    assert outbox(settings) == [(out["id"], "telegram", "skipped"), (out["id"], "email", "skipped")]
    [event] = events(log_dir)
    assert event["event"] == "incident" and event["ts"] == "2027-01-15T08:00:00.000Z"
    assert {k: event[k] for k in ("id", "severity", "source", "msg", "meta", "count", "deduped")} == {
        "id": out["id"],
        "severity": "CRITICAL",
        "source": "slo",
        "msg": "SLO burn",
        "meta": {"burn": 14.4},
        "count": 1,
        "deduped": False,
    }


def test_configured_channels_are_pending(monkeypatch, log_dir):
    from echoops.core import config

    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "123:abc")
    monkeypatch.setenv("TELEGRAM_CHAT_ID", "42")
    monkeypatch.setenv("SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("SMTP_FROM", "pager@example.com")
    monkeypatch.setenv("SMTP_TO", "a@example.com,b@example.com")
    s = config.settings()
    out = pager.raise_incident("CRITICAL", "disk full", "host1", now=T0, s=s)
    assert out["channels"] == {"telegram": "pending", "email": "pending"}


def test_dedup_across_the_one_hour_boundary(settings, log_dir):
    first = pager.raise_incident("CRITICAL", "timeout after 31s", "api", now=T0, s=settings)
    again = pager.raise_incident("CRITICAL", "timeout after 29s", "api", now=T0 + 3599, s=settings)
    assert again == {
        "id": first["id"],
        "fingerprint": first["fingerprint"],
        "deduped": True,
        "channels": {},
        "state": "open",
    }
    later = pager.raise_incident("CRITICAL", "timeout after 30s", "api", now=T0 + 3600, s=settings)
    assert later["deduped"] is False and later["id"] != first["id"]
    assert later["channels"] == {"telegram": "skipped", "email": "skipped"}
    rows = pager.db(settings).execute(
        "SELECT id, count, first_seen, last_seen FROM pager_incidents ORDER BY first_seen"
    )
    assert [tuple(r) for r in rows] == [(first["id"], 2, T0, T0 + 3599), (later["id"], 1, T0 + 3600, T0 + 3600)]
    assert len(outbox(settings)) == 4  # two pages (two channels each), not three
    assert [e["count"] for e in events(log_dir)] == [1, 2, 1]


def test_warning_then_critical_still_pages(settings):
    warn = pager.raise_incident("WARNING", "queue slow", "worker", now=T0, s=settings)
    assert warn["channels"] == {} and warn["deduped"] is False
    crit = pager.raise_incident("CRITICAL", "queue slow", "worker", now=T0 + 60, s=settings)
    assert crit["deduped"] is False and crit["channels"] == {"telegram": "skipped", "email": "skipped"}
    warn2 = pager.raise_incident("WARNING", "queue slow", "worker", now=T0 + 120, s=settings)
    assert warn2 == {
        "id": crit["id"],
        "fingerprint": crit["fingerprint"],
        "deduped": True,
        "channels": {},
        "state": "open",
    }
    # two rows (the WARNING one, then the paged one), one group, shown at its worst severity
    [group] = pager.summarize(now=T0 + 120, s=settings)["groups"]
    assert (group["severity"], group["count"], group["pages_raised"]) == ("CRITICAL", 3, 1)
    # no channel is configured: the page was raised, nobody was told
    assert (group["paged"], group["pages"], group["paged_at"]) == (False, 0, None)


def test_explicit_fingerprint_groups_different_messages(settings):
    a = pager.raise_incident("CRITICAL", "burn 14x", "slo", fingerprint="slo-burn", now=T0, s=settings)
    b = pager.raise_incident("CRITICAL", "other words", "slo", fingerprint="slo-burn", now=T0 + 5, s=settings)
    assert a["fingerprint"] == "slo-burn" and b["deduped"] is True and b["id"] == a["id"]


def test_repeat_window_follows_config(monkeypatch, log_dir):
    from echoops.core import config

    monkeypatch.setenv("PAGER_REPEAT_MIN", "5")
    s = config.settings()
    pager.raise_incident("CRITICAL", "x", "y", now=T0, s=s)
    assert pager.raise_incident("CRITICAL", "x", "y", now=T0 + 299, s=s)["deduped"] is True
    assert pager.raise_incident("CRITICAL", "x", "y", now=T0 + 300, s=s)["deduped"] is False


def test_redact_masks_bot_urls_and_configured_secrets(monkeypatch):
    from echoops.core import config
    from echoops.core.redact import redact

    url = "https://api.telegram.org/bot123456:AAH-x_9/sendMessage"
    assert redact(f"ConnectError for {url}") == "ConnectError for https://api.telegram.org/bot<redacted>/sendMessage"
    assert redact("/bot42%3Aabc/sendMessage") == "/bot<redacted>/sendMessage"
    assert redact("the bottom line, /bottles") == "the bottom line, /bottles"  # only token-shaped paths
    monkeypatch.setenv("SMTP_USER", "pager@example.com")
    monkeypatch.setenv("SMTP_PASS", "hunter2-long-pass")
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "999:zzzsecret")
    s = config.settings()
    assert redact("login hunter2-long-pass failed; token 999:zzzsecret", s) == (
        "login <redacted> failed; token <redacted>"
    )
    assert redact("x abc123 y", extra=["abc123"]) == "x <redacted> y"


@given(
    a=st.integers(min_value=0, max_value=10**12),
    b=st.integers(min_value=0, max_value=10**12),
    u=st.uuids(),
    h=st.binary(min_size=4, max_size=16),
)
def test_fingerprint_ignores_numbers_uuids_and_hex_ids(a, b, u, h):
    one = f"req {u} to shard {a} failed after {b}ms (trace {h.hex()}1)"
    two = f"req 00000000-0000-0000-0000-000000000000 to shard {b} failed after {a}ms (trace 0f0f0f0f1)"
    assert fingerprint("api", one) == fingerprint("api", two)


def test_summarize_groups_by_fingerprint_over_the_window(settings, log_dir):
    from echoops.core import files

    pager.raise_incident("CRITICAL", "timeout after 31s", "api", now=T0 - 25 * 3600)  # outside 24h
    first = pager.raise_incident("CRITICAL", "timeout after 31s", "api", now=T0 - 7200)
    pager.raise_incident("CRITICAL", "timeout after 29s", "api", now=T0 - 7000)  # deduped
    second = pager.raise_incident("CRITICAL", "timeout after 5s", "api", now=T0 - 600)  # a new hour: paged again
    pager.raise_incident("WARNING", "disk 91% full", "host1", now=T0 - 300)
    pager.raise_incident("ERROR", "disk 95% full", "host1", now=T0 - 200)
    pager.db(settings).execute(
        "UPDATE pager_outbox SET state='failed' WHERE incident_id=? AND channel='telegram'", (first["id"],)
    )
    body = pager.summarize(now=T0, s=settings)
    assert body["generated_at"] == "2027-01-15T08:00:00.000Z" and body["hours"] == 24
    disk, api = body["groups"]  # newest last_seen first
    assert (disk["source"], disk["severity"], disk["count"], disk["paged"], disk["pages"]) == (
        "host1",
        "ERROR",
        2,
        False,
        0,
    )
    assert disk["deliveries"] == {} and disk["first_seen"] == "2027-01-15T07:55:00.000Z"
    keys = ("fingerprint", "severity", "count", "paged", "pages", "pages_raised", "latest_id", "failed_deliveries")
    assert {k: api[k] for k in keys} == {
        "fingerprint": first["fingerprint"],
        "severity": "CRITICAL",
        "count": 3,
        "paged": False,  # one page failed, the other was skipped by every channel: nobody was told
        "pages": 0,
        "pages_raised": 2,
        "latest_id": second["id"],
        "failed_deliveries": 1,
    }
    assert api["deliveries"] == {"telegram": "skipped", "email": "skipped"}  # the latest page's
    assert api["first_seen"] == "2027-01-15T06:00:00.000Z" and api["last_seen"] == "2027-01-15T07:50:00.000Z"
    assert body["totals"] == {
        "groups": 2,
        "incidents": 5,
        "pages": 0,
        "pages_raised": 2,
        "by_severity": {"CRITICAL": 3, "ERROR": 2, "WARNING": 0, "INFO": 0},
        "deliveries": {"ok": 0, "failed": 1, "unconfirmed": 0, "pending": 0, "skipped": 3, "cancelled": 0},
        "by_state": {"open": 2, "acked": 0, "silenced": 0, "resolved": 0},
    }
    assert [(a["id"], a["channel"], a["state"]) for a in body["attention"]] == [(first["id"], "telegram", "failed")]
    assert files.read_json(log_dir / "incident_summary.json") == body
    assert [g["source"] for g in pager.summarize(hours="0.1", now=T0, s=settings)["groups"]] == ["host1"]
    assert files.read_json(log_dir / "incident_summary.json") == body  # the file holds the last 24h
    for bad in (0, -1, "x", 745, float("nan")):
        with pytest.raises(ValidationError) as exc:
            pager.summarize(hours=bad, now=T0, s=settings)
        assert exc.value.field == "hours"


def test_log_lines_become_incidents_by_the_issue_rules(settings, log_dir):
    lines = [
        {"ts": T0 - 10, "level": "CRITICAL", "msg": "disk full", "source": "host7"},  # source from the line
        {"ts": T0 - 10, "severity": "critical", "message": "queue stuck"},  # source = file stem
        {"ts": T0 - 25 * 3600, "level": "CRITICAL", "msg": "old news"},  # stale: counted, not raised
        {"ts": T0 - 10, "level": "CRITICAL", "msg": "é" * 3000},  # 6000 bytes: cut to 4 KiB, still raised
        {"ts": T0 - 10, "level": "CRITICAL"},  # no msg: a bad line
        {"ts": T0 - 10, "level": "ERROR", "msg": "not critical"},
    ]
    (log_dir / "worker.ndjson").write_bytes(b"".join(orjson.dumps(x) + b"\n" for x in lines))
    # echoops' own output logs are never read back, even when a line says CRITICAL
    (log_dir / "slo_budget.ndjson").write_bytes(orjson.dumps({"severity": "CRITICAL", "msg": "mine"}) + b"\n")
    ingest = pager.run(now=T0, s=settings)["ingest"]
    assert {k: ingest[k] for k in ("files", "lines", "critical", "stale", "bad")} == {
        "files": 1,
        "lines": 6,
        "critical": 3,
        "stale": 1,
        "bad": 1,
    }
    raised = [(e["source"], e["msg"], e["severity"]) for e in events(log_dir) if e["event"] == "incident"]
    assert sorted(raised) == [
        ("host7", "disk full", "CRITICAL"),
        ("worker", "queue stuck", "CRITICAL"),
        ("worker", "é" * 2048, "CRITICAL"),
    ]
