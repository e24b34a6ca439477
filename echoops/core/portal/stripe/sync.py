"""Fill the purchase ledger from Stripe: one purchase per payment, under the buyer's email.

Reads, 100 objects a page, `created[gte]` when `since` is given: `/v1/invoices`,
`/v1/invoice_payments`, `/v1/charges` (balance transaction and customer expanded) and, with
`since`, `/v1/refunds` (a refund made today of last month's charge).

- A paid, open or uncollectible invoice is one purchase (`in_…`: number, PDF, hosted page);
  the charges that paid it add their receipt link, fee and refunds to it and are never a
  purchase of their own. A charge belongs to an invoice when an Invoice Payment names it or
  its payment intent (current API versions), when the invoice names it (`invoice.charge` /
  `invoice.payment_intent`, older versions and emulators), when it names the invoice
  (`charge.invoice`, older versions), or when an earlier sync recorded the link.
- A succeeded, captured charge with no invoice is its own purchase (`ch_…`).
- Refunds: a fully refunded purchase has status `refunded`; a partial refund is kept as
  `refunded_cents`.
- Emails: the object's own (`customer_email`, `billing_details.email`, `receipt_email`), else
  the Customer's (expanded on charges; read once per customer per sync otherwise). A purchase
  with no email is skipped and its id reported.
- Drafts, failed, pending and uncaptured charges are not purchases; a voided invoice already
  in the ledger is marked `void`.

Each payment's link to its purchase (with the charge's fee, refunded amount and receipt URL) is
kept in `portal_stripe_payments`, so a charge or refund read by a later, narrower sync updates
the purchase it belongs to. Rows go through the same validation as `portal import`; a row is
written only when something in it changed, so re-running a sync adds and changes nothing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from echoops.core import clock, config, store
from echoops.core.config import Settings
from echoops.core.portal import ledger
from echoops.core.portal.rows import check_document, purchase_row
from echoops.core.portal.stripe import client, payments, shapes

SCHEMA = payments.SCHEMA
INVOICE_STATES = ("open", "paid", "uncollectible")
CHARGE_EXPAND = ["data.balance_transaction", "data.customer"]
MAX_IDS = 50  # ids listed per skip reason in the report
READ_ORDER = ("invoices", "invoice_lines", "invoice_payments", "charges", "refunds", "refunded_charges", "customers")
_I = {name: i for i, name in enumerate(ledger.COLUMNS)}


@dataclass
class _Charge:
    id: str
    purchase_id: str | None  # the invoice it paid, once known; else None (its own purchase)
    payment_intent: str | None
    customer: str | None
    email: str | None
    record: dict[str, Any]
    fee: int | None
    refunded: int
    receipt_url: str | None


@dataclass
class _Run:
    s: Settings
    params: dict[str, Any]
    stamp: float
    read: Counter = field(default_factory=Counter)
    skipped: Counter = field(default_factory=Counter)
    skipped_ids: dict[str, list[str]] = field(default_factory=dict)
    customers: dict[str, str | None] = field(default_factory=dict)  # customer id -> email, per sync

    def skip(self, reason: str, obj_id: object = None) -> None:
        self.skipped[reason] += 1
        if obj_id and reason == "no email":
            ids = self.skipped_ids.setdefault(reason, [])
            if len(ids) < MAX_IDS:
                ids.append(str(obj_id))

    def remember_customer(self, value: object) -> str | None:
        """The customer id of an expandable field; an expanded Customer fills the cache."""
        cid = shapes.ref_id(value)
        if cid and isinstance(value, dict):
            self.customers[cid] = shapes.customer_email(value)
        return cid

    def email_of_customer(self, cid: str | None) -> str | None:
        if not cid:
            return None
        if cid not in self.customers:
            try:
                customer = client.retrieve(f"/v1/customers/{cid}", s=self.s)
            except client.StripeError as exc:
                if exc.http_status != 404:
                    raise
                customer = None  # gone for good: the purchase has no email
            self.customers[cid] = shapes.customer_email(customer)
            self.read["customers"] += 1
        return self.customers[cid]


def _doc(url: object) -> str | None:
    if not isinstance(url, str) or not url:
        return None
    try:
        return check_document(url)
    except ValueError:
        return None


# --- reading ---------------------------------------------------------------------------------


def _invoice_record(run: _Run, inv: dict[str, Any]) -> dict[str, Any]:
    status = inv.get("status")
    _texts, more, total = shapes.line_descriptions(inv)
    count = None
    if more and total is None and not inv.get("description"):
        # Stripe sends the first page of lines: count the rest for "+ N more"
        count = sum(1 for _ in client.iter_list(f"/v1/invoices/{inv['id']}/lines", s=run.s))
        run.read["invoice_lines"] += count
    return {
        "id": inv.get("id"),
        "created": inv.get("created"),
        "amount_cents": inv.get("amount_paid") if status == "paid" else inv.get("amount_due"),
        "currency": inv.get("currency"),
        "description": shapes.invoice_description(inv, count),
        "status": status,
        "invoice_number": inv.get("number"),
        "invoice_document": inv.get("invoice_pdf") or inv.get("hosted_invoice_url"),
    }


@dataclass
class _Invoice:
    record: dict[str, Any]
    email: str | None
    customer: str | None
    hosted_url: str | None


def _read_invoices(run: _Run) -> tuple[list[_Invoice], dict[str, str], set[str]]:
    """Invoices to land, payment id -> invoice id links, and the ids of every invoice read."""
    out = []
    links: dict[str, str] = {}
    seen: set[str] = set()
    for inv in client.iter_list("/v1/invoices", run.params, s=run.s):
        run.read["invoices"] += 1
        inv_id = shapes.ref_id(inv.get("id"))
        if inv_id is None:
            run.skip("invoice without id")
            continue
        seen.add(inv_id)
        intents, charges = shapes.invoice_payment_refs(inv)
        for pid in intents | charges:
            links[pid] = inv_id
        status = inv.get("status")
        if status not in INVOICE_STATES and status != "void":
            run.skip(f"invoice {status}")
            continue
        cid = run.remember_customer(inv.get("customer"))
        out.append(_Invoice(_invoice_record(run, inv), shapes.own_email(inv), cid, _doc(inv.get("hosted_invoice_url"))))
    return out, links, seen


def _read_invoice_payments(run: _Run, links: dict[str, str]) -> str:
    """Add the Invoice Payments' links; which source linked invoices to payments."""
    try:
        run.read["invoice_payments"] += 0
        for ip in client.iter_list("/v1/invoice_payments", run.params, s=run.s):
            run.read["invoice_payments"] += 1
            inv_id = shapes.ref_id(ip.get("invoice"))
            if not inv_id:
                continue
            for pid in shapes.payment_refs(ip):
                if pid:
                    links[pid] = inv_id
    except client.StripeError as exc:
        if exc.http_status != 404:
            raise
        del run.read["invoice_payments"]
        # A server without Invoice Payments (an emulator; Stripe has them on every version
        # echoops pins): the invoices' and charges' own fields carry the links.
        return "invoice and charge fields (no /v1/invoice_payments)"
    return "invoice payments"


