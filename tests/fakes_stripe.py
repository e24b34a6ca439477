"""A loopback HTTP server imitating Stripe's list endpoints, for tests of anything that talks to Stripe.

Data-driven: give it the objects per resource and it serves them the way Stripe does.

    with FakeStripe({"charges": [charge(...)], "balance_transactions": [...]}) as fake:
        monkeypatch.setenv("STRIPE_API_BASE", fake.url)
        monkeypatch.setenv("STRIPE_API_KEY", fake.key)
        ...
        fake.requests  # [(path, {param: [values]}, authorization header), ...]

- `GET /v1/<resource>`: `{"object": "list", "url", "has_more", "data"}`, newest `created`
  first (ties by id), `limit` (1..100, default 10), `starting_after` / `ending_before`
  cursors, `created[gt|gte|lt|lte]` ranges, and any other plain parameter as an equality
  filter on a top-level field (`type=charge`, `status=paid`). `expand[]` is accepted and ignored.
- Auth: `Authorization: Bearer <key>` must match, else 401 with Stripe's error shape.
- Failure modes: `fail_next(n, status=429, retry_after="0")` makes the next n requests
  fail (429 with Retry-After, or any 5xx); `rate_limit_every(k)` makes every k-th request 429.
- Unknown resource: 404; bad `limit`: 400; unknown cursor id: 400 (as Stripe does).
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

DEFAULT_KEY = "sk_test_fake_0123456789abcdefghijklmnop"

_RANGE_OPS = {
    "gt": lambda a, b: a > b,
    "gte": lambda a, b: a >= b,
    "lt": lambda a, b: a < b,
    "lte": lambda a, b: a <= b,
}


def charge(
    id: str,
    email: str,
    amount: int,
    created: int,
    *,
    currency: str = "usd",
    description: str | None = "Pro plan",
    status: str = "succeeded",
    fee: int | None = None,
    invoice: str | None = None,
) -> dict[str, Any]:
    """A Charge object as the list endpoint returns it (the fields echoops reads, plus a few)."""
    return {
        "id": id,
        "object": "charge",
        "amount": amount,
        "amount_captured": amount,
        "currency": currency,
        "created": created,
        "description": description,
        "status": status,
        "paid": status == "succeeded",
        "refunded": False,
        "receipt_email": email,
        "billing_details": {"email": email, "name": None},
        "receipt_url": f"https://pay.stripe.com/receipts/{id}",
        "receipt_number": None,
        "invoice": invoice,
        "balance_transaction": (
            {"id": f"txn_{id}", "object": "balance_transaction", "fee": fee, "currency": currency}
            if fee is not None
            else f"txn_{id}"
        ),
        "livemode": False,
    }


def invoice(
    id: str,
    email: str,
    amount: int,
    created: int,
    *,
    number: str | None = None,
    currency: str = "usd",
    description: str | None = None,
    status: str = "paid",
) -> dict[str, Any]:
    """An Invoice object (customer_email, number, amount_paid, invoice_pdf, hosted_invoice_url)."""
    return {
        "id": id,
        "object": "invoice",
        "number": number,
        "customer_email": email,
        "amount_due": amount,
        "amount_paid": amount if status == "paid" else 0,
        "total": amount,
        "currency": currency,
        "created": created,
        "description": description,
        "status": status,
        "invoice_pdf": f"https://pay.stripe.com/invoice/{id}/pdf",
        "hosted_invoice_url": f"https://invoice.stripe.com/i/{id}",
        "lines": {"object": "list", "data": [], "has_more": False},
        "livemode": False,
    }


def balance_transaction(
    id: str, amount: int, fee: int, created: int, *, currency: str = "usd", type: str = "charge"
) -> dict[str, Any]:
    """A BalanceTransaction (amount, fee, net in minor units; `type` charge/refund/...)."""
    return {
        "id": id,
        "object": "balance_transaction",
        "amount": amount,
        "fee": fee,
        "net": amount - fee,
        "currency": currency,
        "created": created,
        "available_on": created,
        "type": type,
        "status": "available",
        "fee_details": [{"amount": fee, "currency": currency, "type": "stripe_fee", "description": "Stripe fee"}],
    }


class FakeStripe:
    """The server; use as a context manager. `url` is the base to put in STRIPE_API_BASE."""

    def __init__(self, data: dict[str, list[dict[str, Any]]] | None = None, *, key: str = DEFAULT_KEY):
        self.data: dict[str, list[dict[str, Any]]] = {k: list(v) for k, v in (data or {}).items()}
        self.key = key
        self.requests: list[tuple[str, dict[str, list[str]], str | None]] = []
        self._failures: list[tuple[int, str | None]] = []
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

    def add(self, resource: str, *objects: dict[str, Any]) -> None:
        self.data.setdefault(resource, []).extend(objects)

    @property
    def url(self) -> str:
        assert self._server is not None, "start the server first (use `with FakeStripe(...)`)"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> FakeStripe:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's naming)
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
        segs = parts.path.strip("/").split("/")
        if len(segs) != 2 or segs[0] != "v1" or segs[1] not in self.data:
            return 404, self._error(f"Unrecognized request URL (GET: {parts.path})"), {}
        return self._list(segs[1], params)

    def _list(self, resource: str, params: dict[str, list[str]]) -> tuple[int, dict[str, Any], dict[str, str]]:
        one = {k: v[-1] for k, v in params.items()}
        try:
            limit = int(one.get("limit", "10"))
        except ValueError:
            limit = -1
        if not 1 <= limit <= 100:
            return 400, self._error("Invalid integer: limit must be between 1 and 100"), {}
        items = sorted(self.data[resource], key=lambda o: (o.get("created", 0), o.get("id", "")), reverse=True)
        for name, value in one.items():
            if name in ("limit", "starting_after", "ending_before") or name.startswith("expand"):
                continue
            if name.startswith("created[") and name.endswith("]"):
                op = _RANGE_OPS.get(name[8:-1])
                if op is None:
                    return 400, self._error(f"Received unknown parameter: {name}"), {}
                bound = int(value)
                items = [o for o in items if op(o.get("created", 0), bound)]
            else:
                items = [o for o in items if str(o.get(name)) == value]
        ids = [o.get("id") for o in items]
        if "starting_after" in one:
            if one["starting_after"] not in ids:
                return 400, self._error(f"No such object: '{one['starting_after']}'"), {}
            items = items[ids.index(one["starting_after"]) + 1 :]
        elif "ending_before" in one:
            if one["ending_before"] not in ids:
                return 400, self._error(f"No such object: '{one['ending_before']}'"), {}
            items = items[: ids.index(one["ending_before"])][-limit:]
        page = items[:limit]
        body = {"object": "list", "url": f"/v1/{resource}", "has_more": len(items) > limit, "data": page}
        return 200, body, {}
