"""Answering pages (issue 15) in process: Telegram buttons against the loopback Bot API, acks,
resolves, silences, escalation and the state every change records.

Time is simulated through `now=` (`pager.run(now=...)` attempts what is due at that instant).
"""

from __future__ import annotations

import dataclasses
import time

import orjson
import pytest

from echoops.core import config, pager, signing
from echoops.core.errors import NotFound, ValidationError
from echoops.core.pager import buttons, presses
from tests.conftest import wait_for
from tests.fakes_telegram import ALICE, BOB, DEFAULT_CHAT, FakeTelegram

# the store and feature tests run on both backends (SQLite; PostgreSQL: tests/postgres_server.py)
pytestmark = pytest.mark.backends

T0 = time.time()
SECRET = "pager-signing-secret-0123456789abcdefghij"
OTHER_CHAT = "-1009999999999"
ESCALATE_CHAT = "-1005555555555"


@pytest.fixture
def keys(monkeypatch):
    monkeypatch.setenv("PAGER_SIGNING_SECRET", SECRET)


@pytest.fixture
def tg(tg, keys):
    """conftest's fake Bot API, with PAGER_SIGNING_SECRET set (the buttons are signed)."""
    return tg


def events(log_dir, *names):
    lines = [orjson.loads(x) for x in (log_dir / "incidents.ndjson").read_bytes().splitlines()]
    return [e for e in lines if e["event"] in names]


def group(fingerprint, now):
    return next(g for g in pager.summarize(now=now)["groups"] if g["fingerprint"] == fingerprint)


def page_and_deliver(msg="db down", source="db", now=T0):
    raised = pager.raise_incident("CRITICAL", msg, source, now=now)
    pager.run(now=now)
    return raised


# --- Telegram buttons -------------------------------------------------------------------------


def test_a_page_carries_ack_resolve_and_silence_buttons_with_short_signed_data(tg, log_dir):
    raised = page_and_deliver()
    (chat, message_id), message = tg.last_message()
    assert chat == DEFAULT_CHAT
    assert list(tg.buttons(message)) == ["Ack", "Resolve", "Silence 1h"]
    for data in tg.buttons(message).values():
        assert len(data.encode()) <= 64  # the Bot API limit (the fake refuses more too)
        assert raised["id"].removeprefix("inc_") in data  # opaque to people, but it names the incident
        assert buttons.parse(config.settings(), data, DEFAULT_CHAT)[1] == raised["id"]
        assert buttons.parse(config.settings(), data, OTHER_CHAT) is None  # bound to the chat it went to
    # the outbox kept the message_id, so the page can be edited later
    ref = pager.db(config.settings()).execute(
        "SELECT ref FROM pager_outbox WHERE incident_id=? AND channel='telegram'", (raised["id"],)
    )
    assert ref.fetchone()[0] == str(message_id)


def test_a_press_in_the_on_call_chat_acks_is_answered_edits_the_page_and_holds_repeats(tg, log_dir):
    raised = page_and_deliver()
    key, _ = tg.last_message()
    query = tg.press("Ack", user=ALICE)
    run = pager.run(now=T0 + 60)
    assert run["buttons"] == {"polled": True, "updates": 1, "acted": 1, "ignored": 0, "error": None}
    assert tg.answers[query] == "Acknowledged. Repeats held until " + pager_time(T0 + 60 + 4 * 3600) + "."
    g = group(raised["fingerprint"], T0 + 120)
    assert (g["state"], g["acked_by"]) == ("acked", "@alice (Telegram)")
    assert g["acked_at"] == config_iso(T0 + 60) and g["ack_until"] == config_iso(T0 + 60 + 4 * 3600)
    # the page now says who acked it; only Resolve is left under it
    shown = tg.messages[key]
    assert shown["text"].endswith(
        f"<b>Acknowledged by @alice (Telegram) at {pager_time(T0 + 60)} (repeats held until "
        f"{pager_time(T0 + 60 + 4 * 3600)})</b>"
    )
    assert list(tg.buttons(shown)) == ["Resolve"]
    [ack] = events(log_dir, "incident_ack")
    assert (ack["id"], ack["by"], ack["ids"]) == (raised["id"], "@alice (Telegram)", [raised["id"]])
    [press] = events(log_dir, "button_press")
    assert (press["result"], press["action"], press["incident"], press["chat"]) == (
        "acked",
        "ack",
        raised["id"],
        DEFAULT_CHAT,
    )
    # 65 minutes later the same problem is raised again: recorded and counted, not paged
    sent = len(tg.sent())
    again = pager.raise_incident("CRITICAL", "db down", "db", now=T0 + 65 * 60)
    assert again == {
        "id": raised["id"],
        "fingerprint": raised["fingerprint"],
        "deduped": True,
        "channels": {},
        "state": "acked",
    }
    assert pager.run(now=T0 + 65 * 60)["deliveries"] == {}
    assert len(tg.sent()) == sent
    assert group(raised["fingerprint"], T0 + 65 * 60)["count"] == 2


