"""The pager's routes: raise, summarize, ack, resolve, silences, the email links, and
/api/incidents/alertmanager (Alertmanager's webhook); the pager's drain thread for the server.

Raise enqueues and answers at once; each gunicorn worker runs a drain thread (POST_FORK,
registered by shim/app.py) that is woken by the enqueue, so a CRITICAL is on its way
to Telegram/email within a second or two, and every POLL_S seconds it also picks up pages
enqueued by other processes (the scheduler, the CLI), retries and escalations that fell due;
beside it a thread reads Telegram button presses (getUpdates; one worker at a time).

Admin (X-Dash-Key): POST /api/incidents/raise, /summarize, /ack, /resolve, /silence;
GET /api/incidents/silences; DELETE /api/incidents/silence?id=.
Public (the signed token is the credential): GET and POST /api/incidents/ack-link?token= and
/api/incidents/resolve-link?token= (the links in a page's email: GET confirms, POST acts).
"""

from __future__ import annotations

from bottle import HTTPResponse, request

from echoops.core import pager
from echoops.core.errors import EchoopsError, ValidationError
from echoops.core.pager import link_pages
from echoops.core.pager.types import AlertmanagerReceived, IncidentAction, Raised, Silence, Silences, Summary
from shim.http import form_value, from_domain, json_body, json_response, query

# Run in each gunicorn worker after fork (shim.app.POST_FORK).
POST_FORK = (pager.start_background_drain,)
# Token-authenticated paths (shim.app.PUBLIC_API): the signed token is the credential.
PUBLIC = (pager.ACK_LINK_PATH, pager.RESOLVE_LINK_PATH)
PRIVATE = {"Cache-Control": "private, no-store", "Referrer-Policy": "no-referrer", "X-Robots-Tag": "noindex"}


def raise_route() -> Raised:
    return pager.raise_request(json_body())


def summarize_route() -> Summary:
    return pager.summarize(hours=query("hours", "24"))


def alertmanager_route() -> AlertmanagerReceived:
    return pager.receive_alertmanager(json_body())


def ack_route() -> IncidentAction:
    return pager.ack_request(json_body())


def resolve_route() -> IncidentAction:
    return pager.resolve_request(json_body())


def silence_route() -> Silence:
    return pager.add_silence_request(json_body())


def silences_route() -> Silences:
    raw = query("all", "false")
    if raw not in ("true", "false", "1", "0"):
        raise ValidationError("all must be true or false", field="all")
    return pager.list_silences(all_recent=raw in ("true", "1"))


def unsilence_route() -> Silence:
    return pager.remove_silence(query("id") or "", by=query("by") or None)


def _html(page) -> HTTPResponse:
    resp = HTTPResponse(page.body, status=200)
    resp.content_type = page.content_type
    resp.set_header("Content-Security-Policy", page.csp)
    resp.set_header("X-Frame-Options", "DENY")
    return resp


def _public(handler):
    """Token routes: every answer, errors included, carries the private headers (the token is in the URL)."""

    def wrapper(*args, **kwargs):
        try:
            resp = handler(*args, **kwargs)
        except EchoopsError as exc:
            resp = from_domain(exc)
        for name, value in PRIVATE.items():
            resp.set_header(name, value)
        return resp

    wrapper.__name__ = handler.__name__
    return wrapper


def _link_routes(action: str):
    @_public
    def view() -> HTTPResponse:
        return _html(link_pages.view(action, query("token") or ""))

    @_public
    def act() -> HTTPResponse:
        token = query("token") or form_value("token") or ""
        wants_html = "text/html" in request.environ.get("HTTP_ACCEPT", "")
        result = link_pages.act(action, token, by=form_value("by"), note=form_value("note"))
        return _html(link_pages.result_page(action, result)) if wants_html else json_response(result)

    view.__name__, act.__name__ = f"{action}_link_view", f"{action}_link_act"
    return view, act


def install(app) -> None:
    app.route("/api/incidents/raise", "POST", raise_route)
    app.route("/api/incidents/summarize", "POST", summarize_route)
    app.route("/api/incidents/alertmanager", "POST", alertmanager_route)
    app.route("/api/incidents/ack", "POST", ack_route)
    app.route("/api/incidents/resolve", "POST", resolve_route)
    app.route("/api/incidents/silence", "POST", silence_route)
    app.route("/api/incidents/silence", "DELETE", unsilence_route)
    app.route("/api/incidents/silences", "GET", silences_route)
    for action, path in (("ack", pager.ACK_LINK_PATH), ("resolve", pager.RESOLVE_LINK_PATH)):
        view, act = _link_routes(action)
        app.route(path, "GET", view)
        app.route(path, "POST", act)
