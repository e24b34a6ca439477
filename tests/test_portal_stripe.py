"""`echoops portal sync-stripe` against the loopback Stripe (tests/fakes_stripe.py) in the pinned
API version's shapes: Invoice Payments, emails from Customers, refunds, paging, 429s.
The same sync against the real emulator is in test_stripe_localstripe.py."""

from __future__ import annotations

import orjson
import pytest

from echoops.core import portal
from echoops.core.portal import ledger
from echoops.core.portal.stripe import client, sync
from tests.fakes_stripe import FakeStripe, charge, customer, invoice, invoice_payment, refund

T = 1_795_000_000
VERSION = "2026-10-28.endive"


@pytest.fixture
def fake(monkeypatch):
    charges = [charge(f"ch_{i:03d}", f"buyer{i % 4}@example.com", 1000 + i, T + i, fee=30 + i) for i in range(230)]
    charges += [
        # paid in_1 through its payment intent; a saved card, so no email of its own
        charge("ch_inv", None, 4900, T + 500, fee=172, customer="cus_qa", payment_intent="pi_inv"),
        charge("ch_failed", "qa@echopilot.ai", 4900, T + 501, status="failed"),
        charge("ch_gone", None, 100, T + 502, customer="cus_gone"),  # deleted customer: no email anywhere
        charge("ch_saved1", None, 700, T + 503, customer="cus_saved", description="Credits"),
        charge("ch_saved2", None, 800, T + 504, customer="cus_saved", description="Credits"),
    ]
    invoices = [
        invoice("in_1", "qa@echopilot.ai", 4900, T + 499, number="EP-0001", description="Team plan", customer="cus_qa"),
        invoice("in_draft", "qa@echopilot.ai", 100, T + 10, status="draft", customer="cus_qa"),
    ]
    data = {
        "charges": charges,
        "invoices": invoices,
        "invoice_payments": [invoice_payment("inpay_1", "in_1", 4900, T + 500, payment_intent="pi_inv")],
        "customers": [
            customer("cus_qa", "qa@echopilot.ai"),
            customer("cus_saved", "Saved@Example.com"),
            customer("cus_gone", None, deleted=True),
        ],
        "refunds": [],
        "balance_transactions": [],
    }
    with FakeStripe(data) as fake:
        monkeypatch.setenv("STRIPE_API_BASE", fake.url)
        monkeypatch.setenv("STRIPE_API_KEY", fake.key)
        monkeypatch.setenv("PORTAL_SIGNING_SECRET", "stripe-test-signing-key-0123456789abcdef")
        monkeypatch.setattr("time.sleep", lambda _s: None)
        yield fake


def _row(pid: str) -> dict:
    return dict(ledger.purchase(pid))


def test_sync_pages_backs_off_and_lands_one_purchase_per_payment(fake, settings):
    fake.rate_limit_every(3)
    report = sync.sync_stripe()
    assert report == {
        "api_version": VERSION,
        "read": {"invoices": 2, "invoice_payments": 1, "charges": 235},
        "linked_by": "invoice payments",
        "landed": 233,
        "added": 233,
        "updated": 0,
        "removed": 0,
        "skipped": {"invoice draft": 1, "charge failed": 1, "no email": 1},
        "skipped_ids": {"no email": ["ch_gone"]},
    }
    assert ledger.count() == 233  # in_1, 230 charges, ch_saved1, ch_saved2; ch_inv is in_1's payment
    # every request pins the API version and asks for at most 100 objects
    assert len(fake.headers) == len(fake.requests) > 5
    assert {h["Stripe-Version"] for h in fake.headers} == {VERSION}
    assert {q["limit"][0] for path, q, _ in fake.requests if path != "/v1/customers/cus_saved"} == {"100"}
    # three charge pages of 100, each cursor the previous page's last id, 429s retried in place
    pages = [q.get("starting_after") for path, q, _ in fake.requests if path == "/v1/charges"]
    assert list(dict.fromkeys(p[0] if p else None for p in pages)) == [None, "ch_135", "ch_035"]
    charge_query = next(q for path, q, _ in fake.requests if path == "/v1/charges")
    assert charge_query["expand[]"] == ["data.balance_transaction", "data.customer"]

    qa = portal.receipts("qa@echopilot.ai")["purchases"]
    assert [(p["id"], p["amount"], p["invoice_number"], p["description"], p["refunded"]) for p in qa] == [
        ("in_1", 4900, "EP-0001", "Team plan", 0)
    ]
    row = _row("in_1")
    assert row["receipt_doc"] == "https://pay.stripe.com/receipts/payment/ch_inv"
    assert row["invoice_doc"] == "https://pay.stripe.com/invoice/in_1/pdf"
    assert (row["fee_cents"], row["source"], row["status"]) == (172, "stripe", "paid")
    ch = _row("ch_007")
    assert (ch["email"], ch["amount_cents"], ch["fee_cents"]) == ("buyer3@example.com", 1007, 37)
    # a saved card's charge lands under its Customer's email (expanded with the charge)
    saved = portal.receipts("saved@example.com")["purchases"]
    assert [(p["id"], p["amount"]) for p in saved] == [("ch_saved2", 800), ("ch_saved1", 700)]


