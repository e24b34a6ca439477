"""Customer portal: signed receipt/invoice links, downloads, one-click unsubscribe, access audit.

- `receipts(email)` lists a customer's purchases with absolute signed links (download links
  live PORTAL_LINK_TTL_HRS; the unsubscribe link 30 days, since it travels in emails).
- `download(token)` turns a valid download token into a Document: a stored file under
  `logs/receipts/` (never a path from the token: the token names a ledger id and a kind),
  a redirect to the Stripe-hosted receipt/invoice for URL documents, or a printable HTML
  receipt/invoice rendered from the ledger.
- `unsubscribe_view` (GET, changes nothing) and `unsubscribe_one_click` (RFC 8058 POST).
- Every access attempt appends `{email, ip, resource, status, reason?}` to
  `logs/portal_access.ndjson`: signed-link downloads and unsubscribes, and admin lookups
  (`receipts`, `link`; with the `route`, and ip `cli` from the CLI). The token never is.

The ledger lives in `ledger`, the importer in `importer`, rendered documents in `documents`.
"""

from __future__ import annotations

import mimetypes
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson

from echoops.core import clock, config, ndjson, signing
from echoops.core.config import Settings
from echoops.core.errors import EchoopsError, NotFound, ValidationError
from echoops.core.portal import documents, ledger, rows
from echoops.core.portal.importer import import_purchases  # noqa: F401 (the portal interface)
from echoops.core.portal.ledger import fees_by_day  # noqa: F401 (the portal interface)
from echoops.core.portal.types import Audit, Link, Purchase, Receipts, Subscription

PURPOSE_DOWNLOAD = "portal.download"
PURPOSE_UNSUBSCRIBE = "portal.unsubscribe"
KINDS = ("receipt", "invoice")
UNSUBSCRIBE_TTL_S = 30 * 86400
AUDIT_FILE = "portal_access.ndjson"
DOWNLOAD_PATH = "/api/portal/download"
UNSUBSCRIBE_PATH = "/api/portal/unsubscribe"
MAX_DOCUMENT_BYTES = 25 * 1024 * 1024
MAX_LIMIT = 500
INLINE_TYPES = frozenset(("application/pdf", "image/png", "image/jpeg", "image/gif", "text/plain"))


@dataclass
class Document:
    """What a download or unsubscribe request answers with; the shim turns it into HTTP.

    kind: "file" / "html" (body bytes) or "redirect" (location, answered 302).
    """

    kind: str
    body: bytes = b""
    content_type: str = "text/html; charset=utf-8"
    filename: str | None = None
    inline: bool = True
    location: str | None = None
    csp: str | None = documents.PAGE_CSP

    @property
    def status(self) -> int:
        return 302 if self.kind == "redirect" else 200


def _download_url(s: Settings, purchase_id: str, kind: str, email: str, now: float | None) -> tuple[str, int]:
    token, expires = signing.sign(PURPOSE_DOWNLOAD, f"{kind}:{purchase_id}", email, s=s, now=now)
    return f"{s.portal_base_url}{DOWNLOAD_PATH}?token={token}", expires


def unsubscribe_url(email: str, *, s: Settings | None = None, now: float | None = None) -> str:
    """Absolute signed one-click unsubscribe link for `email` (also the List-Unsubscribe header value)."""
    s = s or config.settings()
    token, _ = signing.sign(PURPOSE_UNSUBSCRIBE, "unsubscribe", email, ttl_s=UNSUBSCRIBE_TTL_S, s=s, now=now)
    return f"{s.portal_base_url}{UNSUBSCRIBE_PATH}?token={token}"


def _has_invoice(row: Any) -> bool:
    return bool(row["invoice_number"] or row["invoice_doc"])


def receipts(
    email: str,
    *,
    limit: int = 100,
    ip: str | None = None,
    route: str | None = None,
    s: Settings | None = None,
    now: float | None = None,
) -> Receipts:
    """`{email, unsubscribed, unsubscribe_url, purchases:[{id, created, amount, currency, amount_display,
    refunded, refunded_display, ..., receipt_url, invoice_url, expires_at}]}`, newest first; amounts
    in minor units (`refunded` 0 unless refunded). ValidationError on a bad email.

    An admin lookup: audited in portal_access.ndjson (`resource` "receipts", the caller's `ip`,
    "cli" for the CLI, and `route`), refused ones too; the links' tokens never are."""
    s = s or config.settings()
    normalized: str | None = None
    try:
        normalized = rows.normalize_email(email)
        body = _receipts(normalized, limit, s, now)
    except EchoopsError as exc:
        _audit(s, email=normalized, ip=ip, resource="receipts", status=exc.status, action="lookup",
               reason=exc.detail[:300], route=route, now=now)  # fmt: skip
        raise
    _audit(s, email=normalized, ip=ip, resource="receipts", status=200, action="lookup", route=route,
           count=len(body["purchases"]), now=now)  # fmt: skip
    return body