def pager_time(ts: float) -> str:
    return config_iso(ts)[11:16] + " UTC"


def config_iso(ts: float) -> str:
    from echoops.core import clock

    return clock.iso(ts)


def test_presses_from_another_chat_with_forged_data_or_twice_change_nothing(tg, log_dir, monkeypatch):
    tg.add_chat(OTHER_CHAT)
    raised = page_and_deliver()
    key, message = tg.last_message()
    real = tg.buttons(message)["Ack"]
    forged = real[:-1] + ("A" if real[-1] != "A" else "B")
    other_incident = "a." + "0" * 22 + "." + real.rsplit(".", 1)[1]
    queries = [
        tg.press("Ack", from_chat=OTHER_CHAT, user=BOB),  # the bot's message seen in another chat
        tg.press(data=forged, user=BOB),  # a modified client
        tg.press(data=other_incident, user=BOB),
        tg.press(data="a." + "f" * 22 + ".0123456789abcdef", user=BOB),
        tg.press(data="nonsense", user=BOB),
    ]
    run = pager.run(now=T0 + 30)
    assert run["buttons"] == {"polled": True, "updates": 5, "acted": 0, "ignored": 5, "error": None}
    assert [tg.answers[q] for q in queries] == [
        "These buttons work only in the on-call chat.",
        "This button is not valid.",
        "This button is not valid.",
        "This button is not valid.",
        "This button is not valid.",
    ]
    assert group(raised["fingerprint"], T0 + 60)["state"] == "open"
    assert events(log_dir, "incident_ack") == [] and tg.messages[key]["edits"] == 0
    assert [e["result"] for e in events(log_dir, "button_press")] == [
        "ignored: another chat",
        "ignored: forged or stale data",
        "ignored: forged or stale data",
        "ignored: forged or stale data",
        "ignored: forged or stale data",
    ]
    # a double press: the first acks, the second is answered and ignored
    first, second = tg.press("Ack", message=key, user=ALICE), tg.press("Ack", message=key, user=BOB)
    assert pager.run(now=T0 + 90)["buttons"]["acted"] == 1
    assert tg.answers[second] == "Already acknowledged by @alice (Telegram)."
    assert tg.answers[first].startswith("Acknowledged.")
    assert len(events(log_dir, "incident_ack")) == 1
    # a press after the incident was resolved (a stale button) is answered and ignored
    pager.resolve(raised["id"], by="ops", now=T0 + 120)
    late = tg.press(data=real, user=BOB)
    pager.run(now=T0 + 150)
    assert tg.answers[late] == "Already resolved by ops."
    # data signed with a key that was rotated out does not verify either
    monkeypatch.setenv("PAGER_SIGNING_SECRET", "another-secret-0123456789abcdefghijklmn")
    assert buttons.parse(config.settings(), real, DEFAULT_CHAT) is None