def test_a_second_sync_adds_and_changes_nothing(fake, settings):
    sync.sync_stripe()
    conn = ledger.conn_for(settings)
    before = conn.execute("SELECT * FROM portal_purchases ORDER BY id").fetchall()
    again = sync.sync_stripe(now=T + 10_000)
    assert (again["landed"], again["added"], again["updated"], again["removed"]) == (233, 0, 0, 0)
    after = conn.execute("SELECT * FROM portal_purchases ORDER BY id").fetchall()
    assert [tuple(r) for r in after] == [tuple(r) for r in before]  # updated_at untouched too


def test_invoices_without_an_email_take_their_customer_s_read_once_per_sync(fake):
    fake.add("customers", customer("cus_inv", "Inv@Example.com"))
    for i in range(3):
        fake.add("invoices", invoice(f"in_c{i}", None, 1900, T + 600 + i, customer="cus_inv", lines=["Pro"]))
    fake.add("invoices", invoice("in_s", None, 1900, T + 610, customer="cus_saved", lines=["Pro"]))
    fake.add("invoices", invoice("in_x", None, 1900, T + 611, customer="cus_missing", lines=["Pro"]))  # 404
    report = sync.sync_stripe()
    # cus_inv read once for three invoices; cus_saved came expanded with its charges, never read
    assert report["read"]["customers"] == 2
    assert report["skipped_ids"] == {"no email": ["in_x", "ch_gone"]}
    assert fake.paths().count("/v1/customers/cus_inv") == 1 and "/v1/customers/cus_saved" not in fake.paths()
    assert [p["id"] for p in portal.receipts("inv@example.com")["purchases"]] == ["in_c2", "in_c1", "in_c0"]
    assert portal.receipts("saved@example.com")["purchases"][0]["id"] == "in_s"


def test_descriptions_come_from_the_first_line_item(fake):
    fake.add(
        "invoices",
        invoice("in_lines", "qa@echopilot.ai", 5700, T + 700, lines=["Pro (monthly)", "Extra seats", "Support"]),
        invoice("in_one", "qa@echopilot.ai", 1900, T + 701, lines=["Pro (monthly)"]),
        invoice("in_none", "qa@echopilot.ai", 100, T + 702, number="EP-0009"),
        invoice("in_many", "qa@echopilot.ai", 9900, T + 703, lines=[f"Seat {i}" for i in range(10)], more_lines=True),
    )
    fake.lines_for["in_many"] = fake.data["invoices"][-1]["lines"]["data"] + [
        {"id": f"il_x{i}", "object": "line_item", "description": f"Seat {10 + i}"} for i in range(3)
    ]
    sync.sync_stripe()
    assert _row("in_lines")["description"] == "Pro (monthly) + 2 more"
    assert _row("in_one")["description"] == "Pro (monthly)"
    assert _row("in_none")["description"] == "Invoice EP-0009"
    assert _row("in_many")["description"] == "Seat 0 + 12 more"  # counted through /v1/invoices/in_many/lines
    assert fake.paths().count("/v1/invoices/in_many/lines") == 1


