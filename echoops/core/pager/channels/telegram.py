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
from dataclasses import replace

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
        return Outcome(True, 200, False, detail="ok", ref=message_ref(body))
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
    rich, plain = compose_for(page)
    method, target = addressing(page, s)
    url = f"{s.telegram_api_base}/bot{s.telegram_bot_token}/{method}"
    own = client is None
    client = client or httpx.Client(timeout=httpx.Timeout(TIMEOUT_S, connect=CONNECT_TIMEOUT_S))
    outcomes: list[Outcome] = []
    try:
        payload: dict = {**target, "text": rich, "parse_mode": "HTML"}
        for _ in range(2):
            try:
                resp = client.post(url, json=payload)
            except httpx.HTTPError as exc:
                outcomes.append(Outcome(False, type(exc).__name__, True, detail=redact(exc, s)))
                break
            outcome = edited(_classify(resp, s)) if method == "editMessageText" else _classify(resp, s)
            outcomes.append(outcome)
            entity_error = outcome.status == 400 and "can't parse entities" in outcome.detail.lower()
            if not (entity_error and "parse_mode" in payload):
                break
            payload = {**target, "text": plain}
    finally:
        if own:
            client.close()
    return outcomes


# --- answerable pages (issue 15): buttons, edits, notices, and reading button presses ---------
# Shapes from the Bot API reference (https://core.telegram.org/bots/api: InlineKeyboardMarkup,
# editMessageText, ReplyParameters, getUpdates, CallbackQuery, answerCallbackQuery).

BANNERS = {"escalate": "ESCALATED", "resolved": "RESOLVED"}
EDIT_KINDS = ("edit_ack", "edit_resolve", "edit_silence")
NOT_MODIFIED = "message is not modified"  # an edit that changes nothing: already done
MAX_CALLBACK_ANSWER = 200  # answerCallbackQuery text, characters


def message_ref(body: dict) -> str | None:
    """The message_id of a sendMessage/editMessageText answer, as text (None when absent)."""
    result = body.get("result")
    message_id = result.get("message_id") if isinstance(result, dict) else None
    return str(message_id) if isinstance(message_id, int) and not isinstance(message_id, bool) else None


def edited(outcome: Outcome) -> Outcome:
    """An edit Telegram refuses as "not modified" already shows what we wanted: done."""
    if outcome.status == 400 and NOT_MODIFIED in outcome.detail.lower():
        return Outcome(True, 400, False, detail="not modified (already shown)")
    return outcome


def addressing(page: Page, s: Settings) -> tuple[str, dict]:
    """(Bot API method, the payload's fields besides the text) for `page`: the chat (TELEGRAM_CHAT_ID
    unless `page.to` names another), its inline keyboard, and for an edit the message it edits;
    a resolved notice replies to the page's message when it has one."""
    chat = page.to[0] if page.to else s.telegram_chat_id
    target: dict = {"chat_id": chat}
    if page.kind in EDIT_KINDS:
        target["message_id"] = int(page.ref or 0)
    if page.buttons or page.kind in EDIT_KINDS:  # an edit without buttons removes the keyboard
        row = [{"text": label, "callback_data": data} for label, data in page.buttons]
        target["reply_markup"] = {"inline_keyboard": [row] if row else []}
    if page.kind == "resolved" and page.ref:
        target["reply_parameters"] = {"message_id": int(page.ref), "allow_sending_without_reply": True}
    return ("editMessageText" if page.kind in EDIT_KINDS else "sendMessage"), target


def compose_for(page: Page) -> tuple[str, str]:
    """compose() plus what this kind of message adds: a banner (ESCALATED, RESOLVED) on top and
    the incident's state line below, still within MAX_CHARS (the message is cut to fit)."""
    banner = BANNERS.get(page.kind, "")

    def render(p: Page) -> tuple[str, str]:
        rich, plain = compose(p)
        if banner:
            rich, plain = f"<b>{banner}</b>\n{rich}", f"{banner}\n{plain}"
        if p.status:
            rich += f"\n\n<b>{html.escape(p.status, quote=False)}</b>"
            plain += f"\n\n{p.status}"
        return rich, plain

    rich, plain = render(page)
    msg = page.msg
    while _units(rich) > MAX_CHARS and msg:
        msg = _cut(msg, max(_units(msg) - (_units(rich) - MAX_CHARS) - 1, 0))
        rich, plain = render(replace(page, msg=msg + ELLIPSIS))
    return rich, plain


def call(s: Settings, method: str, payload: dict, *, timeout_s: float = TIMEOUT_S, client: httpx.Client | None = None):
    """POST one Bot API method; (ok, result or redacted error text, HTTP status, retry_after)."""
    url = f"{s.telegram_api_base}/bot{s.telegram_bot_token}/{method}"
    own = client is None
    client = client or httpx.Client(timeout=httpx.Timeout(timeout_s, connect=CONNECT_TIMEOUT_S))
    try:
        resp = client.post(url, json=payload)
    except httpx.HTTPError as exc:
        return False, redact(f"{type(exc).__name__}: {exc}", s), None, None
    finally:
        if own:
            client.close()
    outcome = _classify(resp, s)
    if not outcome.ok:
        return False, outcome.detail, resp.status_code, outcome.retry_after
    return True, resp.json().get("result"), 200, None


def get_updates(s: Settings, offset: int, timeout_s: int, *, client: httpx.Client | None = None):
    """getUpdates: button presses (callback queries) from `offset` on, long-polling `timeout_s`
    seconds; (ok, list of Update objects or error text, status, retry_after)."""
    payload = {"offset": offset, "timeout": timeout_s, "limit": 100, "allowed_updates": ["callback_query"]}
    ok, result, status, wait = call(s, "getUpdates", payload, timeout_s=timeout_s + TIMEOUT_S, client=client)
    if ok and not isinstance(result, list):
        return False, "getUpdates answered without a list of updates", status, None
    return ok, result, status, wait


def answer_callback(s: Settings, query_id: str, text: str, *, client: httpx.Client | None = None) -> bool:
    """answerCallbackQuery: stop the button's spinner and show `text` (<= 200 characters) to the presser."""
    payload = {"callback_query_id": query_id, "text": text[:MAX_CALLBACK_ANSWER]}
    return call(s, "answerCallbackQuery", payload, client=client)[0]
