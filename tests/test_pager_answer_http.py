"""Answering pages at the edges: `echoops page ack|resolve|silence|silences|unsilence`, the HTTP
endpoints, the signed email links and the server's button poller, on live gunicorn servers with
the loopback Bot API and a real SMTP server.
"""

from __future__ import annotations

import re
import time
from urllib.parse import urlsplit

import httpx
import orjson
import pytest

from echoops.core import clock, config, pager
from tests.conftest import wait_for
from tests.fakes_telegram import ALICE

SECRET = "pager-signing-secret-0123456789abcdefghij"
T0 = time.time()


@pytest.fixture
def keys(monkeypatch):
    monkeypatch.setenv("PAGER_SIGNING_SECRET", SECRET)


@pytest.fixture
def tg(tg, keys):
    """conftest's fake Bot API, with PAGER_SIGNING_SECRET set (the buttons are signed)."""
    return tg


def json_of(result):
    assert result.exit_code in (0, 1), result.output
    return orjson.loads(result.stdout)


def test_cli_resolve_sends_exactly_one_resolved_notice_to_each_channel_that_got_the_page(cli, tg, smtp, monkeypatch):
    monkeypatch.setenv("PAGER_ESCALATE_MIN", "0")
    raised = json_of(cli("page", "raise", "--severity", "CRITICAL", "--msg", "db down", "--source", "db", "--json"))
    assert raised["deliveries"] == {"telegram": "ok", "email": "ok"}
    other = json_of(cli("page", "raise", "--severity", "CRITICAL", "--msg", "web down", "--source", "web", "--json"))
    before = (len(tg.sent()), len(smtp.messages))
    result = cli("page", "resolve", raised["id"], "--note", "restarted the primary", "--by", "bob")
    assert result.exit_code == 0, result.output
    assert f"resolved {raised['id']} as bob; RESOLVED notice: telegram pending, email pending" in result.stdout
    new_tg, new_mail = tg.sent()[before[0] :], smtp.messages[before[1] :]
    assert len(new_tg) == 1 and len(new_mail) == 1  # exactly one notice per channel, sent by the command
    assert "resolved" in new_tg[0]["text"] and "restarted the primary" in new_tg[0]["text"]
    assert "db down" in new_tg[0]["text"] and "web down" not in new_tg[0]["text"]
    assert "resolved" in new_mail[0].get_content() and new_mail[0]["Subject"] == "[RESOLVED] [CRITICAL] db: db down"
    # the page message itself shows it (edited), and the other incident is untouched
    assert "Incident resolved by bob" in tg.messages[(tg.chat_id, 1)]["text"]
    assert len(tg.sent("editMessageText")) == 1
    again = cli("page", "resolve", raised["fingerprint"], "--json")
    assert again.exit_code == 0 and json_of(again)["changed"] is False
    assert (len(tg.sent()), len(smtp.messages)) == (before[0] + 1, before[1] + 1)  # a repeat sends nothing
    summary = json_of(cli("page", "summarize", "--json"))
    assert {g["source"]: g["state"] for g in summary["groups"]} == {"db": "resolved", "web": "open"}
    assert other["id"] in cli("page", "summarize").stdout  # the table shows the id to copy


def test_cli_ack_silence_and_unsilence(cli, log_dir):
    raised = json_of(
        cli("page", "raise", "--severity", "CRITICAL", "--msg", "queue stalled", "--source", "worker", "--json")
    )
    acked = cli("page", "ack", raised["id"], "--by", "alice")
    assert acked.exit_code == 0 and f"acked {raised['id']} as alice: repeats held until " in acked.stdout
    assert "was already acked by alice" in cli("page", "ack", raised["fingerprint"]).stdout
    missing = cli("page", "ack", "inc_nope")
    assert missing.exit_code == 1 and "no incident or fingerprint 'inc_nope'" in missing.stderr
    made = cli("page", "silence", "--match", "source=maint", "--match", "msg~=replica", "--for", "2h", "--reason",
               "db migration", "--json", "--now", clock.iso(T0))  # fmt: skip
    silence = json_of(made)
    assert (silence["match"], silence["left_s"], silence["reason"]) == (
        {"source": "maint", "msg~": "replica"},
        7200,
        "db migration",
    )
    quiet = json_of(cli("page", "raise", "--severity", "CRITICAL", "--msg", "replica lag", "--source", "maint",
                        "--json", "--now", clock.iso(T0 + 60)))  # fmt: skip
    assert quiet["state"] == "silenced" and quiet["channels"] == {}
    table = cli("page", "silences", "--now", clock.iso(T0 + 1800))
    assert table.exit_code == 0 and silence["id"] in table.stdout and "1h 30m" in table.stdout
    listed = json_of(cli("page", "silences", "--json", "--now", clock.iso(T0 + 1800)))
    assert [(x["id"], x["left_s"], x["matched"]) for x in listed["silences"]] == [(silence["id"], 5400, 1)]
    ended = cli("page", "unsilence", silence["id"], "--now", clock.iso(T0 + 1900))
    assert ended.exit_code == 0 and f"silence {silence['id']} removed" in ended.stdout
    assert "no silences in force" in cli("page", "silences", "--now", clock.iso(T0 + 2000)).stdout
    for args, field in (
        (("--match", "colour=red", "--for", "1h", "--reason", "r"), "unknown matcher key 'colour'"),
        (("--match", "source=a", "--for", "10s", "--reason", "r"), "--for: must be at least 60 s"),
        (("--match", "source=a", "--for", "soon", "--reason", "r"), "--for: not a duration"),
    ):
        bad = cli("page", "silence", *args)
        assert bad.exit_code == 2 and field in bad.stderr, bad.output
    assert cli("page", "unsilence", "sil_nope").exit_code == 1


