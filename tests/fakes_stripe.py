"""A loopback HTTP server speaking Stripe's read API, for what the real emulator (localstripe, see
tests/localstripe_server.py) cannot show: the current API version's shapes (Invoice Payments,
no `charge.invoice`), refunds found through `/v1/refunds`, `created` filters, 429/5xx backoff.

Every object starts as a copy of Stripe's own published example for its resource
(tests/stripe_fixtures.json, from github.com/stripe/openapi openapi/fixtures3.json; the
`_source` key there names the commits) with the fields a test cares about overridden. The
fields echoops reads were checked against the official stripe-python 16.1.0 types, generated
from Stripe's OpenAPI spec for the version echoops pins (2026-10-28.endive): Invoice has
`payments` and no `charge`/`payment_intent`, Charge has no `invoice`, InvoicePayment has
`invoice`, `status`, `payment.{type,payment_intent,charge}`. `legacy=True` builds the older
shape instead (from the 2025-02-14 fixtures, before 2025-03-31.basil).

    with FakeStripe({"charges": [charge(...)], "balance_transactions": [...]}) as fake:
        monkeypatch.setenv("STRIPE_API_BASE", fake.url)
        monkeypatch.setenv("STRIPE_API_KEY", fake.key)
        ...
        fake.requests  # [(path, {param: [values]}, authorization header), ...]
        fake.headers   # the request headers, in the same order

- `GET /v1/<resource>`: `{"object": "list", "url", "has_more", "data"}`, newest `created` first
  (ties by id), `limit` 1..100 (default 10), `starting_after` / `ending_before` cursors, and
  only the filters Stripe's reference documents for that endpoint (`FILTERS`): `created[gt|
  gte|lt|lte]`, equality filters (`type=charge`, `invoice=in_1`, `payment[payment_intent]=pi_1`);
  any other parameter is a 400 "Received unknown parameter", as Stripe answers.
- `GET /v1/<resource>/<id>`: one object; `GET /v1/invoices/<id>/lines`: an invoice's lines
  (from `lines_for`, else the lines the invoice carries).
- `expand[]=data.<field>` (lists) and `expand[]=<field>` (one object) replace an id with the
  object of that id when the fake holds it.
- Auth: `Authorization: Bearer <key>` must match, else 401 with Stripe's error shape.
- Failure modes: `fail_next(n, status=429, retry_after="0")`, `rate_limit_every(k)`,
  `refuse(path, status, message)` (that path answers the error from then on).
"""

from __future__ import annotations

import copy
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

DEFAULT_KEY = "sk_test_fake_0123456789abcdefghijklmnop"
_FIXTURES = json.loads((Path(__file__).parent / "stripe_fixtures.json").read_text())

# Documented list filters per endpoint (Stripe API reference; stripe-python 16.1.0 *ListParams).
FILTERS: dict[str, set[str]] = {
    "charges": {"created", "customer", "payment_intent", "transfer_group"},
    "invoices": {"collection_method", "created", "customer", "due_date", "status", "subscription"},
    "invoice_payments": {"created", "invoice", "payment[type]", "payment[payment_intent]", "status"},
    "refunds": {"charge", "created", "payment_intent"},
    "balance_transactions": {"created", "currency", "payout", "source", "type"},
    "customers": {"created", "email"},
}
_RANGE_OPS = {
    "gt": lambda a, b: a > b,
    "gte": lambda a, b: a >= b,
    "lt": lambda a, b: a < b,
    "lte": lambda a, b: a <= b,
}


def published(resource: str, *, legacy: bool = False) -> dict[str, Any]:
    """A fresh copy of Stripe's published example object for `resource`."""
    return copy.deepcopy(_FIXTURES["legacy" if legacy else "current"][resource])


def customer(id: str, email: str | None, *, deleted: bool = False) -> dict[str, Any]:
    """A Customer (`email` may be None); `deleted=True` gives the deleted-customer stub Stripe returns."""
    if deleted:
        return {"id": id, "object": "customer", "deleted": True}
    obj = published("customer")
    obj.update(id=id, email=email, discount=None)
    return obj