def test_resolve_and_silence_buttons(tg, log_dir):
    db = page_and_deliver("db down", "db")
    db_key, _ = tg.last_message()
    web = page_and_deliver("web 502s", "web", now=T0 + 1)
    web_key, _ = tg.last_message()
    resolve_q = tg.press("Resolve", message=db_key, user=ALICE)
    silence_q = tg.press("Silence 1h", message=web_key, user=BOB)
    run = pager.run(now=T0 + 60)
    assert run["buttons"]["acted"] == 2
    assert tg.answers[resolve_q] == "Resolved. A RESOLVED notice goes to every channel that got the page."
    assert tg.answers[silence_q] == f"Silenced for 1h (until {pager_time(T0 + 60 + 3600)})."
    assert group(db["fingerprint"], T0 + 60)["state"] == "resolved"
    # the RESOLVED notice replies to the page; the page lost its buttons
    notice = tg.sent()[-1] if "RESOLVED" in tg.sent()[-1]["text"] else tg.sent()[-2]
    assert notice["reply_parameters"] == {"message_id": db_key[1], "allow_sending_without_reply": True}
    assert tg.messages[db_key]["reply_markup"] is None
    assert "Incident resolved by @alice (Telegram)" in tg.messages[db_key]["text"]
    g = group(web["fingerprint"], T0 + 60)
    assert g["state"] == "silenced" and g["silence"].startswith("sil_")
    assert list(tg.buttons(tg.messages[web_key])) == ["Ack", "Resolve"]
    [listed] = pager.list_silences(now=T0 + 60)["silences"]
    assert (listed["match"], listed["created_by"], listed["left_s"]) == (
        {"fingerprint": web["fingerprint"]},
        "Bob Builder (Telegram)",
        3600,
    )
    # while silenced the web incident is neither repeated nor escalated; after the hour it pages again
    assert pager.raise_incident("CRITICAL", "web 502s", "web", now=T0 + 1800)["state"] == "silenced"
    assert pager.run(now=T0 + 1800)["upkeep"]["escalated"] == 0
    later = pager.raise_incident("CRITICAL", "web 502s", "web", now=T0 + 3700)
    assert (later["state"], later["deduped"], later["channels"]["telegram"]) == ("open", False, "pending")


@pytest.mark.sqlite_only
def test_only_one_process_reads_presses_and_the_offset_is_kept(tg, log_dir):
    s = config.settings()
    page_and_deliver()
    conn = pager.db(s)
    # another process (a server worker) holds the poll lease: `page run` leaves the presses to it
    with conn:
        conn.execute("UPDATE pager_poll SET owner=?, lease_until=?", ("otherhost:1:1", time.time() + 60))
    query = tg.press("Ack")
    polls = len(tg.sent("getUpdates"))
    assert pager.run(now=T0 + 10)["buttons"]["polled"] is False
    assert len(tg.sent("getUpdates")) == polls and query not in tg.answers
    # the lease ran out (the worker died): the next reader takes over and handles the press once
    with conn:
        conn.execute("UPDATE pager_poll SET lease_until=?", (time.time() - 1,))
    assert pager.run(now=T0 + 20)["buttons"]["acted"] == 1
    offset = conn.execute("SELECT next_offset, owner FROM pager_poll").fetchone()
    [press] = events(log_dir, "button_press")
    assert offset[0] == press["update_id"] + 1 and offset[1] is None  # the next offset kept; the lease released
    # Telegram re-sends an update that was never confirmed (the next getUpdates confirms it);
    # a reader that sees it again skips it, because the stored offset moved past it
    tg.updates.insert(0, {"update_id": offset[0] - 1, "callback_query": {"id": "x", "data": "a"}})
    again = presses.poll(s, now=T0 + 30)
    assert again["updates"] == 0 and len(events(log_dir, "button_press")) == 1


def test_the_poller_thread_reads_presses_backs_off_on_errors_and_releases_its_lease(tg, log_dir, monkeypatch):
    s = config.settings()
    page_and_deliver()
    poller = presses.ButtonPoller(s, long_poll_s=1)
    poller.IDLE_S = 0.05
    poller.start()
    try:
        query = tg.press("Ack", user=ALICE)
        assert tg.wait_answered(query, timeout=10).startswith("Acknowledged.")
        assert group_state(s) == "acked"
        tg.webhook = True  # getUpdates now fails: the thread logs it and backs off, it does not die
        wait_for(lambda: len(errors(tg)) >= 2, what="two refused polls")
        tg.webhook = False
        second = tg.press(data=tg.buttons(tg.last_message()[1])["Resolve"], user=BOB)
        assert tg.wait_answered(second, timeout=10).startswith("Resolved.")
        assert poller.thread.is_alive()
    finally:
        poller.close(timeout=10)
    assert not poller.thread.is_alive()
    assert pager.db(s).execute("SELECT owner FROM pager_poll").fetchone()[0] is None
    monkeypatch.delenv("PAGER_SIGNING_SECRET")
    assert presses.start_poller(config.settings()) is None  # no keys: no buttons to read
    monkeypatch.delenv("TELEGRAM_CHAT_ID")
    assert presses.start_poller(config.settings()) is None


