"""`portal sync-stripe` and the Stripe fee read against localstripe, a third-party Stripe emulator,
seeded through the official stripe client (tests/localstripe_server.py says what it lacks)."""

from __future__ import annotations

import orjson
import pytest

from echoops.core import costs, portal
from echoops.core.portal import ledger
from tests.localstripe_server import LocalStripe

SECRET = "localstripe-test-signing-key-0123456789abcdef"


def _card(sc, number: str) -> str:
    pm = sc.v1.payment_methods.create(
        params={"type": "card", "card": {"number": number, "exp_month": 12, "exp_year": 2031, "cvc": "123"}}
    )
    return pm.id


def _customer(sc, email: str | None, number: str = "4242424242424242") -> str:
    """A customer with a saved card as its default payment method (the way Checkout leaves them)."""
    pm = _card(sc, number)
    params: dict = {"payment_method": pm, "invoice_settings": {"default_payment_method": pm}}
    if email:
        params["email"] = email
    return sc.v1.customers.create(params=params).id


def seed(sc) -> dict[str, str]:
    """Customers with saved cards, standalone charges in USD and EUR (one refunded in full, one in
    part), a declined charge, a charge of a customer without email, two subscription invoices, a
    one-off invoice paid with the saved card, and a draft invoice. Returns the ids by name."""
    import stripe

    ids: dict[str, str] = {}
    ann = ids["ann"] = _customer(sc, "Ann@Example.com")
    bob = ids["bob"] = _customer(sc, "bob@example.com")
    nomail = ids["nomail"] = _customer(sc, None)
    dee = ids["dee"] = _customer(sc, "dee@example.com", "4000000000000341")  # attaches, then declines

    product = sc.v1.products.create(params={"name": "Pro"})
    plan = sc.v1.plans.create(params={"amount": 1900, "currency": "usd", "interval": "month", "product": product.id})
    for name, cus in (("sub_ann", ann), ("sub_bob", bob)):
        sub = sc.v1.subscriptions.create(params={"customer": cus, "items": [{"plan": plan.id}]})
        ids[name] = sub.latest_invoice
    for desc, amount in (("Setup fee", 5000), ("Onboarding call", 2500), ("Training", 1000)):
        sc.v1.invoice_items.create(params={"customer": ann, "amount": amount, "currency": "usd", "description": desc})
    oneoff = sc.v1.invoices.create(params={"customer": ann})
    ids["oneoff"] = sc.v1.invoices.pay(oneoff.id).id

    charge = sc.v1.charges.create
    ids["credits"] = charge(params={"amount": 1500, "currency": "usd", "customer": ann, "description": "Credits"}).id
    ids["seats"] = charge(params={"amount": 2000, "currency": "eur", "customer": bob, "description": "Extra seats"}).id
    ids["addon"] = charge(params={"amount": 750, "currency": "eur", "customer": ann, "description": "Add-on"}).id
    ids["gift"] = charge(params={"amount": 1200, "currency": "usd", "customer": bob, "description": "Gift card"}).id
    ids["orphan"] = charge(params={"amount": 500, "currency": "usd", "customer": nomail, "description": "Tip"}).id
    with pytest.raises(stripe.CardError):
        charge(params={"amount": 1000, "currency": "usd", "customer": dee, "description": "Declined"})
    sc.v1.refunds.create(params={"charge": ids["credits"], "amount": 500})  # partial
    sc.v1.refunds.create(params={"charge": ids["gift"]})  # full

    sc.v1.invoice_items.create(params={"customer": bob, "amount": 3000, "currency": "eur", "description": "Consulting"})
    ids["draft"] = sc.v1.invoices.create(params={"customer": bob}).id
    return ids


@pytest.fixture(scope="module")
def seeded():
    with LocalStripe() as ls:
        ids = seed(ls.client())
        yield ls, ids


