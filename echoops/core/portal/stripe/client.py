"""Stripe's REST API, read side: paged list endpoints and single objects over httpx.

`iter_list` walks a Stripe list endpoint (`/v1/charges`, `/v1/invoices`,
`/v1/invoice_payments`, `/v1/refunds`, `/v1/balance_transactions`, an invoice's lines) page by
page with `limit` (at most 100) and `starting_after`/`has_more`, so a caller sees one stream of
objects; `retrieve` reads one object (`/v1/customers/cus_…`). Every request sends
`Stripe-Version: API_VERSION`, so what echoops reads does not depend on the account's default
version, and authenticates with `Authorization: Bearer STRIPE_API_KEY`. 429s are backed off
(honouring `Retry-After`, capped), 5xx and transport errors retried with exponential backoff,
every request times out. Only the list filters Stripe documents for each endpoint are sent
(`LIST_FILTERS`); anything else is refused before a request is made. Errors name the status
and Stripe's own message, never the key.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import httpx

from echoops.core import config
from echoops.core.config import Settings
from echoops.core.errors import EchoopsError, NotConfigured, ValidationError

# The Stripe API version echoops is written against (Stripe's changelog: docs.stripe.com/changelog).
# Since 2025-03-31.basil an invoice's payments are Invoice Payment objects (`invoice.payments`,
# `GET /v1/invoice_payments`) and `invoice.charge`, `invoice.payment_intent` and `charge.invoice`
# are gone; the sync still reads those older fields when a server sends them (emulators do).
API_VERSION = "2026-10-28.endive"

PAGE_SIZE = 100  # Stripe's maximum `limit`
MAX_ATTEMPTS = 6  # per page: the first try plus five retries
MAX_WAIT_S = 30.0  # longest single wait, whatever Retry-After says
BACKOFF_BASE_S = 0.5
TIMEOUT = httpx.Timeout(20.0, connect=5.0)


# The filters Stripe's API reference documents for each list endpoint echoops reads (besides
# `limit`, `starting_after`, `ending_before` and `expand[]`). `created[gte]` is the filter
# `created` with an operator. A path with `{id}` matches any one path segment.
LIST_FILTERS: dict[str, frozenset[str]] = {
    "/v1/charges": frozenset({"created", "customer", "payment_intent", "transfer_group"}),
    "/v1/invoices": frozenset(
        {"collection_method", "created", "customer", "customer_account", "due_date", "status", "subscription"}
    ),
    "/v1/invoices/{id}/lines": frozenset(),
    "/v1/invoice_payments": frozenset({"created", "invoice", "payment", "status"}),
    "/v1/refunds": frozenset({"charge", "created", "payment_intent"}),
    "/v1/balance_transactions": frozenset({"created", "currency", "payout", "source", "type"}),
}
_PAGING = frozenset({"limit", "starting_after", "ending_before", "expand"})
_ID = re.compile(r"^[A-Za-z0-9_]{1,255}$")


class StripeError(EchoopsError):
    """Stripe answered with an error, or could not be reached after retries.

    `http_status` is Stripe's answer (None when it was never reached); `status` stays the
    HTTP status echoops's own API answers with (502)."""

    code = "stripe_error"
    status = 502
    exit_code = 1

    def __init__(self, detail: str, *, http_status: int | None = None):
        super().__init__(detail)
        self.http_status = http_status


def _scrub(text: str, secret: str | None) -> str:
    """`text` with the key removed (Stripe echoes parts of a bad key in some messages)."""
    if secret:
        text = text.replace(secret, "sk_***")
        if len(secret) > 12:
            text = text.replace(secret[-12:], "***")
    return text[:300]


def _wait_s(resp: httpx.Response | None, attempt: int) -> float:
    """Seconds to wait before retry number `attempt` (1-based): Retry-After if given, else backoff."""
    if resp is not None:
        raw = resp.headers.get("Retry-After")
        if raw is not None:
            try:
                return min(max(config.check_number(raw), 0.0), MAX_WAIT_S)
            except ValueError:
                pass  # an HTTP-date or junk: fall back to our own backoff
    backoff = BACKOFF_BASE_S * (2 ** (attempt - 1))
    return min(backoff * (0.5 + random.random() / 2), MAX_WAIT_S)


def _message(resp: httpx.Response) -> str:
    try:
        body = resp.json()
        err = body.get("error") if isinstance(body, dict) else None
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])
    except ValueError:
        pass
    return resp.reason_phrase or "error"


