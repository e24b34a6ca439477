"""The Incidents dashboard card in real Chromium: groups, counts, delivery badges, failures highlighted."""

from __future__ import annotations

import re
import time

import pytest
from playwright.sync_api import expect

from echoops.core import pager
from tests.fakes_telegram import FakeTelegram, blocked


@pytest.mark.browser
def test_incidents_card_shows_groups_and_highlights_failed_deliveries(open_card, monkeypatch):
    with FakeTelegram() as tg:
        tg.configure(monkeypatch)
        tg.script(blocked())
        now = time.time()
        pager.raise_incident("CRITICAL", "checkout <b>down</b>", "web", now=now - 60)
        pager.run(now=now - 60)  # 403: failed, highlighted
        for i in range(3):
            pager.raise_incident("WARNING", f"queue slow {i}s", "worker", now=now - 30 + i)
        pager.raise_incident("CRITICAL", "db pool exhausted", "db", now=now - 5)
        pager.run(now=now - 5)  # delivered
        page, section = open_card("incidents")
        expect(section.locator("[data-metric=incidents] .metric-value")).to_have_text("5")
        expect(section.locator("[data-metric=open] .metric-value")).to_have_text("3")
        expect(section.locator("[data-metric=failed] .metric-value")).to_have_text("1")
        rows = section.locator("tbody tr")
        expect(rows).to_have_count(3)
        failed = section.locator("tr.inc-failed")
        expect(failed).to_have_count(1)
        expect(failed.locator(".inc-msg")).to_have_text("checkout <b>down</b>")  # text, never markup
        expect(failed.locator("[data-channel=telegram] .badge")).to_have_text("\u2715FAILED")
        expect(failed.locator("[data-channel=email] .badge")).to_have_text("\u2013SKIPPED")
        expect(rows.nth(0)).to_have_class("inc-row inc-failed inc-state-open")  # failures sort first
        db_row = section.locator("tr", has_text="db pool exhausted")
        expect(db_row.locator("[data-channel=telegram] .badge")).to_have_text("\u2713OK")
        expect(db_row.locator(".inc-since")).to_have_text(
            re.compile(r"^paged (just now|\d+ s ago)$")
        )  # Telegram took it
        expect(db_row.locator(".inc-pages")).to_have_text("1 of 1")
        expect(failed.locator(".inc-since")).to_have_text("page raised, no channel took it")  # refused, skipped
        expect(failed.locator(".inc-pages")).to_have_text("0 of 1")
        expect(section.locator("[data-metric=pages] .metric-value")).to_have_text("1")
        expect(section.locator("[data-metric=pages] .metric-label")).to_have_text("pages delivered (of 2 raised)")
        worker = section.locator("tr", has_text="queue slow")
        expect(worker.locator("td.num").first).to_have_text("3")
        expect(section.locator(".inc-alert")).to_contain_text("1 delivery needs attention")
        item = section.locator(".inc-attention-item")
        expect(item).to_have_count(1)
        expect(item).to_have_attribute("data-state", "failed")
        expect(item.locator(".inc-attention-what")).to_have_text("CRITICAL web: checkout <b>down</b>")
        expect(item.locator(".inc-attention-error")).to_have_text(
            "failed after 1 attempt: Forbidden: bot was blocked by the user"
        )
        expect(item.locator(".inc-attention-cmd")).to_have_text(re.compile(r"^echoops page retry inc_[0-9a-f]+$"))
        # the badge is the worst incident still open, whatever its deliveries did (they show beside it)
        expect(page.locator("#card-incidents .card-state .badge")).to_have_text("\u2715CRITICAL")


@pytest.mark.browser
def test_open_criticals_nobody_was_told_of_read_as_critical_and_not_paged(open_card):
    now = time.time()
    for i in range(3):
        pager.raise_incident("CRITICAL", f"checkout down {i}", f"web{i}", now=now - 5)
    pager.run(now=now - 5)  # no Telegram, no SMTP: every delivery is skipped
    page, section = open_card("incidents")
    expect(page.locator("#card-incidents .card-state .badge")).to_have_text("\u2715CRITICAL")  # was SKIPPED
    rows = section.locator("tbody tr")
    expect(rows).to_have_count(3)
    for i in range(3):
        row = rows.nth(i)
        expect(row.locator(".inc-since")).to_have_text("page raised, no channel took it")
        expect(row.locator("[data-channel=telegram] .badge")).to_have_text("\u2013SKIPPED")
        expect(row.locator("[data-channel=email] .badge")).to_have_text("\u2013SKIPPED")
    expect(section.locator("[data-metric=pages] .metric-value")).to_have_text("0")
    expect(section.locator("[data-metric=pages] .metric-label")).to_have_text("pages delivered (of 3 raised)")


