"""The Customer Portal card in real Chromium: look up by email, copy a signed link, badge, access list."""

from __future__ import annotations

import re

import httpx
import orjson
import pytest
from playwright.sync_api import expect

from echoops.core import portal

SECRET = "browser-test-signing-key-0123456789abcdef"


@pytest.mark.browser
def test_portal_card_lookup_copy_link_and_access(open_card, live_server, log_dir, monkeypatch):
    monkeypatch.setenv("PORTAL_SIGNING_SECRET", SECRET)
    f = log_dir.parent / "p.ndjson"
    f.write_bytes(
        orjson.dumps({"id": "b1", "email": "qa@echopilot.ai", "created": "2026-11-20T10:00:00Z", "amount_cents": 1900,
                      "currency": "usd", "description": "Pro <b>plan</b>", "invoice_number": "INV-1"}) + b"\n"
        + orjson.dumps({"id": "b2", "email": "qa@echopilot.ai", "created": "2026-11-21T10:00:00Z", "amount_cents": 500,
                        "currency": "eur", "description": "Seats"}) + b"\n"
    )  # fmt: skip
    portal.import_purchases(f)
    portal.set_subscription("qa@echopilot.ai", True)
    server = live_server(PORTAL_SIGNING_SECRET=SECRET, PORTAL_BASE_URL="http://127.0.0.1:1")
    page, section = open_card("portal", server=server, timezone_id="Europe/Berlin")
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server.url)
    expect(section.locator(".card-title")).to_have_text("Customer Portal")
    # nothing accessed yet: the one entry is the operator's unsubscribe above (audited too)
    expect(section.locator(".portal-access li")).to_have_count(1)
    expect(section.locator(".portal-access li")).to_contain_text("unsubscribe subscription")
    # a malformed email is told inline, not as a broken card
    section.locator("#portal-email").fill("not-an-email")
    section.get_by_role("button", name="Look up").click()
    expect(section.locator(".portal-error")).to_contain_text("is not a valid email address")

    section.locator("#portal-email").fill("  QA@echopilot.ai ")
    section.get_by_role("button", name="Look up").click()
    expect(section.locator(".portal-result")).to_have_attribute("data-email", "qa@echopilot.ai")
    expect(section.locator(".portal-sub")).to_have_text("✕UNSUBSCRIBED")
    rows = section.locator("tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.nth(0)).to_have_attribute("data-purchase", "b2")
    expect(rows.nth(1).locator(".portal-desc")).to_have_text("Pro <b>plan</b>")  # text, never markup
    expect(rows.nth(1).locator(".portal-amount")).to_have_text("USD 19.00")
    expect(rows.nth(0).locator(".portal-copy")).to_have_count(1)  # no invoice for b2
    expect(rows.nth(1).locator(".portal-copy")).to_have_count(2)
    expect(section.locator(".portal-resubscribe")).to_have_count(1)  # unsubscribed: the operator may undo it

    rows.nth(1).get_by_role("button", name="Invoice link for b1").click()
    expect(section.locator(".portal-status")).to_contain_text("Invoice link for b1 copied")
    # the message says until when the copied link works (expires_at from the endpoint): the day
    # and time in the viewer's zone and in UTC, so a 24 h link never reads as already expired
    when = r"\w{3} \d{1,2} \w{3}, \d\d:\d\d CET \((\w{3} \d{1,2} \w{3}, )?\d\d:\d\d UTC\)"
    expect(section.locator(".portal-status")).to_contain_text(re.compile(rf"valid until {when}\)$"))
    expect(section.locator(".portal-valid")).to_have_text(re.compile(rf"^Links valid until {when}$"))
    expect(rows.nth(1).locator('[data-kind="invoice"]')).to_have_attribute(
        "data-expires", re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
    )
    copied = rows.nth(1).locator('[data-kind="invoice"]').get_attribute("data-copied")
    assert copied.startswith("http://127.0.0.1:1/api/portal/download?token=v1.")
    assert page.evaluate("navigator.clipboard.readText()") == copied

    # the copied link works (on the real server), and the access shows up in the card
    path = copied.split("127.0.0.1:1", 1)[1]
    assert httpx.get(server.url + path).status_code == 200
    assert httpx.get(server.url + path + "x").status_code == 403
    page.get_by_role("button", name="Refresh").click()
    items = section.locator(".portal-access li")
    # this customer's attempts only (a tampered token proves no email, so it is not theirs),
    # the admin lookup and the unsubscribe included; the refresh did not look the customer up again
    expect(items).to_have_count(3)
    expect(items.nth(0)).to_have_attribute("data-status", "200")
    expect(items.nth(0)).to_contain_text("invoice:b1")
    expect(items.nth(1)).to_contain_text("lookup receipts")
    expect(items.nth(2)).to_contain_text("unsubscribe subscription")
    # the looked-up email survives the refresh
    expect(section.locator("#portal-email")).to_have_value("QA@echopilot.ai")
    # with no email, every recent attempt shows, the 403 with its reason
    section.locator("#portal-email").fill("")
    section.get_by_role("button", name="Look up").click()
    expect(items).to_have_count(5)  # the two lookups too: the malformed one refused with 400
    expect(items.nth(3)).to_have_attribute("data-status", "400")
    expect(items.nth(0)).to_have_attribute("data-status", "403")
    expect(items.nth(0).locator(".portal-reason")).to_have_text("tampered: signature does not match")


@pytest.mark.browser
def test_refunds_synced_from_stripe_show_under_the_amount(open_card, monkeypatch):
    from echoops.core.portal.stripe import sync
    from tests.fakes_stripe import FakeStripe, charge

    monkeypatch.setenv("PORTAL_SIGNING_SECRET", SECRET)
    t = 1_795_000_000
    charges = [
        charge("ch_full", "r@example.com", 2000, t, refunded=2000),
        charge("ch_part", "r@example.com", 3000, t + 1, refunded=500),
        charge("ch_none", "r@example.com", 1000, t + 2),
    ]
    with FakeStripe({"charges": charges, "invoices": [], "invoice_payments": []}) as fake:
        monkeypatch.setenv("STRIPE_API_BASE", fake.url)
        monkeypatch.setenv("STRIPE_API_KEY", fake.key)
        assert sync.sync_stripe()["added"] == 3
    page, section = open_card("portal", PORTAL_SIGNING_SECRET=SECRET)
    section.locator("#portal-email").fill("r@example.com")
    section.get_by_role("button", name="Look up").click()
    rows = section.locator("tbody tr")
    expect(rows).to_have_count(3)
    expect(section.locator('[data-purchase="ch_full"] .portal-amount')).to_have_text("USD 20.00refunded")
    expect(section.locator('[data-purchase="ch_part"] .portal-amount')).to_have_text("USD 30.00refunded USD 5.00")
    expect(section.locator('[data-purchase="ch_none"] .portal-refund')).to_have_count(0)


@pytest.mark.browser
def test_an_operator_resubscribes_a_customer_from_the_card(open_card, log_dir, monkeypatch):
    monkeypatch.setenv("PORTAL_SIGNING_SECRET", SECRET)
    portal.set_subscription("qa@echopilot.ai", True)
    page, section = open_card("portal", PORTAL_SIGNING_SECRET=SECRET)
    section.locator("#portal-email").fill("qa@echopilot.ai")
    section.get_by_role("button", name="Look up").click()
    expect(section.locator(".portal-sub")).to_have_text("\u2715UNSUBSCRIBED")
    section.get_by_role("button", name="Resubscribe").click()
    expect(section.locator(".portal-sub")).to_have_text("\u2713SUBSCRIBED")  # looked up again: the new state
    expect(section.locator(".portal-status")).to_have_text("qa@echopilot.ai is subscribed again")
    expect(section.locator(".portal-resubscribe")).to_have_count(0)
    assert portal.receipts("qa@echopilot.ai")["unsubscribed"] is False
    # the operator's action is in the access audit, with who asked from where
    [entry] = [e for e in portal.audit()["entries"] if e.get("action") == "resubscribe"]
    assert (entry["email"], entry["resource"], entry["status"], entry["route"]) == (
        "qa@echopilot.ai", "subscription", 200, "POST /api/portal/resubscribe",
    )  # fmt: skip
    # newest first: the lookup that showed the new state, then the resubscribe
    expect(section.locator(".portal-access li").nth(1)).to_contain_text("resubscribe subscription")
