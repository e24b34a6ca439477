"""`echoops portal sync-stripe` against the loopback Stripe imitation: paging, 429s, invoice+charge merge."""

from __future__ import annotations

import orjson
import pytest

from echoops.core import portal
from echoops.core.portal import ledger
from echoops.core.portal.stripe import sync
from tests.fakes_stripe import FakeStripe, charge, invoice

T = 1_795_000_000


@pytest.fixture
def fake(monkeypatch):
    charges = [charge(f"ch_{i:03d}", f"buyer{i % 4}@example.com", 1000 + i, T + i, fee=30 + i) for i in range(230)]
    charges += [
        charge("ch_inv", "QA@echopilot.ai", 4900, T + 500, fee=172, invoice="in_1"),
        charge("ch_failed", "qa@echopilot.ai", 4900, T + 501, status="failed"),
        charge("ch_noemail", "", 100, T + 502),
    ]
    invoices = [
        invoice("in_1", "qa@echopilot.ai", 4900, T + 499, number="EP-0001", description="Team plan"),
        invoice("in_draft", "qa@echopilot.ai", 100, T + 10, status="draft"),
    ]
    with FakeStripe({"charges": charges, "invoices": invoices}) as fake:
        monkeypatch.setenv("STRIPE_API_BASE", fake.url)
        monkeypatch.setenv("STRIPE_API_KEY", fake.key)
        monkeypatch.setenv("PORTAL_SIGNING_SECRET", "stripe-test-signing-key-0123456789abcdef")
        yield fake


def test_sync_pages_backs_off_and_merges_invoice_with_its_charge(fake, settings, monkeypatch):
    monkeypatch.setattr("time.sleep", lambda _s: None)
    fake.rate_limit_every(3)
    report = sync.sync_stripe()
    assert report == {
        "invoices": 2,
        "charges": 233,
        "landed": 231,
        "skipped": {"invoice draft": 1, "charge failed": 1, "charge: email": 1},
    }
    assert ledger.count() == 231
    # three charge pages of 100 plus the invoices page, with 429s retried in between
    pages = [p.get("starting_after") for path, p, _ in fake.requests if path == "/v1/charges"]
    assert len([p for p in pages if p is None]) >= 1
    assert list(dict.fromkeys(p[0] if p else None for p in pages)) == [None, "ch_133", "ch_033"]
    assert len(fake.requests) > 4  # every third request was a 429, retried with the same cursor
    assert any(p for _, p, _ in fake.requests if p.get("expand[]") == ["data.balance_transaction"])

    qa = portal.receipts("qa@echopilot.ai")["purchases"]
    assert [(p["id"], p["amount"], p["invoice_number"], p["description"]) for p in qa] == [
        ("in_1", 4900, "EP-0001", "Team plan")
    ]
    conn = ledger.conn_for(settings)
    row = dict(conn.execute("SELECT * FROM portal_purchases WHERE id='in_1'").fetchone())
    assert row["receipt_doc"] == "https://pay.stripe.com/receipts/ch_inv"
    assert row["invoice_doc"] == "https://pay.stripe.com/invoice/in_1/pdf"
    assert row["fee_cents"] == 172 and row["source"] == "stripe"
    ch = dict(conn.execute("SELECT * FROM portal_purchases WHERE id='ch_007'").fetchone())
    assert (ch["email"], ch["amount_cents"], ch["fee_cents"]) == ("buyer3@example.com", 1007, 37)

    # idempotent
    again = sync.sync_stripe()
    assert again["landed"] == 231 and ledger.count() == 231


def test_since_filters_and_attaches_charges_to_invoices_from_earlier_syncs(fake):
    sync.sync_stripe()
    fake.add("charges", charge("ch_late", "qa@echopilot.ai", 4900, T + 900, fee=200, invoice="in_1"))
    report = sync.sync_stripe(since=T + 800)
    assert report["charges"] == 1 and report["invoices"] == 0 and report["landed"] == 1
    row = ledger.purchase("in_1")
    assert row["receipt_doc"] == "https://pay.stripe.com/receipts/ch_late" and row["fee_cents"] == 200


def test_a_later_charge_without_a_receipt_keeps_the_invoice_receipt_link(fake):
    sync.sync_stripe()
    assert ledger.purchase("in_1")["receipt_doc"] == "https://pay.stripe.com/receipts/ch_inv"
    late = charge("ch_noreceipt", "qa@echopilot.ai", 4900, T + 900, fee=None, invoice="in_1")
    late["receipt_url"] = None
    fake.add("charges", late)
    sync.sync_stripe(since=T + 800)
    row = ledger.purchase("in_1")
    assert row["receipt_doc"] == "https://pay.stripe.com/receipts/ch_inv" and row["fee_cents"] == 172


def test_sync_stripe_cli(fake, cli, log_dir):
    result = cli("portal", "sync-stripe", "--json")
    assert result.exit_code == 0, result.output
    assert orjson.loads(result.stdout)["landed"] == 231
    fees = portal.fees_by_day()
    assert list(fees) == ["2026-11-18"] and fees["2026-11-18"]["usd"] == sum(30 + i for i in range(230)) + 172


def test_sync_without_key_is_exit_2(cli):
    result = cli("portal", "sync-stripe")
    assert result.exit_code == 2 and "STRIPE_API_KEY" in result.output


def test_stripe_down_is_exit_1_and_lands_nothing(fake, cli, monkeypatch):
    monkeypatch.setattr("time.sleep", lambda _s: None)
    fake.fail_next(50, status=500)
    result = cli("portal", "sync-stripe")
    assert result.exit_code == 1 and "gave up" in result.output and fake.key not in result.output
    assert ledger.count() == 0


def test_bad_since_names_the_option_and_calls_no_one(cli, monkeypatch):
    monkeypatch.setenv("STRIPE_API_KEY", "sk_test_never_used_0123456789")
    result = cli("portal", "sync-stripe", "--since", "last tuesday")
    assert result.exit_code == 2
    assert "Error: --since: 'last tuesday' is not an ISO-8601 time or epoch seconds" in result.output
