"""Stripe's REST API, read side: paged list endpoints over httpx.

One function, `iter_list`, walks any Stripe list endpoint (`/v1/charges`, `/v1/invoices`,
`/v1/balance_transactions`, ...) page by page with `starting_after`/`has_more`, so a caller
sees one stream of objects. It authenticates with `Authorization: Bearer STRIPE_API_KEY`,
backs off on 429 (honouring `Retry-After`, capped), retries 5xx and transport errors with
exponential backoff, and times out every request. Errors name the status and Stripe's own
message, never the key.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import httpx

from echoops.core import config
from echoops.core.config import Settings
from echoops.core.errors import EchoopsError, NotConfigured, ValidationError

PAGE_SIZE = 100  # Stripe's maximum `limit`
MAX_ATTEMPTS = 6  # per page: the first try plus five retries
MAX_WAIT_S = 30.0  # longest single wait, whatever Retry-After says
BACKOFF_BASE_S = 0.5
TIMEOUT = httpx.Timeout(20.0, connect=5.0)


class StripeError(EchoopsError):
    """Stripe answered with an error, or could not be reached after retries."""

    code = "stripe_error"
    status = 502
    exit_code = 1


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


def _get_page(
    client: httpx.Client, url: str, params: dict[str, Any], key: str, sleep: Callable[[float], None]
) -> dict[str, Any]:
    last = ""
    for attempt in range(1, MAX_ATTEMPTS + 1):
        resp: httpx.Response | None = None
        try:
            resp = client.get(url, params=params)
        except httpx.TransportError as exc:
            last = f"cannot reach Stripe ({type(exc).__name__})"
        else:
            if resp.status_code == 200:
                try:
                    page = resp.json()
                except ValueError:
                    raise StripeError(
                        f"Stripe answered {url.rsplit('/v1', 1)[-1]} with a body that is not JSON"
                    ) from None
                if not isinstance(page, dict) or not isinstance(page.get("data"), list):
                    raise StripeError("Stripe answered with something that is not a list object")
                return page
            if resp.status_code == 429 or resp.status_code >= 500:
                last = f"Stripe answered {resp.status_code}: {_message(resp)}"
            else:
                # 4xx other than 429 will not get better by retrying (bad key, bad params)
                raise StripeError(_scrub(f"Stripe answered {resp.status_code}: {_message(resp)}", key))
        if attempt < MAX_ATTEMPTS:
            sleep(_wait_s(resp, attempt))
    raise StripeError(_scrub(f"{last} (gave up after {MAX_ATTEMPTS} attempts)", key))


def iter_list(
    path: str,
    params: Mapping[str, Any] | None = None,
    *,
    s: Settings | None = None,
    page_size: int = PAGE_SIZE,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[dict[str, Any]]:
    """Every object of a Stripe list endpoint (`/v1/charges`...), newest first, across all pages.

    `params` are extra query parameters (`{"created[gte]": 1700000000}`); `sleep` is for tests.
    NotConfigured without STRIPE_API_KEY; StripeError when Stripe refuses or stays down.
    """
    s = s or config.settings()
    if not s.stripe_api_key:
        raise NotConfigured("STRIPE_API_KEY is not set: Stripe sync and fees are off")
    if not path.startswith("/v1/") or "?" in path or ".." in path:
        raise ValidationError(f"Stripe path must look like /v1/charges, got {path!r}", field="path")
    if not 1 <= page_size <= PAGE_SIZE:
        raise ValidationError(f"page_size must be 1..{PAGE_SIZE}", field="page_size")
    key = s.stripe_api_key
    query: dict[str, Any] = {**(params or {}), "limit": page_size}
    url = s.stripe_api_base + path
    headers = {"Authorization": f"Bearer {key}", "Accept": "application/json", "User-Agent": "echoops"}
    with httpx.Client(headers=headers, timeout=TIMEOUT, follow_redirects=False) as client:
        while True:
            page = _get_page(client, url, query, key, sleep)
            data = page["data"]
            for obj in data:
                if isinstance(obj, dict):
                    yield obj
            if not page.get("has_more") or not data:
                return
            last_id = data[-1].get("id") if isinstance(data[-1], dict) else None
            if not last_id:
                raise StripeError("Stripe page says has_more but its last object has no id")
            query["starting_after"] = last_id