def _receipts(email: str, limit: int, s: Settings, now: float | None) -> Receipts:
    if not 1 <= limit <= MAX_LIMIT:
        raise ValidationError(f"limit must be 1..{MAX_LIMIT}", field="limit")
    signing.keys(s)  # NotConfigured before touching the ledger
    purchases: list[Purchase] = []
    for row in ledger.purchases_for(email, limit=limit, s=s):
        receipt_url, expires = _download_url(s, row["id"], "receipt", email, now)
        invoice_url = _download_url(s, row["id"], "invoice", email, now)[0] if _has_invoice(row) else None
        purchases.append(
            {
                "id": row["id"],
                "created": clock.iso(row["created"]),
                "amount": row["amount_cents"],
                "currency": row["currency"],
                "amount_display": documents.format_amount(row["amount_cents"], row["currency"]),
                "refunded": row["refunded_cents"],
                "refunded_display": (
                    documents.format_amount(row["refunded_cents"], row["currency"]) if row["refunded_cents"] else None
                ),
                "description": row["description"],
                "status": row["status"],
                "invoice_number": row["invoice_number"],
                "receipt_url": receipt_url,
                "invoice_url": invoice_url,
                "expires_at": clock.iso(expires),
            }
        )
    return {
        "email": email,
        "unsubscribed": ledger.is_unsubscribed(email, s=s),
        "unsubscribe_url": unsubscribe_url(email, s=s, now=now),
        "purchases": purchases,
    }


def link(
    purchase_id: str,
    kind: str = "receipt",
    *,
    ip: str | None = None,
    route: str | None = None,
    s: Settings | None = None,
    now: float | None = None,
) -> Link:
    """A fresh signed download link for one purchase: `{id, kind, email, url, expires_at}`; audited
    like `receipts` (resource `kind:id`, action "link")."""
    s = s or config.settings()
    if kind not in KINDS:
        raise ValidationError("kind must be receipt or invoice", field="kind")
    resource = f"{kind}:{purchase_id}"[:200]
    email = None
    try:
        signing.keys(s)
        row = ledger.purchase(purchase_id, s=s)
        email = row["email"]
        if kind == "invoice" and not _has_invoice(row):
            raise NotFound(f"purchase {purchase_id!r} has no invoice (no invoice number or invoice document)")
    except EchoopsError as exc:
        _audit(s, email=email, ip=ip, resource=resource, status=exc.status, action="link", reason=exc.detail[:300],
               route=route, now=now)  # fmt: skip
        raise
    url, expires = _download_url(s, row["id"], kind, row["email"], now)
    _audit(s, email=email, ip=ip, resource=resource, status=200, action="link", route=route, now=now)
    return {"id": row["id"], "kind": kind, "email": row["email"], "url": url, "expires_at": clock.iso(expires)}


# --- audit ----------------------------------------------------------------------------------


def _audit(
    s: Settings,
    *,
    email: str | None,
    ip: str | None,
    resource: str | None,
    status: int,
    action: str,
    reason: str | None = None,
    route: str | None = None,
    count: int | None = None,
    now: float | None = None,
) -> None:
    fields: dict[str, Any] = {"email": email, "ip": ip, "resource": resource, "status": status, "action": action}
    if reason is not None:
        fields["reason"] = reason
    if route is not None:
        fields["route"] = route
    if count is not None:
        fields["count"] = count
    ndjson.append(s.log_path(AUDIT_FILE), "portal_access", now=now, **fields)