def test_a_payment_intent_shared_by_invoice_and_charge_or_a_charge_payment_links_them(fake):
    fake.add(
        "invoices",
        invoice("in_pi", "pi@example.com", 2500, T + 800, customer="cus_qa"),
        invoice("in_ch", "ch@example.com", 3500, T + 801, customer="cus_qa"),
    )
    fake.add(
        "charges",
        charge("ch_pi", None, 2500, T + 802, fee=100, customer="cus_qa", payment_intent="pi_shared"),
        charge("ch_direct", None, 3500, T + 803, fee=120, customer="cus_qa"),
    )
    fake.add(
        "invoice_payments",
        invoice_payment("inpay_pi", "in_pi", 2500, T + 802, payment_intent="pi_shared"),
        invoice_payment("inpay_ch", "in_ch", 3500, T + 803, charge="ch_direct"),
    )
    sync.sync_stripe()
    assert [p["id"] for p in portal.receipts("pi@example.com")["purchases"]] == ["in_pi"]
    assert [p["id"] for p in portal.receipts("ch@example.com")["purchases"]] == ["in_ch"]
    assert (_row("in_pi")["fee_cents"], _row("in_ch")["fee_cents"]) == (100, 120)
    with pytest.raises(Exception, match="no purchase"):
        ledger.purchase("ch_pi")
    with pytest.raises(Exception, match="no purchase"):
        ledger.purchase("ch_direct")


def test_older_api_shapes_link_through_invoice_and_charge_fields(fake):
    """Accounts or servers still on the pre-2025-03-31.basil shapes (and no Invoice Payments)."""
    fake.refuse("/v1/invoice_payments", 404, "Unrecognized request URL (GET: /v1/invoice_payments)")
    fake.add(
        "invoices",
        invoice("in_old1", "old@example.com", 1000, T + 900, charge="ch_old1", legacy=True),
        invoice("in_old2", "old@example.com", 2000, T + 901, payment_intent="pi_old2", legacy=True),
    )
    fake.add(
        "charges",
        charge("ch_old1", "old@example.com", 1000, T + 902, legacy=True),
        charge("ch_old2", "old@example.com", 2000, T + 903, payment_intent="pi_old2", legacy=True),
        charge("ch_old3", "old@example.com", 3000, T + 904, invoice="in_old1", legacy=True),  # second payment
    )
    report = sync.sync_stripe()
    assert report["linked_by"] == "invoice and charge fields (no /v1/invoice_payments)"
    assert [p["id"] for p in portal.receipts("old@example.com")["purchases"]] == ["in_old2", "in_old1"]
    assert _row("in_old1")["receipt_doc"] == "https://pay.stripe.com/receipts/payment/ch_old3"  # the newest


def test_payments_carried_on_the_invoice_link_it_to_its_charge(fake):
    """`invoice.payments` (an includable field in current versions) is read when a server sends it."""
    fake.refuse("/v1/invoice_payments", 404, "Unrecognized request URL (GET: /v1/invoice_payments)")
    inv = invoice("in_inline", "inline@example.com", 2200, T + 950)
    inv["payments"] = {
        "object": "list",
        "data": [invoice_payment("inpay_inline", "in_inline", 2200, T + 951, payment_intent="pi_inline")],
        "has_more": False,
        "url": "/v1/invoice_payments?invoice=in_inline",
    }
    fake.add("invoices", inv)
    fake.add("charges", charge("ch_inline", "inline@example.com", 2200, T + 951, fee=94, payment_intent="pi_inline"))
    sync.sync_stripe()
    assert [p["id"] for p in portal.receipts("inline@example.com")["purchases"]] == ["in_inline"]
    assert _row("in_inline")["fee_cents"] == 94


