"""Reading Stripe objects of the pinned API version, and of the older shapes servers still send.

Pure functions over decoded JSON, no I/O. What each reads (Stripe's API reference for
`client.API_VERSION`, older fields noted):

- Charge: `id`, `status`, `captured`, `amount`, `amount_refunded`, `refunded`, `currency`,
  `created`, `description`, `billing_details.email`, `receipt_email`, `receipt_url`,
  `customer`, `payment_intent`, `balance_transaction` (expanded: its `fee`); `invoice` before
  2025-03-31.basil.
- Invoice: `id`, `status`, `number`, `customer_email`, `customer`, `amount_paid`,
  `amount_due`, `currency`, `created`, `description`, `lines.data[].description`,
  `lines.has_more`, `invoice_pdf`, `hosted_invoice_url`, `payments` (when expanded);
  `charge` and `payment_intent` before 2025-03-31.basil.
- Invoice Payment: `invoice`, `status`, `payment.type`, `payment.payment_intent`,
  `payment.charge`.
- Customer: `email`, `deleted`.

Any expandable field may come as an id or as the object: `ref_id` reads both.
"""

from __future__ import annotations

import re
from typing import Any

MAX_DESCRIPTION = 300  # a line item's text is shortened to this before "+ N more" is added
_ID = re.compile(r"[A-Za-z0-9_]{1,255}")  # Stripe ids: a prefix, an underscore, letters and digits


def ref_id(value: object) -> str | None:
    """The id of an expandable field, whether Stripe sent the id or the expanded object; None
    when absent or not shaped like an id (it goes into URL paths)."""
    if isinstance(value, dict):
        value = value.get("id")
    return value if isinstance(value, str) and _ID.fullmatch(value) else None


def _text(value: object) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


def own_email(obj: dict[str, Any]) -> str | None:
    """The email a charge or invoice carries itself: `customer_email` (invoices),
    `billing_details.email`, then `receipt_email` (charges)."""
    details = obj.get("billing_details")
    details = details if isinstance(details, dict) else {}
    return _text(obj.get("customer_email")) or _text(details.get("email")) or _text(obj.get("receipt_email"))


def customer_email(customer: object) -> str | None:
    """A Customer object's email (None for a deleted customer or a bare id)."""
    if not isinstance(customer, dict) or customer.get("deleted"):
        return None
    return _text(customer.get("email"))


def fee_cents(charge: dict[str, Any]) -> int | None:
    """The Stripe fee of a charge, when its balance transaction came expanded."""
    txn = charge.get("balance_transaction")
    if isinstance(txn, dict) and type(txn.get("fee")) is int and txn["fee"] >= 0:
        return txn["fee"]
    return None


def refunded_cents(charge: dict[str, Any]) -> int:
    """How much of a charge was refunded (`amount_refunded`; the whole amount when `refunded`)."""
    amount = charge.get("amount")
    refunded = charge.get("amount_refunded")
    if type(refunded) is int and refunded > 0:
        return refunded
    if charge.get("refunded") is True and type(amount) is int:
        return amount
    return 0


def line_descriptions(inv: dict[str, Any]) -> tuple[list[str], bool, int | None]:
    """(descriptions of the lines the invoice carries, whether Stripe has more, total if it says)."""
    lines = inv.get("lines")
    if not isinstance(lines, dict):
        return [], False, None
    data = lines.get("data")
    if not isinstance(data, list):
        data = []
    texts = [_text(line.get("description")) or "" for line in data if isinstance(line, dict)]
    total = lines.get("total_count")  # older versions and emulators send it; the current one does not
    return texts, bool(lines.get("has_more")), total if type(total) is int and total >= len(texts) else None


def invoice_description(inv: dict[str, Any], line_count: int | None = None) -> str:
    """The invoice's description; else its first line item's ("+ N more" for the other lines);
    else "Invoice <number>" or "Invoice". `line_count` is the invoice's number of lines when the
    caller counted them (Stripe sends only the first page of lines)."""
    own = _text(inv.get("description"))
    if own:
        return own
    texts, _more, total = line_descriptions(inv)
    count = line_count if line_count is not None else (total if total is not None else len(texts))
    first = next((t for t in texts if t), None)
    if first:
        if len(first) > MAX_DESCRIPTION:
            first = first[: MAX_DESCRIPTION - 1] + "…"
        others = count - 1
        return f"{first} + {others} more" if others > 0 else first
    number = _text(inv.get("number"))
    return f"Invoice {number}" if number else "Invoice"


def invoice_payment_refs(inv: dict[str, Any]) -> tuple[set[str], set[str]]:
    """(payment intent ids, charge ids) an invoice names itself: `payments` when expanded
    (current versions), `payment_intent` and `charge` (before 2025-03-31.basil, and emulators)."""
    intents: set[str] = set()
    charges: set[str] = set()
    payments = inv.get("payments")
    if isinstance(payments, dict) and isinstance(payments.get("data"), list):
        for ip in payments["data"]:
            if isinstance(ip, dict):
                pi, ch = payment_refs(ip)
                if pi:
                    intents.add(pi)
                if ch:
                    charges.add(ch)
    pi = ref_id(inv.get("payment_intent"))
    ch = ref_id(inv.get("charge"))
    if pi:
        intents.add(pi)
    if ch:
        charges.add(ch)
    return intents, charges


def payment_refs(invoice_payment: dict[str, Any]) -> tuple[str | None, str | None]:
    """(payment intent id, charge id) of an Invoice Payment's `payment`."""
    payment = invoice_payment.get("payment")
    if not isinstance(payment, dict):
        return None, None
    return ref_id(payment.get("payment_intent")), ref_id(payment.get("charge"))