@pytest.fixture
def stripe_env(seeded, monkeypatch):
    ls, ids = seeded
    monkeypatch.setenv("STRIPE_API_BASE", ls.url)
    monkeypatch.setenv("STRIPE_API_KEY", ls.key)
    monkeypatch.setenv("PORTAL_SIGNING_SECRET", SECRET)
    return ids


def _ledger(settings) -> list[tuple]:
    conn = ledger.conn_for(settings)
    return [
        tuple(r)
        for r in conn.execute(
            "SELECT id, email, amount_cents, currency, description, status, refunded_cents, invoice_number, "
            "fee_cents, receipt_doc, invoice_doc, updated_at FROM portal_purchases ORDER BY email, amount_cents"
        )
    ]


def test_sync_lands_each_paid_invoice_and_standalone_charge_once_under_the_customer_email(stripe_env, cli, settings):
    ids = stripe_env
    result = cli("portal", "sync-stripe", "--json")
    assert result.exit_code == 0, result.output
    report = orjson.loads(result.stdout)
    assert report == {
        "api_version": "2026-10-28.endive",
        "read": {"invoices": 4, "charges": 9},
        "linked_by": "invoice and charge fields (no /v1/invoice_payments)",
        "landed": 7,
        "added": 7,
        "updated": 0,
        "removed": 0,
        "skipped": {"invoice draft": 1, "charge failed": 1, "no email": 1},
        "skipped_ids": {"no email": [ids["orphan"]]},
    }
    rows = [r[:-1] for r in _ledger(settings)]
    # (id, email, amount, currency, description, status, refunded, number, fee, receipt, invoice doc)
    assert rows == [
        (ids["addon"], "ann@example.com", 750, "eur", "Add-on", "paid", 0, None, 0, None, None),
        (ids["credits"], "ann@example.com", 1500, "usd", "Credits", "paid", 500, None, 0, None, None),
        (ids["sub_ann"], "ann@example.com", 1900, "usd", "Pro", "paid", 0, None, 0, None, None),
        (ids["oneoff"], "ann@example.com", 10400, "usd", "Pro + 3 more", "paid", 0, None, 0, None, None),
        (ids["gift"], "bob@example.com", 1200, "usd", "Gift card", "refunded", 1200, None, 0, None, None),
        (ids["sub_bob"], "bob@example.com", 1900, "usd", "Pro", "paid", 0, None, 0, None, None),
        (ids["seats"], "bob@example.com", 2000, "eur", "Extra seats", "paid", 0, None, 0, None, None),
    ]
    # The charges that paid the three invoices are not purchases of their own
    assert ledger.count() == 7
    ann = portal.receipts("ann@example.com")["purchases"]
    credits = next(p for p in ann if p["id"] == ids["credits"])
    assert (credits["refunded"], credits["refunded_display"], credits["status"]) == (500, "USD 5.00", "paid")


def test_a_second_sync_adds_and_changes_nothing(stripe_env, cli, settings):
    first = cli("portal", "sync-stripe", "--json")
    assert first.exit_code == 0, first.output
    before = _ledger(settings)
    again = cli("portal", "sync-stripe", "--json")
    assert again.exit_code == 0, again.output
    report = orjson.loads(again.stdout)
    assert (report["landed"], report["added"], report["updated"], report["removed"]) == (7, 0, 0, 0)
    assert _ledger(settings) == before  # updated_at included: no row was rewritten


def test_a_failed_fee_read_is_an_error_in_costs_status_and_tick_exits_1(stripe_env, cli):
    # localstripe refuses `created[gte]` on /v1/balance_transactions (Stripe documents it)
    result = cli("costs", "tick", "--now", "2026-11-30T12:00:00Z")
    assert result.exit_code == 1
    assert "Stripe fees could not be read: Stripe answered 400 to /v1/balance_transactions" in result.stderr
    body = costs.status(now=1_796_040_000)
    fees = body["stripe_fees"]
    assert fees["error"].startswith("Stripe answered 400 to /v1/balance_transactions: Unexpected created")
    assert (fees["spent_usd"], fees["source"], fees["fetched_at"]) == (0.0, None, None)