def test_other_errors_from_invoice_payments_stop_the_sync(fake):
    fake.refuse("/v1/invoice_payments", 403, "The provided key does not have access to invoice payments")
    with pytest.raises(client.StripeError, match="403 to /v1/invoice_payments"):
        sync.sync_stripe()
    assert ledger.count() == 0


def test_refunds_full_and_partial_and_found_later_through_v1_refunds(fake, settings):
    fake.add("charges", charge("ch_full", "r@example.com", 2000, T + 1000, refunded=2000))
    fake.add("charges", charge("ch_part", "r@example.com", 3000, T + 1001, refunded=500))
    report = sync.sync_stripe()
    assert report["added"] == 235
    assert (_row("ch_full")["status"], _row("ch_full")["refunded_cents"]) == ("refunded", 2000)
    assert (_row("ch_part")["status"], _row("ch_part")["refunded_cents"]) == ("paid", 500)
    mine = {p["id"]: p for p in portal.receipts("r@example.com")["purchases"]}
    assert (mine["ch_part"]["refunded"], mine["ch_part"]["refunded_display"]) == (500, "USD 5.00")

    # Later: the rest of ch_part and in_1's payment are refunded; a sync of the last day sees the
    # refunds (the charges themselves are older than the window) and updates both purchases.
    later = T + 90_000
    for ch in fake.data["charges"]:
        if ch["id"] == "ch_part":
            ch.update(amount_refunded=3000, refunded=True)
        if ch["id"] == "ch_inv":
            ch.update(amount_refunded=900)
    fake.add("refunds", refund("re_1", "ch_part", 2500, later), refund("re_2", "ch_inv", 900, later + 1))
    first = len(fake.requests)
    report = sync.sync_stripe(since=later - 60)
    assert report["read"] == {"invoices": 0, "invoice_payments": 0, "charges": 0, "refunds": 2, "refunded_charges": 2}
    assert (report["added"], report["updated"]) == (0, 2)
    assert (_row("ch_part")["status"], _row("ch_part")["refunded_cents"]) == ("refunded", 3000)
    assert (_row("in_1")["status"], _row("in_1")["refunded_cents"]) == ("paid", 900)
    assert "/v1/charges/ch_part" in fake.paths()
    lists = ("/v1/invoices", "/v1/invoice_payments", "/v1/charges", "/v1/refunds")
    window = [q for path, q, _ in fake.requests[first:] if path in lists]
    assert len(window) == 4 and all(q["created[gte]"] == [str(later - 60)] for q in window)


@pytest.mark.parametrize("through", ["payment_intent", "charge"])
def test_a_charge_landed_alone_is_merged_into_its_invoice_once_the_link_appears(fake, through):
    intent = "pi_early" if through == "payment_intent" else None
    fake.add("charges", charge("ch_early", "e@example.com", 1500, T + 1100, payment_intent=intent))
    sync.sync_stripe()
    assert [p["id"] for p in portal.receipts("e@example.com")["purchases"]] == ["ch_early"]
    fake.add("invoices", invoice("in_late", "e@example.com", 1500, T + 1101))
    link = {"payment_intent": "pi_early"} if intent else {"charge": "ch_early"}
    fake.add("invoice_payments", invoice_payment("inpay_late", "in_late", 1500, T + 1102, **link))
    report = sync.sync_stripe(since=T + 1101)  # the charge itself is older than the window
    assert (report["read"]["charges"], report["added"], report["removed"]) == (0, 1, 1)
    assert [p["id"] for p in portal.receipts("e@example.com")["purchases"]] == ["in_late"]
    assert _row("in_late")["receipt_doc"] == "https://pay.stripe.com/receipts/payment/ch_early"