def _charge(run: _Run, ch: dict[str, Any], counted: str = "charges") -> _Charge | None:
    run.read[counted] += 1
    status = ch.get("status")
    if status != "succeeded":
        run.skip(f"charge {status}")
        return None
    if ch.get("captured") is False:
        run.skip("charge not captured")
        return None
    ch_id = shapes.ref_id(ch.get("id"))
    if ch_id is None:
        run.skip("charge without id")
        return None
    record = {
        "id": ch_id,
        "created": ch.get("created"),
        "amount_cents": ch.get("amount"),
        "currency": ch.get("currency"),
        "description": ch.get("description") or "",
        "status": "paid",
    }
    return _Charge(
        id=ch_id,
        purchase_id=shapes.ref_id(ch.get("invoice")),
        payment_intent=shapes.ref_id(ch.get("payment_intent")),
        customer=run.remember_customer(ch.get("customer")),
        email=shapes.own_email(ch),
        record=record,
        fee=shapes.fee_cents(ch),
        refunded=shapes.refunded_cents(ch),
        receipt_url=_doc(ch.get("receipt_url")),
    )


def _read_charges(run: _Run) -> list[_Charge]:
    params = {**run.params, "expand[]": CHARGE_EXPAND}
    out = [c for ch in client.iter_list("/v1/charges", params, s=run.s) if (c := _charge(run, ch))]
    if "created[gte]" in run.params:
        # A refund in the window of a charge from before it: read that charge again.
        seen = {c.id for c in out}
        wanted: list[str] = []
        run.read["refunds"] += 0
        for refund in client.iter_list("/v1/refunds", run.params, s=run.s):
            run.read["refunds"] += 1
            ch_id = shapes.ref_id(refund.get("charge"))
            if ch_id and ch_id not in seen:
                seen.add(ch_id)
                wanted.append(ch_id)
        for ch_id in wanted:
            obj = client.retrieve(f"/v1/charges/{ch_id}", {"expand[]": ["balance_transaction", "customer"]}, s=run.s)
            if c := _charge(run, obj, counted="refunded_charges"):
                out.append(c)
    return out