def group_state(s) -> str:
    return pager.summarize(s=s)["groups"][0]["state"]


def errors(tg) -> list:
    return [r for r in tg.requests if r["path"].endswith("/getUpdates") and r["status"] == 409]


def test_get_updates_failures_are_reported_not_raised(tg, log_dir):
    tg.webhook = True  # someone set a webhook on the bot: getUpdates is refused
    page_and_deliver()
    out = pager.run(now=T0 + 5)["buttons"]
    assert out["polled"] is True and out["error"].startswith("Conflict: can't use getUpdates method while webhook")
    row = pager.db(config.settings()).execute("SELECT last_error, owner FROM pager_poll").fetchone()
    assert row[0] == out["error"] and row[1] is None


def test_without_signing_keys_pages_go_out_without_buttons_and_nothing_polls(monkeypatch, log_dir):
    with FakeTelegram() as tg:
        tg.configure(monkeypatch)
        assert any("pages carry no Ack/Resolve buttons" in w for w in config.settings().warnings)
        page_and_deliver()
        assert "reply_markup" not in tg.delivered[0]
        assert pager.run(now=T0 + 5)["buttons"]["polled"] is False and tg.sent("getUpdates") == []


# --- ack, resolve ---------------------------------------------------------------------------------


def test_resolve_sends_one_notice_to_each_channel_that_got_the_page_and_reopens_the_fingerprint(
    tg, smtp, log_dir, monkeypatch
):
    monkeypatch.setenv("PAGER_ESCALATE_MIN", "0")  # two pages an hour apart, nothing else
    raised = page_and_deliver()
    pager.raise_incident("CRITICAL", "db down", "db", now=T0 + 3700)  # the next hour's page of the same episode
    pager.run(now=T0 + 3700)
    assert len(tg.sent()) == 2 and len(smtp.messages) == 2
    out = pager.resolve(raised["fingerprint"], by="bob", note="failed over to the replica", now=T0 + 4000)
    assert out["changed"] is True and out["state"] == "resolved" and len(out["ids"]) == 2
    assert out["notices"] == {"telegram": "pending", "email": "pending"}
    assert pager.run(now=T0 + 4000)["deliveries"] == {"ok": 2, "edit_ok": 2}
    notices = [m for m in tg.sent() if "RESOLVED" in m["text"]]
    assert len(notices) == 1 and "resolved" in notices[0]["text"]
    assert "failed over to the replica" in notices[0]["text"] and "after 1h 6m" in notices[0]["text"]
    [mail] = [m for m in smtp.messages if m["Subject"].startswith("[RESOLVED]")]
    assert mail["Subject"] == "[RESOLVED] [CRITICAL] db: db down"
    assert mail["In-Reply-To"] == f"<{out['id']}.page@echoops>"  # threads under the latest page
    assert "Incident resolved by bob" in mail.get_content() and "failed over to the replica" in mail.get_content()
    # idempotent: a second resolve sends nothing
    assert pager.resolve(raised["id"], by="carol", now=T0 + 4100)["changed"] is False
    assert pager.run(now=T0 + 4100)["deliveries"] == {}
    [event] = events(log_dir, "incident_resolve")
    assert (event["by"], event["note"], round(event["duration_s"])) == ("bob", "failed over to the replica", 4000)
    # the fingerprint is open again: the next raise, minutes later, is a new incident, paged at once
    new = pager.raise_incident("CRITICAL", "db down", "db", now=T0 + 4200)
    assert (new["deduped"], new["state"], new["channels"]) == (
        False,
        "open",
        {"telegram": "pending", "email": "pending"},
    )