@pytest.mark.browser
def test_incidents_card_acks_resolves_and_manages_silences(open_card, log_dir):
    now = time.time()
    db = pager.raise_incident("CRITICAL", "db pool exhausted", "db", now=now - 600)
    pager.raise_incident("WARNING", "queue slow", "worker", now=now - 300)
    kept = pager.add_silence({"source": "maint"}, 2 * 3600, "db migration", by="alice", now=now - 60)
    pager.raise_incident("CRITICAL", "replica lag", "maint", now=now - 30)
    page, section = open_card("incidents")
    row = section.locator(f"tr[data-id='{db['id']}']")
    expect(row.locator(".inc-state .badge").first).to_have_text("\u2715OPEN")
    expect(row.locator(".inc-since")).to_have_text("page raised, no channel took it")  # no channel configured
    expect(page.locator("#card-incidents .card-state .badge")).to_have_text("\u2715CRITICAL")
    quiet = section.locator("tr", has_text="replica lag")
    expect(quiet.locator(".inc-state .badge").first).to_have_text("\u2013SILENCED")
    expect(section.locator("[data-metric=open] .metric-value")).to_have_text("2")
    # Ack: the row says who and since when; only Resolve is left
    row.locator("button.inc-ack").click()
    expect(row.locator(".inc-state .badge").first).to_have_text("!ACKED")
    expect(row.locator(".inc-since")).to_contain_text("acked just now by dashboard")
    expect(row.locator("button.inc-ack")).to_have_count(0)
    expect(section.locator(".inc-flash")).to_have_text(
        re.compile(r"^Acked inc_[0-9a-f]+ \(repeats held until \w{3} \d+ \w{3}, \d\d:\d\d UTC\)$")  # day and time
    )
    # the worst incident still open is now the WARNING (the CRITICAL is acked, the other silenced)
    expect(page.locator("#card-incidents .card-state .badge")).to_have_text("!WARNING")
    group = next(g for g in pager.summarize()["groups"] if g["latest_id"] == db["id"])
    assert (group["state"], group["acked_by"]) == ("acked", "dashboard")
    row.locator("button.inc-resolve").click()
    expect(row.locator(".inc-state .badge").first).to_have_text("\u2713RESOLVED")
    expect(row.locator("button")).to_have_count(0)
    # silences: the one in force, with time left; add one; remove one
    item = section.locator(f".inc-silence[data-id='{kept['id']}']")
    expect(item.locator(".inc-silence-match")).to_have_text("source=maint")
    expect(item.locator(".inc-silence-left")).to_have_text(re.compile(r"^1 h 5[89] min left$"))
    expect(item).to_contain_text("by alice, 1 kept quiet")
    form = section.locator("form.inc-silence-form")
    form.locator("input[name=source]").fill("batch")
    form.locator("input[name='msg~']").fill("nightly")
    form.locator("select[name=for_min]").select_option("60")
    form.locator("button[type=submit]").click()
    expect(section.locator(".inc-flash")).to_have_text(re.compile(r"^Not done: .*reason"))  # reason is required
    form = section.locator("form.inc-silence-form")
    expect(form.locator("input[name=source]")).to_have_value("batch")  # the draft survived the re-render
    form.locator("input[name=reason]").fill("nightly reindex")
    form.locator("button[type=submit]").click()
    expect(section.locator(".inc-flash")).to_have_text(re.compile(r"^Silenced source=batch msg~nightly until "))
    expect(section.locator(".inc-silence")).to_have_count(2)
    [added] = [x for x in pager.list_silences()["silences"] if x["id"] != kept["id"]]
    assert (added["match"], added["reason"], added["created_by"]) == (
        {"source": "batch", "msg~": "nightly"},
        "nightly reindex",
        "dashboard",
    )
    assert 3590 <= added["left_s"] <= 3600
    section.locator(f".inc-silence[data-id='{kept['id']}'] button.inc-unsilence").click()
    expect(section.locator(".inc-silence")).to_have_count(1)
    expect(section.locator(".inc-flash")).to_have_text(f"Silence {kept['id']} removed")
    assert [x["id"] for x in pager.list_silences()["silences"]] == [added["id"]]
