"""The standalone HTML pages echoops serves to people who are not operators: one document
shape (UTF-8, phone viewport, no referrer, an inline style sheet the strict CSP allows), used
by the portal's receipts and unsubscribe pages and the pager's signed email-link pages."""

from __future__ import annotations

from html import escape


def page(title: str, body: str, style: str) -> bytes:
    """A whole page: `title` is escaped here; `body` is HTML the caller escaped."""
    return (
        "<!doctype html>\n<html lang=en><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width,initial-scale=1">'
        '<meta name=referrer content="no-referrer">'
        f"<title>{escape(title)}</title><style>{style}</style></head>"
        f"<body><main>{body}</main></body></html>\n"
    ).encode()