def test_a_charge_read_after_its_invoice_attaches_to_it(fake):
    sync.sync_stripe()
    fake.add("charges", charge("ch_late", None, 4900, T + 900, fee=200, customer="cus_qa", payment_intent="pi_inv"))
    report = sync.sync_stripe(since=T + 800)
    assert (report["read"]["charges"], report["read"]["invoices"], report["added"], report["updated"]) == (1, 0, 0, 1)
    row = _row("in_1")  # two payments of one invoice: fees add up, the newest receipt shows
    assert (row["receipt_doc"], row["fee_cents"]) == ("https://pay.stripe.com/receipts/payment/ch_late", 372)


def test_a_later_charge_without_a_receipt_keeps_the_invoice_receipt_link(fake):
    sync.sync_stripe()
    fake.add(
        "charges",
        charge("ch_noreceipt", None, 4900, T + 900, customer="cus_qa", payment_intent="pi_inv", receipt_url=None),
    )
    sync.sync_stripe(since=T + 800)
    row = _row("in_1")
    assert row["receipt_doc"] == "https://pay.stripe.com/receipts/payment/ch_inv" and row["fee_cents"] == 172


def test_an_open_invoice_voided_later_is_marked_void_and_a_void_one_never_lands(fake):
    fake.add("invoices", invoice("in_open", "o@example.com", 4000, T + 1200, status="open"))
    fake.add("invoices", invoice("in_void", "o@example.com", 5000, T + 1201, status="void"))
    report = sync.sync_stripe()
    assert report["skipped"]["invoice void"] == 1
    assert [(p["id"], p["status"], p["amount"]) for p in portal.receipts("o@example.com")["purchases"]] == [
        ("in_open", "open", 4000)
    ]
    next(i for i in fake.data["invoices"] if i["id"] == "in_open")["status"] = "void"
    report = sync.sync_stripe()
    assert (report["added"], report["updated"]) == (0, 1)
    assert _row("in_open")["status"] == "void"


def test_rows_from_before_payments_were_recorded_keep_their_fee_and_receipt(fake, settings):
    sync.sync_stripe()
    conn = ledger.conn_for(settings)
    with conn:
        conn.execute("DELETE FROM portal_stripe_payments")  # as an older echoops left the database
    fake.data["charges"] = [c for c in fake.data["charges"] if c["id"] != "ch_inv"]
    report = sync.sync_stripe()
    assert (report["added"], report["updated"]) == (0, 0)
    row = _row("in_1")
    assert (row["fee_cents"], row["receipt_doc"]) == (172, "https://pay.stripe.com/receipts/payment/ch_inv")


def test_sync_stripe_cli(fake, cli, log_dir):
    result = cli("portal", "sync-stripe", "--json")
    assert result.exit_code == 0, result.output
    assert orjson.loads(result.stdout)["added"] == 233
    fees = portal.fees_by_day()
    assert list(fees) == ["2026-11-18"] and fees["2026-11-18"]["usd"] == sum(30 + i for i in range(230)) + 172
    human = cli("portal", "sync-stripe")
    assert human.exit_code == 0
    assert human.stdout == (
        "read 2 invoice(s), 1 invoice payment(s), 235 charge(s); 233 purchase(s): 0 added, 0 updated\n"
        "skipped: invoice draft 1, charge failed 1, no email 1 (ch_gone)\n"
    )


def test_sync_without_key_is_exit_2(cli):
    result = cli("portal", "sync-stripe")
    assert result.exit_code == 2 and "STRIPE_API_KEY" in result.output


def test_stripe_down_is_exit_1_and_lands_nothing(fake, cli):
    fake.fail_next(50, status=500)
    result = cli("portal", "sync-stripe")
    assert result.exit_code == 1 and "gave up" in result.output and fake.key not in result.output
    assert ledger.count() == 0


def test_bad_since_names_the_option_and_calls_no_one(cli, monkeypatch):
    monkeypatch.setenv("STRIPE_API_KEY", "sk_test_never_used_0123456789")
    result = cli("portal", "sync-stripe", "--since", "last tuesday")
    assert result.exit_code == 2
    assert "Error: --since: 'last tuesday' is not an ISO-8601 time or epoch seconds" in result.output
