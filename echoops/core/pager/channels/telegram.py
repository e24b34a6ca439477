"""Telegram Bot API delivery: POST {base}/bot{token}/sendMessage, one attempt per call.

Classification (what the outbox does next): 200 with `ok: true` is done; 429 waits
`parameters.retry_after`; 5xx, network errors and malformed answers retry; 400 "can't
parse entities" is re-sent once as plain text; other 4xx (400/401/403/404) do not retry.
The token sits in the URL path, so every detail goes through redact() and httpx's own
request logging is silenced.
"""

from __future__ import annotations

import html
import logging

import httpx

from echoops.core.config import Settings
from echoops.core.pager.channels import Outcome, Page
from echoops.core.parsers import check_number
from echoops.core.redact import redact

MAX_CHARS = 4096  # Bot API limit on a message's text (counted in UTF-16 code units)
CONNECT_TIMEOUT_S = 5.0
TIMEOUT_S = 10.0
ELLIPSIS = "…"
MAX_RETRY_AFTER_S = 86399.0  # a longer `retry_after` is junk, not a flood wait
MAX_META_UNITS = 1024  # the meta line's share of a message; the msg is cut first, then this

# httpx logs every request URL at INFO; with the token in the path that would leak it.
for _name in ("httpx", "httpcore"):
    logging.getLogger(_name).setLevel(logging.WARNING)


def _units(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _cut(text: str, units: int) -> str:
    """`text` shortened to at most `units` UTF-16 code units (never splitting a pair)."""
    if _units(text) <= units:
        return text
    return text.encode("utf-16-le")[: max(units, 0) * 2].decode("utf-16-le", "ignore")


def compose(page: Page) -> tuple[str, str]:
    """(html_text, plain_text) of one message, each within MAX_CHARS even counting the markup.

    Telegram counts characters after entity parsing; counting the raw HTML is stricter and
    safe through proxies. A long msg is truncated (with an ellipsis), never rejected.
    """
    esc = html.escape
    head = f"{'[TEST] ' if page.test else ''}{page.severity} · {page.source}"
    tail = page.details()
    meta_rich, meta_plain = meta_block(page)

    def render(msg: str) -> tuple[str, str]:
        rich = (
            f"<b>{esc(head, quote=False)}</b>\n\n{esc(msg, quote=False)}{meta_rich}\n\n<i>{esc(tail, quote=False)}</i>"
        )
        return rich, f"{head}\n\n{msg}{meta_plain}\n\n{tail}"

    rich, plain = render(page.msg)
    if _units(rich) <= MAX_CHARS:
        return rich, plain
    lo, hi = 0, _units(page.msg)  # the longest cut of msg that fits, by bisection
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if _units(render(_cut(page.msg, mid) + ELLIPSIS)[0]) <= MAX_CHARS:
            lo = mid
        else:
            hi = mid - 1
    return render(_cut(page.msg, lo) + ELLIPSIS)


def meta_block(page: Page) -> tuple[str, str]:
    """The raise's `meta` on one line, `key=value · key=value` (html, plain), led by a blank
    line; ("", "") without meta. At most MAX_META_UNITS of markup: a longer one is cut."""
    pairs = page.meta_pairs()
    if not pairs:
        return "", ""
    plain = " · ".join(f"{key}={value}" for key, value in pairs)

    def rich_of(text: str) -> str:
        return "\n\n<code>" + html.escape(text, quote=False) + "</code>"

    if _units(rich_of(plain)) > MAX_META_UNITS:
        lo, hi = 0, _units(plain)
        while lo < hi:  # the longest cut whose markup fits (escaping makes it longer than the text)
            mid = (lo + hi + 1) // 2
            if _units(rich_of(_cut(plain, mid) + ELLIPSIS)) <= MAX_META_UNITS:
                lo = mid
            else:
                hi = mid - 1
        plain = _cut(plain, lo) + ELLIPSIS
    return rich_of(plain), "\n\n" + plain


def _classify(resp: httpx.Response, s: Settings) -> Outcome:
    try:
        body = resp.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        body = {}
    description = redact(str(body.get("description") or resp.reason_phrase or "")[:300], s)
    status = resp.status_code
    if status == 200 and body.get("ok") is True:
        return Outcome(True, 200, False, detail="ok")
    if status == 200:
        return Outcome(False, 200, True, detail=f"answer without ok: true: {description}")
    if status == 429:
        params = body.get("parameters")
        if not isinstance(params, dict):
            params = {}
        try:  # junk (a day or more, negative, not a number) falls back to the usual backoff
            wait = check_number(params.get("retry_after", resp.headers.get("Retry-After")), hi=MAX_RETRY_AFTER_S)
        except ValueError:
            wait = None
        return Outcome(False, 429, True, wait, description)
    return Outcome(False, status, status >= 500, detail=description)


def send(page: Page, s: Settings, *, client: httpx.Client | None = None) -> list[Outcome]:
    """One delivery attempt of `page` to TELEGRAM_CHAT_ID (two requests when HTML is refused)."""
    rich, plain = compose(page)
    url = f"{s.telegram_api_base}/bot{s.telegram_bot_token}/sendMessage"
    own = client is None
    client = client or httpx.Client(timeout=httpx.Timeout(TIMEOUT_S, connect=CONNECT_TIMEOUT_S))
    outcomes: list[Outcome] = []
    try:
        payload: dict = {"chat_id": s.telegram_chat_id, "text": rich, "parse_mode": "HTML"}
        for _ in range(2):
            try:
                resp = client.post(url, json=payload)
            except httpx.HTTPError as exc:
                outcomes.append(Outcome(False, type(exc).__name__, True, detail=redact(exc, s)))
                break
            outcome = _classify(resp, s)
            outcomes.append(outcome)
            entity_error = outcome.status == 400 and "can't parse entities" in outcome.detail.lower()
            if not (entity_error and "parse_mode" in payload):
                break
            payload = {"chat_id": s.telegram_chat_id, "text": plain}
    finally:
        if own:
            client.close()
    return outcomes