def _get(
    client: httpx.Client, url: str, params: dict[str, Any], key: str, sleep: Callable[[float], None]
) -> dict[str, Any]:
    """One GET with retries: the decoded JSON object, or StripeError."""
    last = ""
    last_status: int | None = None
    for attempt in range(1, MAX_ATTEMPTS + 1):
        resp: httpx.Response | None = None
        try:
            resp = client.get(url, params=params)
        except httpx.TransportError as exc:
            last = f"cannot reach Stripe ({type(exc).__name__})"
        else:
            where = url.split("/v1", 1)[-1] if "/v1" in url else url
            if resp.status_code == 200:
                try:
                    body = resp.json()
                except ValueError:
                    raise StripeError(f"Stripe answered /v1{where} with a body that is not JSON") from None
                if not isinstance(body, dict):
                    raise StripeError(f"Stripe answered /v1{where} with something that is not an object")
                return body
            status = resp.status_code
            if status == 429 or status >= 500:
                last, last_status = f"Stripe answered {status} to /v1{where}: {_message(resp)}", status
            else:
                # 4xx other than 429 will not get better by retrying (bad key, bad params)
                detail = f"Stripe answered {status} to /v1{where}: {_message(resp)}"
                raise StripeError(_scrub(detail, key), http_status=status)
        if attempt < MAX_ATTEMPTS:
            sleep(_wait_s(resp, attempt))
    raise StripeError(_scrub(f"{last} (gave up after {MAX_ATTEMPTS} attempts)", key), http_status=last_status)


def _template(path: str) -> str | None:
    """The LIST_FILTERS key `path` matches (`/v1/invoices/in_1/lines` -> `/v1/invoices/{id}/lines`)."""
    if path in LIST_FILTERS:
        return path
    parts = path.split("/")
    for template in LIST_FILTERS:
        t = template.split("/")
        if len(t) != len(parts):
            continue
        if all(a == b or (a == "{id}" and _ID.match(b)) for a, b in zip(t, parts, strict=True)):
            return template
    return None


def check_filters(path: str, params: Mapping[str, Any]) -> None:
    """ValidationError unless `path` is a list endpoint echoops reads and every parameter is a
    filter Stripe documents for it (or paging/expand)."""
    template = _template(path)
    if template is None:
        raise ValidationError(f"{path!r} is not a Stripe list endpoint echoops reads", field="path")
    allowed = LIST_FILTERS[template] | _PAGING
    for name in params:
        base = name.split("[", 1)[0]
        if base not in allowed:
            raise ValidationError(f"{name!r} is not a filter Stripe documents for {template}", field="params")


def _session(s: Settings) -> tuple[httpx.Client, str]:
    if not s.stripe_api_key:
        raise NotConfigured("STRIPE_API_KEY is not set: Stripe sync and fees are off")
    key = s.stripe_api_key
    headers = {
        "Authorization": f"Bearer {key}",
        "Accept": "application/json",
        "User-Agent": "echoops",
        "Stripe-Version": API_VERSION,
    }
    return httpx.Client(headers=headers, timeout=TIMEOUT, follow_redirects=False), key


def _check_path(path: str) -> None:
    if not path.startswith("/v1/") or "?" in path or ".." in path or "#" in path:
        raise ValidationError(f"Stripe path must look like /v1/charges, got {path!r}", field="path")


def iter_list(
    path: str,
    params: Mapping[str, Any] | None = None,
    *,
    s: Settings | None = None,
    page_size: int = PAGE_SIZE,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[dict[str, Any]]:
    """Every object of a Stripe list endpoint (`/v1/charges`...), in Stripe's order, across all pages.

    `params` are documented filters (`{"created[gte]": 1700000000}`) and `expand[]`; `sleep` is
    for tests. NotConfigured without STRIPE_API_KEY; ValidationError for a filter the endpoint
    does not document; StripeError when Stripe refuses or stays down.
    """
    s = s or config.settings()
    _check_path(path)
    check_filters(path, params or {})
    if not 1 <= page_size <= PAGE_SIZE:
        raise ValidationError(f"page_size must be 1..{PAGE_SIZE}", field="page_size")
    client, key = _session(s)
    query: dict[str, Any] = {**(params or {}), "limit": page_size}
    url = s.stripe_api_base + path
    with client:
        while True:
            page = _get(client, url, query, key, sleep)
            data = page.get("data")
            if not isinstance(data, list):
                raise StripeError(f"Stripe answered {path} with something that is not a list object")
            for obj in data:
                if isinstance(obj, dict):
                    yield obj
            if not page.get("has_more") or not data:
                return
            last_id = data[-1].get("id") if isinstance(data[-1], dict) else None
            if not last_id:
                raise StripeError("Stripe page says has_more but its last object has no id")
            query["starting_after"] = last_id


def retrieve(
    path: str,
    params: Mapping[str, Any] | None = None,
    *,
    s: Settings | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """One Stripe object (`/v1/customers/cus_…`), with the same version header, retries and errors as iter_list."""
    s = s or config.settings()
    _check_path(path)
    for name in params or {}:
        if name.split("[", 1)[0] != "expand":
            raise ValidationError(f"{name!r}: only expand[] is sent when reading one object", field="params")
    client, key = _session(s)
    with client:
        return _get(client, s.stripe_api_base + path, dict(params or {}), key, sleep)
