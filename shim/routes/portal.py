"""Customer portal routes.

Admin (X-Dash-Key): GET /api/portal/receipts?email=…, GET /api/portal/audit?email=…&limit=…,
POST /api/portal/resubscribe {email}
Public (the signed token is the credential): GET /api/portal/download?token=…,
GET and POST /api/portal/unsubscribe?token=… (RFC 8058 one-click on POST).
Every public answer, errors included, carries `Cache-Control: private, no-store` and
`Referrer-Policy: no-referrer` (the token sits in the URL).
"""

from __future__ import annotations

from bottle import HTTPResponse, request

from echoops.core import config, portal
from echoops.core.errors import EchoopsError, ValidationError
from shim.http import client_ip, form_value, from_domain, json_body, json_response, query

# Token-authenticated paths (shim.app.PUBLIC_API): the signed token is the credential.
PUBLIC = (portal.DOWNLOAD_PATH, portal.UNSUBSCRIBE_PATH)
PRIVATE = {"Cache-Control": "private, no-store", "Referrer-Policy": "no-referrer", "X-Robots-Tag": "noindex"}


def _int_param(name: str, default: int) -> int:
    raw = query(name)
    if raw is None or raw == "":
        return default
    try:
        value = config.check_number(raw, lo=1)
    except ValueError as exc:
        raise ValidationError(f"{name}: {exc}", field=name) from None
    if not value.is_integer():
        raise ValidationError(f"{name}: not a whole number", field=name)
    return int(value)


def _client_ip() -> str | None:
    # the socket peer; X-Forwarded-For only from a proxy in ECHOOPS_TRUSTED_PROXIES
    return client_ip()


def _private(resp: HTTPResponse) -> HTTPResponse:
    for name, value in PRIVATE.items():
        resp.set_header(name, value)
    return resp


def _public(fn):
    """Token routes: domain errors become JSON with the private headers too."""

    def wrapper(*args, **kwargs):
        try:
            return _private(fn(*args, **kwargs))
        except EchoopsError as exc:
            return _private(from_domain(exc))

    wrapper.__name__ = fn.__name__
    return wrapper


def _document_response(doc: portal.Document) -> HTTPResponse:
    if doc.kind == "redirect":
        return HTTPResponse(status=doc.status, headers={"Location": doc.location})
    resp = HTTPResponse(doc.body, status=doc.status)
    resp.content_type = doc.content_type
    if doc.csp:
        resp.set_header("Content-Security-Policy", doc.csp)
    if doc.filename:
        disposition = "inline" if doc.inline else "attachment"
        resp.set_header("Content-Disposition", f'{disposition}; filename="{doc.filename}"')
    resp.set_header("X-Frame-Options", "DENY")
    return resp


def receipts():
    email = query("email")
    if not email:
        raise ValidationError("email query parameter is required", field="email")
    body = portal.receipts(email, limit=_int_param("limit", 100), ip=_client_ip(), route="GET /api/portal/receipts")
    return json_response(body, headers=dict(PRIVATE))


def resubscribe():
    """An operator takes a customer off the suppression list (the card's Resubscribe button)."""
    body = json_body()
    unknown = sorted(set(body) - {"email"})
    if unknown:
        raise ValidationError(f"unknown field {unknown[0]!r}", field=unknown[0])
    if "email" not in body:
        raise ValidationError("email is required", field="email")
    result = portal.set_subscription(body["email"], False, ip=_client_ip(), route="POST /api/portal/resubscribe")
    return json_response(result, headers=dict(PRIVATE))


def audit():
    email = query("email") or None
    return json_response(portal.audit(email=email, limit=_int_param("limit", 50)), headers=dict(PRIVATE))


@_public
def download():
    return _document_response(portal.download(query("token") or "", ip=_client_ip()))


@_public
def unsubscribe_view():
    return _document_response(portal.unsubscribe_view(query("token") or "", ip=_client_ip()))


@_public
def unsubscribe_post():
    token = query("token") or form_value("token") or ""
    wants_html = "text/html" in request.environ.get("HTTP_ACCEPT", "")  # read before the change is made
    result = portal.unsubscribe_one_click(token, form_value("List-Unsubscribe"), ip=_client_ip())
    if wants_html:
        return _document_response(portal.unsubscribed_page(result["email"]))
    return json_response(result)


def install(app) -> None:
    app.route("/api/portal/receipts", "GET", receipts)
    app.route("/api/portal/audit", "GET", audit)
    app.route("/api/portal/resubscribe", "POST", resubscribe)
    app.route(portal.DOWNLOAD_PATH, "GET", download)
    app.route(portal.UNSUBSCRIBE_PATH, "GET", unsubscribe_view)
    app.route(portal.UNSUBSCRIBE_PATH, "POST", unsubscribe_post)
