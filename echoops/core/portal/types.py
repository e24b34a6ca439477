"""The customer portal's result types: the exact JSON of `/api/portal/*` and `echoops portal ... --json`.

Used by the core functions that build them, the routes that return them and the `--json`
printers. A new field is one line here (`NotRequired[...]` when not every answer has it).
No `from __future__ import annotations` here: TypedDict needs to see `NotRequired` at run time.
"""

from typing import Any, TypedDict


class Purchase(TypedDict):
    """One purchase with its signed links."""

    id: str
    created: str  # ISO-8601 UTC
    amount: int  # minor units (cents; whole units for JPY, thousandths for KWD)
    currency: str  # lower-case ISO 4217
    amount_display: str  # "USD 49.00", "JPY 4,900", "KWD 1.234"
    refunded: int  # minor units refunded (0 unless refunded)
    refunded_display: str | None  # "USD 5.00" when anything was refunded
    description: str
    status: str
    invoice_number: str | None
    receipt_url: str  # signed, expires at `expires_at`
    invoice_url: str | None  # when the purchase has an invoice
    expires_at: str


class Receipts(TypedDict):
    """`GET /api/portal/receipts`, `echoops portal receipts --json`: newest first."""

    email: str  # normalised (trimmed, lower-case)
    unsubscribed: bool
    unsubscribe_url: str
    purchases: list[Purchase]


class Link(TypedDict):
    """`echoops portal link --json`: a fresh signed link for one purchase."""

    id: str
    kind: str  # "receipt" | "invoice"
    email: str
    url: str
    expires_at: str


class Audit(TypedDict):
    """`GET /api/portal/audit`, `echoops portal audit --json`: newest first."""

    email: str | None
    entries: list[dict[str, Any]]  # portal_access lines: {ts, event, email, ip, resource, status, action, reason?}


class Subscription(TypedDict):
    """`POST /api/portal/unsubscribe` (JSON), `echoops portal unsubscribe|resubscribe --json`."""

    email: str
    unsubscribed: bool
    changed: bool  # false when it already was so


class RowError(TypedDict):
    line: int
    error: str


class ImportReport(TypedDict):
    """`echoops portal import --json`."""

    file: str
    format: str  # "ndjson" | "csv"
    strict: bool
    rows: int
    landed: int
    bad: int
    errors: list[RowError]  # the first MAX_REPORTED_ERRORS
    errors_truncated: bool
    elapsed_s: float
    rows_per_s: int | None