def test_escalation_fires_once_after_the_delay_with_now(cli, tg, monkeypatch):
    monkeypatch.setenv("PAGER_ESCALATE_MIN", "15")
    t0 = clock.iso(T0)
    raised = json_of(cli("page", "raise", "--severity", "CRITICAL", "--msg", "payments failing", "--source", "billing",
                         "--json", "--now", t0))  # fmt: skip
    assert len(tg.delivered) == 1
    quiet = json_of(cli("page", "run", "--json", "--now", clock.iso(T0 + 14 * 60)))
    assert quiet["upkeep"]["escalated"] == 0 and len(tg.delivered) == 1
    fired = cli("page", "run", "--now", clock.iso(T0 + 15 * 60))
    assert "escalated 1, acks expired 0, silences ended 0" in fired.stdout
    assert "delivery attempts: 1 OK" in fired.stdout and len(tg.delivered) == 2
    assert tg.delivered[1]["text"].startswith("<b>ESCALATED</b>\n<b>CRITICAL · billing</b>")
    for minutes in (16, 30, 45):
        assert json_of(cli("page", "run", "--json", "--now", clock.iso(T0 + minutes * 60)))["upkeep"]["escalated"] == 0
    assert len(tg.delivered) == 2
    tg.webhook = True  # someone set a webhook on the bot: the run says so, and still delivers
    human = cli("page", "run", "--now", clock.iso(T0 + 46 * 60))
    assert (
        human.exit_code == 0 and "telegram buttons: 0 presses acted on, 0 ignored; getUpdates failed: " in human.stdout
    )
    assert "can't use getUpdates method while webhook is active" in human.stdout
    g = json_of(cli("page", "summarize", "--json", "--now", clock.iso(T0 + 3000)))["groups"][0]
    assert (g["latest_id"], g["escalated_at"]) == (raised["id"], clock.iso(T0 + 15 * 60))


