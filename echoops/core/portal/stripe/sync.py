"""Fill the purchase ledger from Stripe: invoices (with `invoice_pdf`) and charges (with `receipt_url`).

An invoice becomes one purchase (id `in_…`, its number, its PDF as the invoice document);
the charge that paid it adds its receipt URL and fee to that row instead of a second
purchase. A charge without an invoice is a purchase of its own. Failed charges and draft
invoices are not purchases. Rows go through the same validation as `portal import` and are
upserted by id, so re-running a sync is safe.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from echoops.core import clock, config, store
from echoops.core.config import Settings
from echoops.core.portal import ledger
from echoops.core.portal.rows import check_document, purchase_row
from echoops.core.portal.stripe import client

INVOICE_STATES = ("open", "paid", "uncollectible")


def _email(obj: dict[str, Any]) -> str | None:
    details = obj.get("billing_details")
    if not isinstance(details, dict):
        details = {}
    return obj.get("customer_email") or details.get("email") or obj.get("receipt_email")


def _fee(charge: dict[str, Any]) -> int | None:
    txn = charge.get("balance_transaction")
    if isinstance(txn, dict) and isinstance(txn.get("fee"), int):
        return txn["fee"]
    return None


def _doc(url: object) -> str | None:
    if not isinstance(url, str) or not url:
        return None
    try:
        return check_document(url)
    except ValueError:
        return None


def _invoice_record(inv: dict[str, Any]) -> dict[str, Any]:
    status = inv.get("status")
    return {
        "id": inv.get("id"),
        "email": _email(inv),
        "created": inv.get("created"),
        "amount_cents": inv.get("amount_paid") if status == "paid" else inv.get("amount_due"),
        "currency": inv.get("currency"),
        "description": inv.get("description") or (f"Invoice {inv['number']}" if inv.get("number") else "Invoice"),
        "status": status,
        "invoice_number": inv.get("number"),
        "invoice_document": inv.get("invoice_pdf") or inv.get("hosted_invoice_url"),
    }


def _charge_record(ch: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": ch.get("id"),
        "email": _email(ch),
        "created": ch.get("created"),
        "amount_cents": ch.get("amount"),
        "currency": ch.get("currency"),
        "description": ch.get("description") or "",
        "status": "refunded" if ch.get("refunded") else "paid",
        "fee_cents": _fee(ch),
        "document": ch.get("receipt_url"),
    }


def sync_stripe(*, since: float | None = None, s: Settings | None = None, now: float | None = None) -> dict[str, Any]:
    """Upsert Stripe invoices and charges created at or after `since` (epoch s) into the ledger.

    Returns `{"invoices", "charges", "landed", "skipped": {reason: n}}`. NotConfigured without
    STRIPE_API_KEY, StripeError when Stripe refuses or stays down (nothing lands then).
    """
    s = s or config.settings()
    stamp = clock.now_s(now)
    params: dict[str, Any] = {} if since is None else {"created[gte]": int(since)}
    skipped: Counter[str] = Counter()
    rows: dict[str, tuple] = {}
    seen: Counter[str] = Counter()
    for inv in client.iter_list("/v1/invoices", params, s=s):
        seen["invoices"] += 1
        if inv.get("status") not in INVOICE_STATES:
            skipped[f"invoice {inv.get('status')}"] += 1
            continue
        try:
            rows[inv["id"]] = purchase_row(_invoice_record(inv), source="stripe", now=stamp)
        except (ValueError, KeyError) as exc:
            skipped[f"invoice: {str(exc).split(':')[0]}"] += 1
    attach: list[tuple[str | None, int | None, str]] = []
    for ch in client.iter_list("/v1/charges", {**params, "expand[]": "data.balance_transaction"}, s=s):
        seen["charges"] += 1
        if ch.get("status") != "succeeded":
            skipped[f"charge {ch.get('status')}"] += 1
            continue
        invoice_id = ch.get("invoice")
        if isinstance(invoice_id, dict):
            invoice_id = invoice_id.get("id")
        if invoice_id and invoice_id in rows:
            row = list(rows[invoice_id])
            row[ledger.COLUMNS.index("receipt_doc")] = _doc(ch.get("receipt_url"))
            if _fee(ch) is not None:
                row[ledger.COLUMNS.index("fee_cents")] = _fee(ch)
            rows[invoice_id] = tuple(row)
            continue
        if invoice_id:
            # the invoice came in an earlier sync: attach to it if it is in the ledger
            attach.append((_doc(ch.get("receipt_url")), _fee(ch), invoice_id))
            continue
        try:
            rows[ch["id"]] = purchase_row(_charge_record(ch), source="stripe", now=stamp)
        except (ValueError, KeyError) as exc:
            skipped[f"charge: {str(exc).split(':')[0]}"] += 1
    conn = ledger.conn_for(s)
    with store.transaction(conn):
        conn.executemany(ledger.UPSERT_SQL, list(rows.values()))
        attached = 0
        for receipt_url, fee, invoice_id in attach:
            cur = conn.execute(
                "UPDATE portal_purchases SET receipt_doc=coalesce(?, receipt_doc), fee_cents=coalesce(?, fee_cents), "
                "updated_at=? WHERE id=?",
                (receipt_url, fee, stamp, invoice_id),
            )
            attached += cur.rowcount
        if attached < len(attach):
            skipped["charge for an invoice not in the ledger"] += len(attach) - attached
    return {
        "invoices": seen["invoices"],
        "charges": seen["charges"],
        "landed": len(rows) + attached,
        "skipped": dict(skipped),
    }