# --- writing ---------------------------------------------------------------------------------


def _existing(conn: store.Conn, ids: Iterable[str]) -> dict[str, tuple]:
    """Ledger rows by id: COLUMNS values plus refunded_cents at the end."""
    out: dict[str, tuple] = {}
    cols = ",".join(ledger.COLUMNS) + ",refunded_cents"
    for chunk in payments.chunks(ids):
        sql = f"SELECT {cols} FROM portal_purchases WHERE id IN ({','.join('?' * len(chunk))})"
        out.update((row[0], tuple(row)) for row in conn.execute(sql, chunk))
    return out


def _final(
    row: list, derived: tuple[int | None, int, str | None] | None, old: tuple | None, fallback_receipt: str | None
) -> int:
    """Apply a purchase's charges to its row (fee, receipt link, refunded status); its refunded
    cents. What no charge of this or an earlier sync says (rows landed before payments were
    recorded) is kept from the ledger row."""
    fee, refunded, receipt = derived or (None, 0, None)
    if fee is None and old is not None:
        fee = old[_I["fee_cents"]]
    if fee is not None:
        row[_I["fee_cents"]] = fee
    kept = old[_I["receipt_doc"]] if old is not None else None
    row[_I["receipt_doc"]] = receipt or row[_I["receipt_doc"]] or kept or fallback_receipt
    amount = row[_I["amount_cents"]]
    if row[_I["status"]] in ("paid", "refunded"):
        row[_I["status"]] = "refunded" if amount > 0 and refunded >= amount else "paid"
    return min(refunded, amount)


def _same(new: tuple, refunded: int, old: tuple | None) -> bool:
    if old is None:
        return False
    cols = len(ledger.COLUMNS)
    return new[1 : cols - 1] == old[1 : cols - 1] and refunded == old[cols]


def _link(conn: store.Conn, charges: list[_Charge], links: dict[str, str]) -> None:
    """Set each charge's invoice: its own field, this sync's links, then earlier syncs' links."""
    known = payments.known(conn, [c.id for c in charges] + [c.payment_intent for c in charges if c.payment_intent])
    for c in charges:
        earlier = known.get(c.id)
        c.purchase_id = (
            c.purchase_id
            or links.get(c.id)
            or links.get(c.payment_intent or "")
            or (earlier if earlier != c.id else None)
            or known.get(c.payment_intent or "")
        )


