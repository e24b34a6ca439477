"""The customer portal (phase 78): admin lookups, and the public signed links."""

from echoops.core.parsers import MAX_EMAIL_CHARS
from echoops.core.portal.access import MAX_LIMIT
from shim.openapi import BOOL, ERROR, INT, STR, TS, Operation, nullable, obj, param

_LABEL = "[a-z0-9](?:[a-z0-9-]*[a-z0-9])?"
EMAIL = {
    "type": "string",
    "pattern": f"^[a-z0-9.!#$%&'*+/=?^_`{{|}}~-]+@{_LABEL}(?:\\.{_LABEL})+$",
    "maxLength": MAX_EMAIL_CHARS,
    "description": "matched case-insensitively",
}
PURCHASE = obj(
    {"id": STR, "created": TS, "amount": INT, "currency": STR, "status": STR},
    {
        "amount_display": STR,
        "description": nullable(STR),
        "invoice_number": nullable(STR),
        "receipt_url": nullable(STR),
        "invoice_url": nullable(STR),
        "expires_at": nullable(TS),
    },
)
RECEIPTS = obj(
    {"email": STR, "unsubscribed": BOOL, "purchases": {"type": "array", "items": PURCHASE}},
    {"unsubscribe_url": nullable(STR)},
)
AUDIT = obj({"email": nullable(STR), "entries": {"type": "array", "items": {"type": "object"}}})
UNSUBSCRIBED = obj({"email": STR, "unsubscribed": BOOL, "changed": BOOL})
HTML = ("text/html", {"type": "string"})

OPERATIONS = (
    Operation(
        "GET",
        "/api/portal/receipts",
        "A customer's purchases with signed receipt and invoice links",
        "key",
        {200: RECEIPTS, 400: ERROR, 404: ERROR},
        "portal",
        query=(
            param("email", EMAIL, "the customer", required=True),
            param("limit", {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT}, "default 100"),
        ),
    ),
    Operation(
        "POST",
        "/api/portal/resubscribe",
        "Take a customer off the suppression list (an operator's resubscribe; audited)",
        "key",
        {200: UNSUBSCRIBED, 400: ERROR},
        "portal",
        body=obj({"email": EMAIL}, closed=True),
    ),
    Operation(
        "GET",
        "/api/portal/audit",
        "Recent link and lookup attempts",
        "key",
        {200: AUDIT, 400: ERROR},
        "portal",
        query=(
            param("email", {"anyOf": [{"const": ""}, EMAIL]}, "only this customer (empty: everyone)"),
            param("limit", {"type": "integer", "minimum": 1, "maximum": 10000}, "default 50"),
        ),
    ),
    Operation(
        "GET",
        "/api/portal/download",
        "The document a signed receipt/invoice link names",
        "token",
        {200: ("*/*", {"type": "string"}), 302: ("*/*", {"type": "string"}), 404: ERROR},
        "portal",
    ),
    Operation(
        "GET",
        "/api/portal/unsubscribe",
        "Confirmation page for a signed unsubscribe link (changes nothing)",
        "token",
        {200: HTML},
        "portal",
    ),
    Operation(
        "POST",
        "/api/portal/unsubscribe",
        "RFC 8058 one-click unsubscribe",
        "token",
        {200: [("application/json", UNSUBSCRIBED), HTML], 400: ERROR},
        "portal",
        description="JSON answer; an HTML page when `Accept` includes text/html.",
        form=obj({"List-Unsubscribe": {"type": "string", "const": "One-Click"}}),
    ),
)