def test_ack_cancels_pending_retries_and_expires_after_pager_ack_hours(monkeypatch, log_dir):
    monkeypatch.setenv("PAGER_ACK_HOURS", "2")
    monkeypatch.setenv("PAGER_ESCALATE_MIN", "0")
    with FakeTelegram() as tg:
        tg.configure(monkeypatch)
        tg.script((500, {"ok": False, "error_code": 500, "description": "Internal Server Error"}))
        raised = page_and_deliver()  # the first attempt failed; a retry is pending
        out = pager.ack(raised["id"], by="alice", now=T0 + 5)
        assert (out["state"], out["acked_by"], out["changed"]) == ("acked", "alice", True)
        assert pager.run(now=T0 + 60)["deliveries"] == {}  # the retry was cancelled: someone is on it
        assert pager.summarize(now=T0 + 60)["totals"]["deliveries"]["cancelled"] == 1
        assert pager.ack(raised["fingerprint"], by="bob", now=T0 + 70)["changed"] is False
        # two hours later the ack runs out: the incident re-opens and its next raise pages
        assert pager.run(now=T0 + 2 * 3600 + 10)["upkeep"]["acks_expired"] == 1
        assert group(raised["fingerprint"], T0 + 2 * 3600 + 10)["state"] == "open"
        [expired] = events(log_dir, "incident_ack_expired")
        assert expired["ids"] == [raised["id"]]
        again = pager.raise_incident("CRITICAL", "db down", "db", now=T0 + 2 * 3600 + 20)
        assert again["deduped"] is False and again["channels"]["telegram"] == "pending"


def test_ack_and_resolve_validate_and_404(log_dir):
    with pytest.raises(NotFound):
        pager.ack("inc_nope")
    with pytest.raises(NotFound):
        pager.resolve("no-such-fingerprint")
    for bad, field in (("", "id"), (None, "id"), ("x" * 201, "id")):
        with pytest.raises(ValidationError) as exc:
            pager.ack(bad)
        assert exc.value.field == field
    raised = pager.raise_incident("ERROR", "disk 91% full", "host1", now=T0)
    with pytest.raises(ValidationError) as exc:
        pager.resolve(raised["id"], note="x" * 501)
    assert exc.value.field == "note"
    with pytest.raises(ValidationError) as exc:
        pager.ack(raised["id"], by="x" * 81)
    assert exc.value.field == "by"
    for body, field in (
        ({}, "id"),
        ({"id": raised["id"], "fingerprint": raised["fingerprint"]}, "id"),
        ({"id": raised["id"], "colour": "red"}, "colour"),
        ({"fingerprint": 3}, "fingerprint"),
        ({"id": raised["id"], "note": "x"}, "note"),  # an ack takes no note
    ):
        with pytest.raises(ValidationError) as exc:
            pager.ack_request(body)
        assert exc.value.field == field, body
    # an ERROR can be acked and resolved too; nothing was paged, so no notice goes out
    out = pager.resolve_request({"id": raised["id"], "note": "cleaned /var/log", "by": "ops"}, now=T0 + 10)
    assert (out["state"], out["notices"], out["note"]) == ("resolved", {}, "cleaned /var/log")


def test_auto_resolve_does_nothing_without_an_open_incident(log_dir):
    assert pager.auto_resolve("slo:red", by="auto:slo", now=T0) is None
    pager.raise_incident("CRITICAL", "SLO state red", "slo", fingerprint="slo:red", now=T0)
    out = pager.auto_resolve("slo:red", by="auto:slo", note="SLO back to green", now=T0 + 900)
    assert out is not None and (out["state"], out["resolved_by"]) == ("resolved", "auto:slo")
    assert pager.auto_resolve("slo:red", by="auto:slo", now=T0 + 1800) is None


# --- silences -----------------------------------------------------------------------------------