def _rows(run: _Run, invoices: list[_Invoice], charges: list[_Charge]) -> dict[str, tuple[list, bool]]:
    """Validated ledger rows by id, with whether the row may only update an existing one (void
    invoices). Emails are resolved here, outside the write transaction: a Customer may be read."""
    candidates = [(inv.record, inv.email, inv.customer, inv.record["status"] == "void") for inv in invoices]
    candidates += [(c.record, c.email, c.customer, False) for c in charges if c.purchase_id is None]
    rows: dict[str, tuple[list, bool]] = {}
    for record, email, cid, only_update in candidates:
        email = email or run.email_of_customer(cid)
        if not email:
            run.skip("no email", record["id"])
            continue
        try:
            row = purchase_row({**record, "email": email}, source="stripe", now=run.stamp)
        except (ValueError, KeyError) as exc:
            kind = "invoice" if str(record.get("id", "")).startswith("in_") else "charge"
            run.skip(f"{kind}: {str(exc).split(':')[0]}")
            continue
        rows[row[0]] = (list(row), only_update)
    return rows


def sync_stripe(*, since: float | None = None, s: Settings | None = None, now: float | None = None) -> dict[str, Any]:
    """Upsert Stripe invoices and charges created at or after `since` (epoch s) into the ledger.

    Returns `{"api_version", "read": {object: n}, "linked_by", "landed", "added", "updated",
    "removed", "skipped": {reason: n}, "skipped_ids": {"no email": [ids]}}`: `landed` purchases
    were valid in this sync, `added`/`updated` rows were written (both 0 on a re-run), `removed`
    charges had been landed alone before their invoice link was known. NotConfigured without
    STRIPE_API_KEY, StripeError when Stripe refuses or stays down (nothing lands then).
    """
    s = s or config.settings()
    run = _Run(s, {} if since is None else {"created[gte]": int(since)}, clock.now_s(now))
    run.read.update(invoices=0, charges=0)  # always reported; the others when read
    invoices, links, invoices_read = _read_invoices(run)
    linked_by = _read_invoice_payments(run, links)
    charges = _read_charges(run)
    conn = ledger.conn_for(s)
    store.ensure(conn, SCHEMA)
    _link(conn, charges, links)
    rows = _rows(run, invoices, charges)
    hosted = {inv.record["id"]: inv.hosted_url for inv in invoices}

    added = updated = 0
    with store.transaction(conn):
        charge_links = [
            payments.ChargeLink(
                c.id, c.purchase_id or c.id, c.payment_intent, c.record["created"], c.fee, c.refunded, c.receipt_url
            )
            for c in charges
        ]
        changed, removed = payments.record(conn, charge_links, links, run.stamp)
        touched = sorted(changed | set(rows))
        alone = {c.id for c in charges if c.purchase_id is None}
        totals = payments.totals(conn, touched)
        existing = _existing(conn, touched)
        writes: list[tuple] = []
        refunds: list[tuple] = []
        for pid in touched:
            old = existing.get(pid)
            if pid in rows:
                row, only_update = rows[pid]
                if only_update and old is None:
                    run.skip("invoice void")
                    continue
            elif old is not None:
                row = list(old[: len(ledger.COLUMNS)])  # a purchase from an earlier sync, updated by a payment
            else:
                if pid not in invoices_read and pid not in alone:  # else it was skipped, and said why
                    run.skip("charge of an invoice not in the ledger")
                continue
            refunded = _final(row, totals.get(pid), old, hosted.get(pid))
            if _same(tuple(row), refunded, old):
                continue
            row[_I["updated_at"]] = run.stamp
            writes.append(tuple(row))
            refunds.append((refunded, run.stamp, pid))
            added += old is None
            updated += old is not None
        conn.executemany(ledger.UPSERT_SQL, writes)
        conn.executemany("UPDATE portal_purchases SET refunded_cents=?, updated_at=? WHERE id=?", refunds)
    return {
        "api_version": client.API_VERSION,
        "read": {k: run.read[k] for k in READ_ORDER if k in run.read},
        "linked_by": linked_by,
        "landed": sum(1 for _row, only in rows.values() if not only),
        "added": added,
        "updated": updated,
        "removed": removed,
        "skipped": dict(run.skipped),
        "skipped_ids": run.skipped_ids,
    }