def charge(
    id: str,
    email: str | None,
    amount: int,
    created: int,
    *,
    currency: str = "usd",
    description: str | None = "Pro plan",
    status: str = "succeeded",
    fee: int | None = None,
    customer: str | None = None,
    payment_intent: str | None = None,
    refunded: int = 0,
    receipt_url: str | None = "",
    invoice: str | None = None,
    legacy: bool = False,
) -> dict[str, Any]:
    """A Charge. `email` goes to billing_details.email and receipt_email (None: the charge has
    none, as for a saved card); `fee` expands balance_transaction; `refunded` is amount_refunded;
    `invoice` exists only with `legacy=True` (removed in 2025-03-31.basil)."""
    if invoice is not None and not legacy:
        raise ValueError("charge.invoice was removed in 2025-03-31.basil: link through invoice_payment()")
    obj = published("charge", legacy=legacy)
    obj.update(
        id=id,
        amount=amount,
        amount_captured=amount if status == "succeeded" else 0,
        amount_refunded=refunded,
        captured=status == "succeeded",
        currency=currency,
        created=created,
        description=description,
        status=status,
        paid=status == "succeeded",
        refunded=refunded >= amount > 0,
        receipt_email=email,
        receipt_url=f"https://pay.stripe.com/receipts/payment/{id}" if receipt_url == "" else receipt_url,
        customer=customer,
        payment_intent=payment_intent,
        balance_transaction=balance_transaction(f"txn_{id}", amount, fee, created, currency=currency)
        if fee is not None
        else f"txn_{id}",
    )
    obj["billing_details"]["email"] = email
    obj["refunds"] = {"object": "list", "data": [], "has_more": False, "url": f"/v1/charges/{id}/refunds"}
    if legacy:
        obj["invoice"] = invoice
    return obj


def invoice(
    id: str,
    email: str | None,
    amount: int,
    created: int,
    *,
    number: str | None = None,
    currency: str = "usd",
    description: str | None = None,
    status: str = "paid",
    customer: str | None = None,
    lines: list[str] | None = None,
    more_lines: bool = False,
    charge: str | None = None,
    payment_intent: str | None = None,
    legacy: bool = False,
) -> dict[str, Any]:
    """An Invoice: customer_email, number, amount_paid/due, invoice_pdf, hosted_invoice_url, and
    line items with the given descriptions (`more_lines`: Stripe has more than it sent).
    `charge`/`payment_intent` exist only with `legacy=True` (removed in 2025-03-31.basil)."""
    if (charge or payment_intent) and not legacy:
        raise ValueError("invoice.charge/payment_intent were removed in 2025-03-31.basil: use invoice_payment()")
    obj = published("invoice", legacy=legacy)
    template = obj["lines"]["data"][0]
    data = []
    for i, text in enumerate(lines or []):
        line = copy.deepcopy(template)
        line.update(id=f"il_{id}_{i}", invoice=id, description=text, currency=currency)
        data.append(line)
    obj.update(
        id=id,
        number=number,
        customer=customer,
        customer_email=email,
        amount_due=amount,
        amount_paid=amount if status == "paid" else 0,
        amount_remaining=0 if status == "paid" else amount,
        total=amount,
        currency=currency,
        created=created,
        description=description,
        status=status,
        invoice_pdf=None if status == "draft" else f"https://pay.stripe.com/invoice/{id}/pdf",
        hosted_invoice_url=None if status == "draft" else f"https://invoice.stripe.com/i/{id}",
        lines={"object": "list", "data": data, "has_more": more_lines, "url": f"/v1/invoices/{id}/lines"},
    )
    if legacy:
        obj.update(charge=charge, payment_intent=payment_intent)
    return obj


def invoice_payment(
    id: str,
    invoice_id: str,
    amount: int,
    created: int,
    *,
    payment_intent: str | None = None,
    charge: str | None = None,
    status: str = "paid",
    currency: str = "usd",
) -> dict[str, Any]:
    """An Invoice Payment linking an invoice to a payment intent (or, without one, a charge)."""
    obj = published("invoice_payment")
    obj.update(
        id=id,
        invoice=invoice_id,
        amount_requested=amount,
        amount_paid=amount if status == "paid" else None,
        created=created,
        currency=currency,
        livemode=False,
        status=status,
        payment={
            "type": "payment_intent" if payment_intent else "charge",
            "payment_intent": payment_intent,
            "charge": None if payment_intent else charge,
        },
    )
    obj["status_transitions"]["paid_at"] = created if status == "paid" else None
    return obj