def test_a_silence_on_source_maint_suppresses_a_critical_from_it_and_not_from_another(tg, log_dir):
    silence = pager.add_silence({"source": "maint"}, 2 * 3600, "db migration", by="alice", now=T0)
    assert (silence["state"], silence["left_s"], silence["match"]) == ("active", 7200, {"source": "maint"})
    quiet = pager.raise_incident("CRITICAL", "replica lag 40s", "maint", now=T0 + 60)
    loud = pager.raise_incident("CRITICAL", "replica lag 40s", "db", now=T0 + 60)
    assert (quiet["state"], quiet["silence"], quiet["channels"]) == ("silenced", silence["id"], {})
    assert (loud["state"], loud["channels"]["telegram"]) == ("open", "pending")
    pager.run(now=T0 + 60)
    assert [m["text"].split("\n")[0] for m in tg.delivered] == ["<b>CRITICAL · db</b>"]
    assert group(quiet["fingerprint"], T0 + 60)["state"] == "silenced"
    listed = pager.list_silences(now=T0 + 3600)["silences"]
    assert [(x["id"], x["left_s"], x["matched"]) for x in listed] == [(silence["id"], 3600, 1)]
    # it ends by itself: an event, and the source pages again
    assert pager.run(now=T0 + 2 * 3600 + 1)["upkeep"]["silences_expired"] == 1
    [ended] = events(log_dir, "silence_expire")
    assert (ended["id"], ended["why"]) == (silence["id"], "ended")
    assert pager.list_silences(now=T0 + 2 * 3600 + 1)["silences"] == []
    assert pager.list_silences(all_recent=True, now=T0 + 2 * 3600 + 1)["silences"][0]["state"] == "expired"
    back = pager.raise_incident("CRITICAL", "replica lag 40s", "maint", now=T0 + 2 * 3600 + 2)
    assert (back["state"], back["channels"]["telegram"]) == ("open", "pending")


def test_silence_matchers_and_removal(log_dir):
    s = pager.add_silence(
        ["severity=critical", "msg~=Disk FULL", "source=host1"], 600, "resizing volumes", by="ops", now=T0
    )
    assert s["match"] == {"severity": "CRITICAL", "msg~": "Disk FULL", "source": "host1"}
    assert pager.raise_incident("CRITICAL", "disk full on /var", "HOST1", now=T0 + 1)["state"] == "silenced"
    assert pager.raise_incident("ERROR", "disk full on /var", "host1", now=T0 + 1)["state"] == "open"
    assert pager.raise_incident("CRITICAL", "disk slow", "host1", now=T0 + 1)["state"] == "open"
    fp = pager.raise_incident("CRITICAL", "x", "y", fingerprint="custom:1", now=T0 + 1)
    by_fp = pager.add_silence(["fingerprint=custom:1"], 60, "known", now=T0 + 2)
    assert pager.raise_incident("CRITICAL", "x again", "y", fingerprint="custom:1", now=T0 + 3)["state"] == "silenced"
    # a new silence takes over the open incidents it matches (no escalation of those)
    assert group(fp["fingerprint"], T0 + 3)["silence"] == by_fp["id"]
    removed = pager.remove_silence(s["id"], by="ops", now=T0 + 10)
    assert (removed["state"], removed["ended_by"], removed["matched"]) == ("removed", "ops", 1)
    assert pager.remove_silence(s["id"], now=T0 + 20)["ended_at"] == removed["ended_at"]  # idempotent
    assert pager.raise_incident("CRITICAL", "disk full on /tmp", "host1", now=T0 + 11)["state"] == "open"
    [ended] = [e for e in events(log_dir, "silence_expire") if e["id"] == s["id"]]
    assert (ended["why"], ended["by"]) == ("removed", "ops")
    with pytest.raises(NotFound):
        pager.remove_silence("sil_nope")
    bad = [
        ({}, 60, "r", "match"),
        ({"colour": "red"}, 60, "r", "match"),
        (["source=a", "source=b"], 60, "r", "match"),
        (["nokey"], 60, "r", "match"),
        ({"severity": "LOUD"}, 60, "r", "match"),
        ({"source": " "}, 60, "r", "match"),
        ("source=a", 60, "r", "match"),
        ({"source": "a"}, 59, "r", "for"),
        ({"source": "a"}, float("nan"), "r", "for"),
        ({"source": "a"}, 31 * 86400, "r", "for"),
        ({"source": "a"}, 60, " ", "reason"),
    ]
    for match, for_s, reason, field in bad:
        with pytest.raises(ValidationError) as exc:
            pager.add_silence(match, for_s, reason)
        assert exc.value.field == field, (match, for_s, reason)
    with pytest.raises(ValidationError) as exc:
        pager.add_silence_request({"match": {"source": "a"}, "for_min": 0, "reason": "r"})
    assert exc.value.field == "for_min"
    with pytest.raises(ValidationError) as exc:
        pager.add_silence_request({"match": {"source": "a"}, "for_min": 5, "reason": "r", "until": 1})
    assert exc.value.field == "until"


