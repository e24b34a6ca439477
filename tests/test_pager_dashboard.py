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
        expect(section.locator("[data-metric=groups] .metric-value")).to_have_text("3")
        expect(section.locator("[data-metric=failed] .metric-value")).to_have_text("1")
        rows = section.locator("tbody tr")
        expect(rows).to_have_count(3)
        failed = section.locator("tr.inc-failed")
        expect(failed).to_have_count(1)
        expect(failed.locator(".inc-msg")).to_have_text("checkout <b>down</b>")  # text, never markup
        expect(failed.locator("[data-channel=telegram] .badge")).to_have_text("\u2715FAILED")
        expect(failed.locator("[data-channel=email] .badge")).to_have_text("\u2013SKIPPED")
        expect(rows.nth(0)).to_have_class("inc-row inc-failed")  # failures sort first
        db_row = section.locator("tr", has_text="db pool exhausted")
        expect(db_row.locator("[data-channel=telegram] .badge")).to_have_text("\u2713OK")
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
        expect(page.locator("#card-incidents .card-state .badge")).to_have_text("\u2715FAILED")


@pytest.mark.browser
def test_pages_with_no_channel_configured_are_not_shown_as_ok(open_card):
    now = time.time()
    pager.raise_incident("CRITICAL", "checkout down", "web", now=now - 5)
    pager.run(now=now - 5)  # no Telegram, no SMTP: both deliveries are skipped
    page, section = open_card("incidents")
    expect(page.locator("#card-incidents .card-state .badge")).to_have_text("\u2013SKIPPED")