def _tail_lines(path: Path, block: int = 64 * 1024):
    """Lines of `path` from the last to the first, reading backwards in blocks."""
    try:
        fh = open(path, "rb")
    except FileNotFoundError:
        return
    with fh:
        pos = fh.seek(0, os.SEEK_END)
        rest = b""
        while pos > 0:
            step = min(block, pos)
            pos -= step
            fh.seek(pos)
            buf = fh.read(step) + rest
            lines = buf.split(b"\n")
            rest = lines[0]
            for line in reversed(lines[1:]):
                if line.strip():
                    yield line
        if rest.strip():
            yield rest


def audit(*, email: str | None = None, limit: int = 50, s: Settings | None = None) -> Audit:
    """The newest `limit` access attempts (optionally for one email), newest first."""
    s = s or config.settings()
    if email is not None:
        email = rows.normalize_email(email)
    if not 1 <= limit <= 10_000:
        raise ValidationError("limit must be 1..10000", field="limit")
    entries: list[dict[str, Any]] = []
    for line in _tail_lines(s.log_path(AUDIT_FILE)):
        try:
            rec = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if not isinstance(rec, dict) or (email is not None and rec.get("email") != email):
            continue
        entries.append(rec)
        if len(entries) >= limit:
            break
    return {"email": email, "entries": entries}


# --- downloads --------------------------------------------------------------------------------


def _stored_file(s: Settings, doc: str) -> Path:
    """The real path of a stored document, refused unless it resolves to a file inside logs/receipts/."""
    base = os.path.realpath(ledger.receipts_dir(s))
    real = os.path.realpath(os.path.join(base, doc))
    if not real.startswith(base + os.sep):
        raise _Refused(403, "document resolves outside logs/receipts/")
    if not os.path.isfile(real):
        raise _Refused(404, "document file is missing")
    return Path(real)


class _Refused(Exception):
    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status = status
        self.reason = reason


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text)[:80] or "document"


def _document(s: Settings, claims: signing.Claims, now: float | None) -> tuple[Document, str]:
    kind, _, purchase_id = claims.resource.partition(":")
    if kind not in KINDS or not purchase_id:
        raise _Refused(403, f"token names an unknown resource kind {kind!r}")
    try:
        row = ledger.purchase(purchase_id, s=s)
    except NotFound:
        raise _Refused(404, "purchase no longer in the ledger") from None
    if row["email"] != claims.email:
        raise _Refused(403, "purchase belongs to another email")
    doc = row["invoice_doc"] if kind == "invoice" else row["receipt_doc"]
    if doc and doc.startswith(("https://", "http://")):
        return Document(kind="redirect", location=doc, csp=None), "redirect"
    if doc:
        path = _stored_file(s, doc)
        if path.stat().st_size > MAX_DOCUMENT_BYTES:
            raise _Refused(404, "document file is too large to serve")
        ctype = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        inline = ctype in INLINE_TYPES
        return (
            Document(
                kind="file",
                body=path.read_bytes(),
                content_type=ctype + ("; charset=utf-8" if ctype == "text/plain" else ""),
                filename=f"{kind}-{_safe_name(purchase_id)}{path.suffix.lower()}",
                inline=inline,
                csp=documents.FILE_CSP,
            ),
            "file",
        )
    if kind == "invoice" and not _has_invoice(row):
        raise _Refused(404, "purchase has no invoice")
    html = documents.render_document(
        row, kind, seller=s.portal_seller_name, unsubscribe_url=unsubscribe_url(row["email"], s=s, now=now)
    )
    return Document(kind="html", body=html, filename=f"{kind}-{_safe_name(purchase_id)}.html"), "rendered"


def download(token: str, *, ip: str | None = None, s: Settings | None = None, now: float | None = None) -> Document:
    """The document a download token names; audited. BadToken (403, generic) / NotFound otherwise."""
    s = s or config.settings()
    claims: signing.Claims | None = None
    refusal: EchoopsError | None = None
    reason: str | None = None
    try:
        claims = signing.verify(token or "", PURPOSE_DOWNLOAD, s=s, now=now)
        doc, how = _document(s, claims, now)
        status, action = doc.status, f"download:{how}"
    except _Refused as exc:  # the token verified: the audit gets the precise reason, the public less
        status, action, reason = exc.status, "download", exc.reason
        refusal = NotFound("this document is not available") if status == 404 else signing.BadToken(reason)
    except EchoopsError as exc:  # BadToken (claims only when the signature checked out), NotConfigured
        status, action, reason, refusal = exc.status, "download", getattr(exc, "reason", exc.detail), exc
        claims = claims or getattr(exc, "claims", None)
    _audit(
        s,
        email=claims.email if claims else None,
        ip=ip,
        resource=claims.resource if claims else None,
        status=status,
        action=action,
        reason=reason,
        now=now,
    )
    if refusal is not None:
        raise refusal from None
    return doc