# --- escalation ---------------------------------------------------------------------------------


def test_an_unacked_critical_escalates_once_to_every_channel_and_the_escalation_targets(tg, smtp, log_dir, monkeypatch):
    tg.add_chat(ESCALATE_CHAT)
    monkeypatch.setenv("TELEGRAM_ESCALATE_CHAT_ID", ESCALATE_CHAT)
    monkeypatch.setenv("SMTP_ESCALATE_TO", "lead@example.com")
    raised = page_and_deliver()
    assert pager.run(now=T0 + 14 * 60)["upkeep"]["escalated"] == 0
    run = pager.run(now=T0 + 15 * 60)
    assert run["upkeep"]["escalated"] == 1 and run["deliveries"] == {"ok": 4}
    escalations = [m for m in tg.sent() if m["text"].startswith("<b>ESCALATED</b>")]
    assert sorted(m["chat_id"] for m in escalations) == sorted([DEFAULT_CHAT, ESCALATE_CHAT])
    assert all("Not acknowledged 15m after it was paged" in m["text"] for m in escalations)
    assert all(list(tg.buttons(m)) == ["Ack", "Resolve", "Silence 1h"] for m in escalations)
    mails = [m for m in smtp.messages if m["Subject"].startswith("[ESCALATED]")]
    assert sorted(m["To"] for m in mails) == ["lead@example.com", "oncall@example.com, backup@example.com"]
    assert sorted(e[1] for e in smtp.envelopes[-2:]) == [
        ["lead@example.com"],
        ["oncall@example.com", "backup@example.com"],
    ]
    # once: later drains and the next hourly page of the same episode do not escalate again
    assert pager.run(now=T0 + 30 * 60)["upkeep"]["escalated"] == 0
    pager.raise_incident("CRITICAL", "db down", "db", now=T0 + 3700)
    assert pager.run(now=T0 + 3700 + 20 * 60)["upkeep"]["escalated"] == 0
    [event] = events(log_dir, "incident_escalate")
    assert event["channels"] == {
        "telegram": "pending",
        "email": "pending",
        "telegram:escalate": "pending",
        "email:escalate": "pending",
    }
    # a press in the escalation chat counts; resolving notifies every place that got a page
    query = tg.press("Resolve", message=tg.last_message(ESCALATE_CHAT)[0], user=BOB)
    pager.run(now=T0 + 3700 + 21 * 60)
    assert tg.answers[query].startswith("Resolved.")
    notices = [m for m in tg.sent() if m["text"].startswith("<b>RESOLVED</b>")]
    assert sorted(m["chat_id"] for m in notices) == sorted([DEFAULT_CHAT, ESCALATE_CHAT])
    assert len([m for m in smtp.messages if m["Subject"].startswith("[RESOLVED]")]) == 2
    assert group(raised["fingerprint"], T0 + 3700 + 21 * 60)["escalated_at"] == config_iso(T0 + 15 * 60)


def test_acked_silenced_and_non_critical_incidents_are_not_escalated_and_zero_turns_it_off(tg, log_dir, monkeypatch):
    acked = page_and_deliver("db down", "db")
    pager.ack(acked["id"], by="alice", now=T0 + 60)
    page_and_deliver("web down", "web")
    pager.add_silence({"source": "web"}, 3600, "deploy", now=T0 + 120)
    pager.raise_incident("ERROR", "queue slow", "worker", now=T0)
    assert pager.run(now=T0 + 20 * 60)["upkeep"]["escalated"] == 0
    monkeypatch.setenv("PAGER_ESCALATE_MIN", "0")
    page_and_deliver("api down", "api", now=T0 + 1)
    assert pager.run(now=T0 + 40 * 60)["upkeep"]["escalated"] == 0


# --- the store ----------------------------------------------------------------------------------