def test_http_ack_resolve_and_silences(server, log_dir):
    c = server.client()
    raised = c.post("/api/incidents/raise", json={"severity": "CRITICAL", "msg": "db down", "source": "db"}).json()
    ack = c.post("/api/incidents/ack", json={"id": raised["id"], "by": "alice"})
    assert ack.status_code == 200
    body = ack.json()
    assert (body["state"], body["acked_by"], body["changed"], body["ids"]) == ("acked", "alice", True, [raised["id"]])
    again = c.post("/api/incidents/ack", json={"fingerprint": raised["fingerprint"]})
    assert again.status_code == 200 and again.json()["changed"] is False and again.json()["acked_by"] == "alice"
    for payload, status, field in (
        ({}, 400, "id"),
        ({"id": raised["id"], "fingerprint": raised["fingerprint"]}, 400, "id"),
        ({"id": raised["id"], "colour": 1}, 400, "colour"),
        ({"id": 5}, 400, "id"),
        ({"id": raised["id"], "by": "x" * 81}, 400, "by"),
        ({"id": "inc_nope"}, 404, None),
    ):
        r = c.post("/api/incidents/ack", json=payload)
        assert r.status_code == status and r.json().get("field") == field, (payload, r.text)
    r = c.post("/api/incidents/resolve", json={"id": raised["id"], "note": 7})
    assert r.status_code == 400 and r.json()["field"] == "note"
    done = c.post("/api/incidents/resolve", json={"fingerprint": raised["fingerprint"], "note": "failover"})
    assert done.status_code == 200 and (done.json()["state"], done.json()["note"]) == ("resolved", "failover")
    assert done.json()["resolved_by"] == "api"
    assert c.post("/api/incidents/resolve", json={"id": raised["id"]}).json()["changed"] is False
    assert c.post("/api/incidents/resolve", json={"id": "inc_nope"}).status_code == 404
    group = c.post("/api/incidents/summarize").json()["groups"][0]
    assert (group["state"], group["acked_by"], group["note"]) == ("resolved", "alice", "failover")
    # silences
    made = c.post("/api/incidents/silence", json={"match": {"source": "maint"}, "for_min": 120, "reason": "migration"})
    assert made.status_code == 200
    sil = made.json()
    assert (sil["state"], sil["match"], sil["created_by"], sil["left_s"]) == (
        "active",
        {"source": "maint"},
        "api",
        7200,
    )
    quiet = c.post("/api/incidents/raise", json={"severity": "CRITICAL", "msg": "lag", "source": "maint"}).json()
    assert (quiet["state"], quiet["silence"]) == ("silenced", sil["id"])
    listed = c.get("/api/incidents/silences").json()
    assert [x["id"] for x in listed["silences"]] == [sil["id"]] and listed["silences"][0]["matched"] == 1
    for payload, field in (
        ({"match": {}, "for_min": 5, "reason": "r"}, "match"),
        ({"match": {"source": "a"}, "for_min": -1, "reason": "r"}, "for_min"),
        ({"match": {"source": "a"}, "for_min": 5}, "reason"),
        ({"match": {"source": "a"}, "for_min": 5, "reason": "r", "x": 1}, "x"),
    ):
        r = c.post("/api/incidents/silence", json=payload)
        assert r.status_code == 400 and r.json()["field"] == field, payload
    assert c.get("/api/incidents/silences?all=maybe").json()["field"] == "all"
    gone = c.delete(f"/api/incidents/silence?id={sil['id']}&by=bob")
    assert gone.status_code == 200 and (gone.json()["state"], gone.json()["ended_by"]) == ("removed", "bob")
    assert c.get("/api/incidents/silences").json()["silences"] == []
    assert c.get("/api/incidents/silences?all=true").json()["silences"][0]["id"] == sil["id"]
    assert c.delete("/api/incidents/silence?id=sil_nope").status_code == 404
    assert c.delete("/api/incidents/silence").json()["field"] == "id"
    assert server.client(None).post("/api/incidents/ack", json={"id": raised["id"]}).status_code == 401


def _links(mail) -> dict[str, str]:
    return dict(re.findall(r"^(Acknowledge|Resolve) \([^)]*\): (\S+)\r?$", mail.get_content(), re.M))