# --- unsubscribe ---------------------------------------------------------------------------


def _unsubscribe_claims(token: str, action: str, ip: str | None, s: Settings, now: float | None) -> signing.Claims:
    try:
        return signing.verify(token or "", PURPOSE_UNSUBSCRIBE, s=s, now=now)
    except signing.BadToken as exc:
        c = exc.claims
        _audit(
            s,
            email=c.email if c else None,
            ip=ip,
            resource="unsubscribe",
            status=403,
            action=action,
            reason=exc.reason,
            now=now,
        )
        raise


def unsubscribe_view(
    token: str, *, ip: str | None = None, s: Settings | None = None, now: float | None = None
) -> Document:
    """GET of an unsubscribe link: a confirmation page with a one-click button; changes nothing."""
    s = s or config.settings()
    claims = _unsubscribe_claims(token, "unsubscribe:view", ip, s, now)
    already = ledger.is_unsubscribed(claims.email, s=s)
    page = documents.render_unsubscribe_confirm(
        claims.email, seller=s.portal_seller_name, action=f"{UNSUBSCRIBE_PATH}?token={token}", already=already
    )
    _audit(s, email=claims.email, ip=ip, resource="unsubscribe", status=200, action="unsubscribe:view", now=now)
    return Document(kind="html", body=page)


def unsubscribe_one_click(
    token: str, form_value: str | None, *, ip: str | None = None, s: Settings | None = None, now: float | None = None
) -> Subscription:
    """RFC 8058 POST (`List-Unsubscribe=One-Click`): unsubscribe the token's email, idempotently."""
    s = s or config.settings()
    claims = _unsubscribe_claims(token, "unsubscribe", ip, s, now)
    if form_value != "One-Click":
        _audit(
            s,
            email=claims.email,
            ip=ip,
            resource="unsubscribe",
            status=400,
            action="unsubscribe",
            reason="form field List-Unsubscribe=One-Click missing",
            now=now,
        )
        raise ValidationError("POST body must be List-Unsubscribe=One-Click (RFC 8058)", field="List-Unsubscribe")
    changed = ledger.unsubscribe(claims.email, source="one-click", s=s, now=now)
    _audit(s, email=claims.email, ip=ip, resource="unsubscribe", status=200, action="unsubscribe", now=now)
    return {"email": claims.email, "unsubscribed": True, "changed": changed}


def unsubscribed_page(email: str, *, s: Settings | None = None) -> Document:
    """The page a person sees after pressing the one-click button (the POST asked for HTML)."""
    s = s or config.settings()
    return Document(kind="html", body=documents.render_unsubscribed(email, seller=s.portal_seller_name))


def set_subscription(
    email: str,
    unsubscribed: bool,
    *,
    ip: str | None = None,
    route: str | None = None,
    s: Settings | None = None,
    now: float | None = None,
) -> Subscription:
    """Operator unsubscribe/resubscribe: `{email, unsubscribed, changed}`. ValidationError on a bad
    email. Audited in portal_access.ndjson (action `unsubscribe` or `resubscribe`, resource
    `subscription`, the caller's `ip`, "cli" for the CLI, and `route`), changed or not."""
    s = s or config.settings()
    email = rows.normalize_email(email)
    if unsubscribed:
        changed = ledger.unsubscribe(email, source="operator", s=s, now=now)
    else:
        changed = ledger.resubscribe(email, s=s)
    action = "unsubscribe" if unsubscribed else "resubscribe"
    _audit(s, email=email, ip=ip, resource="subscription", status=200, action=action, route=route, now=now)
    return {"email": email, "unsubscribed": unsubscribed, "changed": changed}


def verify(token_or_url: str, *, s: Settings | None = None, now: float | None = None) -> dict[str, Any]:
    """For support staff: what a token (or a whole link) is and why it fails, e.g. `expired at …`."""
    token = token_or_url.strip()
    if "://" in token or token.startswith("/"):
        token = (parse_qs(urlsplit(token).query).get("token") or [""])[0]
    return signing.inspect(token, s=s, now=now)