def refund(id: str, charge_id: str, amount: int, created: int, *, currency: str = "usd") -> dict[str, Any]:
    """A succeeded Refund of `amount` of a charge."""
    obj = published("refund")
    obj.update(id=id, charge=charge_id, amount=amount, created=created, currency=currency, status="succeeded")
    return obj


def balance_transaction(
    id: str, amount: int, fee: int, created: int, *, currency: str = "usd", type: str = "charge"
) -> dict[str, Any]:
    """A BalanceTransaction (amount, fee, net in minor units; `type` charge/refund/...)."""
    obj = published("balance_transaction")
    obj.update(
        id=id,
        amount=amount,
        fee=fee,
        net=amount - fee,
        currency=currency,
        created=created,
        available_on=created,
        type=type,
        reporting_category=type,
        source=None,
        description=None,
        fee_details=[{"amount": fee, "currency": currency, "type": "stripe_fee", "description": "Stripe fee"}],
    )
    return obj


class FakeStripe:
    """The server; use as a context manager. `url` is the base to put in STRIPE_API_BASE."""

    def __init__(self, data: dict[str, list[dict[str, Any]]] | None = None, *, key: str = DEFAULT_KEY):
        self.data: dict[str, list[dict[str, Any]]] = {k: list(v) for k, v in (data or {}).items()}
        self.key = key
        self.lines_for: dict[str, list[dict[str, Any]]] = {}
        self.requests: list[tuple[str, dict[str, list[str]], str | None]] = []
        self.headers: list[dict[str, str]] = []
        self._failures: list[tuple[int, str | None]] = []
        self._refused: dict[str, tuple[int, str]] = {}
        self._every = 0
        self._count = 0
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- control ---------------------------------------------------------------------

    def fail_next(self, n: int, status: int = 429, retry_after: str | None = "0") -> None:
        """The next `n` requests answer `status` (with `Retry-After: retry_after` when not None)."""
        with self._lock:
            self._failures.extend([(status, retry_after)] * n)

    def rate_limit_every(self, k: int) -> None:
        """Every k-th request answers 429 with `Retry-After: 0` (0 turns it off)."""
        self._every = k

    def refuse(self, path: str, status: int, message: str) -> None:
        """`path` answers `status` with Stripe's error shape from now on (until `allow(path)`)."""
        self._refused[path] = (status, message)

    def allow(self, path: str) -> None:
        self._refused.pop(path, None)

    def add(self, resource: str, *objects: dict[str, Any]) -> None:
        self.data.setdefault(resource, []).extend(objects)

    def paths(self) -> list[str]:
        return [path for path, _, _ in self.requests]

    @property
    def url(self) -> str:
        assert self._server is not None, "start the server first (use `with FakeStripe(...)`)"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> FakeStripe:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's naming)
                with fake._lock:
                    fake.headers.append(dict(self.headers.items()))
                status, body, headers = fake._answer(self.path, self.headers.get("Authorization"))
                raw = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(raw)

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    # --- behaviour ---------------------------------------------------------------------

    @staticmethod
    def _error(message: str, type_: str = "invalid_request_error") -> dict[str, Any]:
        return {"error": {"type": type_, "message": message}}

    def _answer(self, raw_path: str, auth: str | None) -> tuple[int, dict[str, Any], dict[str, str]]:
        parts = urlsplit(raw_path)
        params = parse_qs(parts.query, keep_blank_values=True)
        with self._lock:
            self.requests.append((parts.path, params, auth))
            self._count += 1
            failure = self._failures.pop(0) if self._failures else None
            if failure is None and self._every and self._count % self._every == 0:
                failure = (429, "0")
        if auth != f"Bearer {self.key}":
            return 401, self._error("Invalid API Key provided: sk_****"), {}
        if failure is not None:
            status, retry_after = failure
            headers = {"Retry-After": retry_after} if retry_after is not None else {}
            if status == 429:
                return 429, self._error("Too many requests", "rate_limit_error"), headers
            return status, self._error("Something went wrong on Stripe's end.", "api_error"), headers
        if parts.path in self._refused:
            status, message = self._refused[parts.path]
            return status, self._error(message), {}
        segs = parts.path.strip("/").split("/")
        expand = params.get("expand[]", [])
        if len(segs) == 2 and segs[0] == "v1" and segs[1] in self.data:
            return self._list(segs[1], params, [e[5:] for e in expand if e.startswith("data.")])
        if len(segs) == 3 and segs[0] == "v1" and segs[1] in self.data:
            obj = next((o for o in self.data[segs[1]] if o.get("id") == segs[2]), None)
            if obj is None:
                return 404, self._error(f"No such {segs[1].rstrip('s')}: '{segs[2]}'"), {}
            return 200, self._expanded(obj, expand), {}
        if len(segs) == 4 and segs[:2] == ["v1", "invoices"] and segs[3] == "lines":
            inv = next((o for o in self.data.get("invoices", []) if o.get("id") == segs[2]), None)
            if inv is None:
                return 404, self._error(f"No such invoice: '{segs[2]}'"), {}
            lines = self.lines_for.get(segs[2], inv["lines"]["data"])
            return self._page(f"/v1/invoices/{segs[2]}/lines", list(lines), params)
        return 404, self._error(f"Unrecognized request URL (GET: {parts.path})"), {}

    def _find(self, obj_id: str) -> dict[str, Any] | None:
        for objects in self.data.values():
            for obj in objects:
                if obj.get("id") == obj_id:
                    return obj
        return None

    def _expanded(self, obj: dict[str, Any], fields: list[str]) -> dict[str, Any]:
        out = copy.deepcopy(obj)
        for name in fields:
            if isinstance(out.get(name), str) and (target := self._find(out[name])) is not None:
                out[name] = copy.deepcopy(target)
        return out

    def _list(self, resource: str, params: dict[str, list[str]], expand: list[str]):
        one = {k: v[-1] for k, v in params.items()}
        items = sorted(self.data[resource], key=lambda o: (o.get("created", 0), o.get("id", "")), reverse=True)
        for name, value in one.items():
            if name in ("limit", "starting_after", "ending_before", "expand[]"):
                continue
            base = name.split("[", 1)[0]
            if base == "created" and base in FILTERS.get(resource, ()):
                op = _RANGE_OPS.get(name[8:-1]) if name.startswith("created[") and name.endswith("]") else None
                if name == "created":
                    items = [o for o in items if o.get("created") == int(value)]
                    continue
                if op is None:
                    return 400, self._error(f"Received unknown parameter: {name}"), {}
                items = [o for o in items if op(o.get("created", 0), int(value))]
            elif name in FILTERS.get(resource, ()):
                keys = name.replace("]", "").split("[")
                items = [o for o in items if str(_dig(o, keys)) == value]
            else:
                return 400, self._error(f"Received unknown parameter: {name}"), {}
        items = [self._expanded(o, expand) for o in items] if expand else items
        return self._page(f"/v1/{resource}", items, params)

    def _page(self, url: str, items: list[dict[str, Any]], params: dict[str, list[str]]):
        one = {k: v[-1] for k, v in params.items()}
        try:
            limit = int(one.get("limit", "10"))
        except ValueError:
            limit = -1
        if not 1 <= limit <= 100:
            return 400, self._error("Invalid integer: limit must be between 1 and 100"), {}
        ids = [o.get("id") for o in items]
        if "starting_after" in one:
            if one["starting_after"] not in ids:
                return 400, self._error(f"No such object: '{one['starting_after']}'"), {}
            items = items[ids.index(one["starting_after"]) + 1 :]
        elif "ending_before" in one:
            if one["ending_before"] not in ids:
                return 400, self._error(f"No such object: '{one['ending_before']}'"), {}
            items = items[: ids.index(one["ending_before"])][-limit:]
        body = {"object": "list", "url": url, "has_more": len(items) > limit, "data": items[:limit]}
        return 200, body, {}


def _dig(obj: dict[str, Any], keys: list[str]) -> object:
    for key in keys:
        obj = obj.get(key) if isinstance(obj, dict) else None
    return obj