def test_email_links_get_changes_nothing_post_acts_and_a_tampered_token_is_403(live_server, smtp, keys, log_dir):
    server = live_server()
    c = server.client()
    raised = c.post("/api/incidents/raise", json={"severity": "CRITICAL", "msg": "disk full", "source": "db"}).json()
    assert smtp.wait_messages(1), "the server's drain did not send the email"
    links = _links(smtp.messages[0])
    assert set(links) == {"Acknowledge", "Resolve"}
    ack_url = urlsplit(links["Acknowledge"])
    assert ack_url.path == "/api/incidents/ack-link"  # PORTAL_BASE_URL when PAGER_BASE_URL is unset
    public = httpx.Client(base_url=server.url, timeout=10)  # no X-Dash-Key: the token is the credential
    path = f"{ack_url.path}?{ack_url.query}"
    # GET (what a mail scanner does) shows a confirmation page and changes nothing
    for _ in range(2):
        view = public.get(path)
        assert view.status_code == 200 and view.headers["content-type"].startswith("text/html")
        assert (
            "Acknowledge this incident?" in view.text and "disk full" in view.text and "<form method=post" in view.text
        )
        assert (
            view.headers["cache-control"] == "private, no-store"
            and "form-action 'self'" in view.headers["content-security-policy"]
        )
    assert c.post("/api/incidents/summarize").json()["groups"][0]["state"] == "open"
    # the page's POST acts
    done = public.post(path, data={"by": "Alice"}, headers={"Accept": "text/html"})
    assert done.status_code == 200 and f"Incident {raised['id']} acknowledged by Alice (email link)." in done.text
    group = c.post("/api/incidents/summarize").json()["groups"][0]
    assert (group["state"], group["acked_by"]) == ("acked", "Alice (email link)")
    repeat = public.post(path)
    assert repeat.status_code == 200 and repeat.json()["changed"] is False
    assert "Already acknowledged by Alice (email link)" in public.get(path).text
    # tampered, or used for the other action: 403, nothing changes
    token = ack_url.query.removeprefix("token=")
    tampered = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    for bad in (f"{ack_url.path}?token={tampered}", f"/api/incidents/resolve-link?token={token}"):
        assert public.get(bad).status_code == 403
        r = public.post(bad)
        assert r.status_code == 403 and r.json() == {
            "error": "forbidden",
            "detail": "this link is invalid or has expired",
        }
    assert c.post("/api/incidents/summarize").json()["groups"][0]["state"] == "acked"
    # the resolve link, with a note
    res_url = urlsplit(links["Resolve"])
    page = public.get(f"{res_url.path}?{res_url.query}")
    assert "Resolve this incident?" in page.text and "<textarea id=note name=note" in page.text
    done = public.post(f"{res_url.path}?{res_url.query}", data={"note": "freed 20 GB"})
    assert done.status_code == 200 and done.json()["state"] == "resolved" and done.json()["note"] == "freed 20 GB"
    assert done.json()["resolved_by"] == "email link"
    assert "Nothing to do" in public.get(path).text  # the ack link of a resolved incident
    assert smtp.wait_messages(2) and smtp.messages[1]["Subject"] == "[RESOLVED] [CRITICAL] db: disk full"


def test_expired_links_are_403(monkeypatch, keys, log_dir):
    from echoops.core.pager import link_pages, links
    from echoops.core.signing import BadToken

    raised = pager.raise_incident("CRITICAL", "disk full", "db", now=T0)
    url = links.url(config.settings(), "ack", raised["id"], now=T0)
    token = url.split("token=")[1]
    assert link_pages.view("ack", token, now=T0 + 23 * 3600).body.startswith(b"<!doctype html>")
    with pytest.raises(BadToken):
        link_pages.act("ack", token, now=T0 + 24 * 3600)
    monkeypatch.setenv("PAGER_LINK_TTL_HRS", "1")
    short = links.url(config.settings(), "resolve", raised["id"], now=T0).split("token=")[1]
    with pytest.raises(BadToken):
        link_pages.view("resolve", short, now=T0 + 3600)
    monkeypatch.setenv("PAGER_BASE_URL", "https://ops.example.com/")
    assert links.url(config.settings(), "ack", raised["id"]).startswith(
        "https://ops.example.com/api/incidents/ack-link?token=v1."
    )


@pytest.mark.slow
def test_the_server_reads_button_presses_once_answers_them_and_edits_the_page(live_server, tg, log_dir):
    server = live_server()  # two workers: one polls getUpdates at a time, under the lease
    c = server.client()
    raised = c.post(
        "/api/incidents/raise", json={"severity": "CRITICAL", "msg": "checkout down", "source": "web"}
    ).json()
    assert tg.wait_delivered(1), "the server's drain did not send the page"
    key, message = tg.last_message()
    ack_data = tg.buttons(message)["Ack"]
    query = tg.press("Ack", user=ALICE)
    answer = tg.wait_answered(query, timeout=15)
    group = c.post("/api/incidents/summarize").json()["groups"][0]
    assert (group["latest_id"], group["state"], group["acked_by"]) == (raised["id"], "acked", "@alice (Telegram)")
    assert answer == f"Acknowledged. Repeats held until {group['ack_until'][11:16]} UTC."
    wait_for(lambda: tg.messages[key]["edits"] == 1, what="the page edited by the server's drain")
    assert "Acknowledged by @alice (Telegram)" in tg.messages[key]["text"]
    second = tg.press(message=key, data=ack_data, user=ALICE)  # pressed again before the edit showed
    assert tg.wait_answered(second, timeout=15) == "Already acknowledged by @alice (Telegram)."
    assert tg.conflicts == 0  # the workers never polled at the same time
    presses = [orjson.loads(x) for x in (log_dir / "incidents.ndjson").read_bytes().splitlines()]
    assert [e["result"] for e in presses if e["event"] == "button_press"] == ["acked", "ignored: already acked"]
    # `page run` leaves the presses to the server while it polls
    assert pager.run(now=time.time())["buttons"]["polled"] is False
