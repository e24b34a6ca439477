"""HTML the portal shows to customers: the printable receipt/invoice and the unsubscribe pages.

Self-contained pages: every value escaped, one inline stylesheet allowed by its hash in the
page's own Content-Security-Policy (no script, no external asset, no form except the
unsubscribe confirmation posting to itself).
"""

from __future__ import annotations

import base64
import hashlib
from html import escape
from typing import Any

from echoops.core import clock, webpage

# Currencies whose minor unit is the major unit (Stripe's zero-decimal list).
ZERO_DECIMAL = frozenset(
    "bif clp djf gnf jpy kmf krw mga pyg rwf ugx vnd vuv xaf xof xpf".split()  # noqa: SIM905 (reads as a list)
)
# ISO 4217 currencies with three decimals: amounts are thousandths (KWD 1.234 is 1234).
THREE_DECIMAL = frozenset(("bhd", "iqd", "jod", "kwd", "lyd", "omr", "tnd"))

STYLE = """
body{font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1b1f24;background:#f4f5f7;margin:0}
main{max-width:640px;margin:32px auto;background:#fff;border:1px solid #d9dce1;border-radius:8px;padding:32px}
h1{font-size:22px;margin:0 0 4px}
.muted{color:#5b6470}
table{width:100%;border-collapse:collapse;margin:24px 0}
th,td{text-align:left;padding:8px 4px;border-bottom:1px solid #e6e8eb;vertical-align:top}
td.num,th.num{text-align:right;white-space:nowrap}
tfoot td{font-weight:600;border-bottom:none}
dl{display:grid;grid-template-columns:max-content 1fr;gap:4px 16px;margin:16px 0}
dt{color:#5b6470}
dd{margin:0}
footer{margin-top:32px;font-size:13px;color:#5b6470}
footer a{color:#5b6470}
button{font:inherit;padding:8px 16px;border-radius:6px;border:1px solid #1b1f24;background:#1b1f24;color:#fff}
@media print{body{background:#fff}main{border:none;margin:0;max-width:none}footer a{color:inherit}}
""".strip()

_STYLE_HASH = base64.b64encode(hashlib.sha256(STYLE.encode()).digest()).decode()
PAGE_CSP = (
    f"default-src 'none'; style-src 'sha256-{_STYLE_HASH}'; img-src 'none'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
# Stored files are served under this: nothing in them may run, even if someone stored HTML.
FILE_CSP = "default-src 'none'; sandbox"


def format_amount(cents: int, currency: str) -> str:
    """Minor units -> `USD 12.34` (zero- and three-decimal currencies respected)."""
    code = currency.upper()
    cur = currency.lower()
    if cur in ZERO_DECIMAL:
        return f"{code} {cents:,}"
    digits = 3 if cur in THREE_DECIMAL else 2
    major, minor = divmod(cents, 10**digits)
    return f"{code} {major:,}.{minor:0{digits}d}"


def _page(title: str, body: str) -> bytes:
    return webpage.page(title, body, STYLE)


def render_document(row: Any, kind: str, *, seller: str, unsubscribe_url: str) -> bytes:
    """A printable receipt or invoice for one ledger row (sqlite Row or dict)."""
    title = "Invoice" if kind == "invoice" else "Receipt"
    amount = format_amount(int(row["amount_cents"]), row["currency"])
    number = row["invoice_number"]
    date = clock.iso(float(row["created"]))[:10]
    facts = [
        ("Receipt for" if kind == "receipt" else "Billed to", row["email"]),
        ("Date", date),
        ("Invoice number", number) if number else None,
        ("Reference", row["id"]),
        ("Status", str(row["status"]).capitalize()),
    ]
    dl = "".join(f"<dt>{escape(k)}</dt><dd>{escape(str(v))}</dd>" for k, v in (f for f in facts if f))
    line = escape(row["description"] or "Purchase")
    heading = f"{title} {escape(number)}" if (kind == "invoice" and number) else title
    refunded = int(row["refunded_cents"] or 0) if "refunded_cents" in row.keys() else 0  # noqa: SIM118 (store.Row)
    foot = f"<tr><td>Total</td><td class=num>{escape(amount)}</td></tr>"
    if refunded:
        back = format_amount(refunded, row["currency"])
        net = format_amount(max(int(row["amount_cents"]) - refunded, 0), row["currency"])
        foot += f"<tr><td>Refunded</td><td class=num>-{escape(back)}</td></tr>"
        foot += f"<tr><td>Net</td><td class=num>{escape(net)}</td></tr>"
    body = (
        f"<h1>{heading}</h1><p class=muted>{escape(seller)}</p>"
        f"<dl>{dl}</dl>"
        "<table><thead><tr><th>Description</th><th class=num>Amount</th></tr></thead>"
        f"<tbody><tr><td>{line}</td><td class=num>{escape(amount)}</td></tr></tbody>"
        f"<tfoot>{foot}</tfoot></table>"
        f"<footer>Questions about this {title.lower()}? Reply to the email it came with. "
        f'<a href="{escape(unsubscribe_url)}">Unsubscribe</a> from {escape(seller)} emails.</footer>'
    )
    return _page(f"{title} {number or row['id']} - {seller}", body)


def render_unsubscribe_confirm(email: str, *, seller: str, action: str, already: bool) -> bytes:
    """GET of an unsubscribe link: asks, changes nothing (mail scanners prefetch links)."""
    if already:
        body = f"<h1>You are unsubscribed</h1><p>{escape(email)} gets no more emails from {escape(seller)}.</p>"
    else:
        body = (
            f"<h1>Unsubscribe?</h1><p>Stop emails from {escape(seller)} to <b>{escape(email)}</b>.</p>"
            f'<form method=post action="{escape(action)}">'
            '<input type=hidden name="List-Unsubscribe" value="One-Click">'
            "<button type=submit>Unsubscribe</button></form>"
        )
    return _page(f"Unsubscribe - {seller}", body)


def render_unsubscribed(email: str, *, seller: str) -> bytes:
    """Answer to the one-click POST (shown when a person pressed the button)."""
    body = f"<h1>You are unsubscribed</h1><p>{escape(email)} gets no more emails from {escape(seller)}.</p>"
    return _page(f"Unsubscribed - {seller}", body)