@pytest.mark.sqlite_only
def test_a_v2_store_is_migrated_and_old_incidents_are_never_escalated(settings, log_dir):
    from echoops.core import store
    from echoops.core.pager.model import SCHEMA

    conn = store.connect(settings)
    v2 = store.Schema("pager", SCHEMA.migrations[:2])
    store.ensure(conn, v2)
    with conn:
        conn.execute(
            "INSERT INTO pager_incidents VALUES('inc_old', 'fp-old', 'CRITICAL', 'db', 'db down', NULL, ?, ?, 1, 1)",
            (T0 - 1200, T0 - 1200),
        )
        conn.execute(
            "INSERT INTO pager_outbox(incident_id, channel, state, attempts, created_at, updated_at, delivered_at) "
            "VALUES('inc_old', 'telegram', 'ok', 1, ?, ?, ?)",
            (T0 - 1200, T0 - 1200, T0 - 1199),
        )
    store.close_all()
    s = config.settings()
    assert pager.run(s=s, now=T0)["upkeep"]["escalated"] == 0
    g = group("fp-old", T0)
    assert (g["state"], g["deliveries"], g["escalated_at"]) == ("open", {"telegram": "ok"}, config_iso(T0 - 1200))
    assert pager.ack("fp-old", by="alice", now=T0)["state"] == "acked"


def test_signing_keyrings_fall_back_and_stay_apart(monkeypatch, log_dir):
    monkeypatch.setenv("PORTAL_SIGNING_SECRET", "portal-secret-0123456789abcdefghijklmn")
    token, _ = signing.sign("pager_ack", "inc_x", "", s=config.settings(), ring="pager")
    assert signing.verify(token, "pager_ack", s=config.settings(), ring="pager").resource == "inc_x"
    monkeypatch.setenv("PAGER_SIGNING_SECRET", SECRET)  # the pager gets its own key: old links stop working
    with pytest.raises(signing.BadToken):
        signing.verify(token, "pager_ack", s=config.settings(), ring="pager")
    with pytest.raises(signing.BadToken):  # a portal link never acks a page (purpose), and vice versa
        signing.verify(token, "download", s=config.settings())
    monkeypatch.delenv("PORTAL_SIGNING_SECRET")
    monkeypatch.setenv("PAGER_SIGNING_SECRET", "short")
    with pytest.raises(signing.NotConfigured, match="PAGER_SIGNING_SECRET key #1 is 5 bytes"):
        signing.keys(ring="pager")
    monkeypatch.delenv("PAGER_SIGNING_SECRET")
    with pytest.raises(signing.NotConfigured, match=r"PAGER_SIGNING_SECRET \(or PORTAL_SIGNING_SECRET\) is not set"):
        signing.keys(ring="pager")


def test_an_edit_sent_twice_is_done_and_bot_api_failures_are_reported(tg, log_dir):
    from echoops.core.pager.channels import Page, telegram
    from echoops.core.pager.messages import duration

    s = config.settings()
    raised = page_and_deliver()
    (chat, message_id), _ = tg.last_message()
    edit = Page(raised["id"], "CRITICAL", "db", "db down", raised["fingerprint"], 1, T0, kind="edit_ack",
                ref=str(message_id), status="Acknowledged by alice")  # fmt: skip
    # at least once: a repeat of an edit that already landed is "not modified", which is done
    assert [o.ok for o in telegram.send(edit, s)] == [True]
    [again] = telegram.send(edit, s)
    assert (again.ok, again.status, again.detail) == (True, 400, "not modified (already shown)")
    missing = Page(**{**edit.__dict__, "ref": "999"})
    [gone] = telegram.send(missing, s)
    assert (gone.ok, gone.retry, gone.detail) == (False, False, "Bad Request: message to edit not found")
    # an unknown query, and an unreachable Bot API, are failures to report, not exceptions
    assert telegram.answer_callback(s, "no-such-query", "hi") is False
    unreachable = dataclasses.replace(s, telegram_api_base="http://127.0.0.1:9")
    ok, error, status, _ = telegram.get_updates(unreachable, 0, 0)
    assert (ok, status) == (False, None) and error.startswith("ConnectError") and tg.token not in error
    assert [duration(x) for x in (40, 7 * 60, 2 * 3600 + 5 * 60, 3 * 86400 + 4 * 3600)] == [
        "40s",
        "7m",
        "2h 5m",
        "3d 4h",
    ]
