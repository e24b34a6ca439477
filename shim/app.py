"""The Bottle app: one auth hook, one error hook, security headers; routes live in shim/routes/.

Every `/api/*` path needs `X-Dash-Key` equal to DASHBOARD_KEY (constant-time compare), except
the paths listed in PUBLIC_API (where a signed token is the credential). Nothing here
consults cost state: admin routes are never degraded.

The wiring is explicit and lives here: ROUTES lists the route modules (each has
`install(app)`), PUBLIC_API the token-authenticated paths they declare, and POST_FORK the
hooks `echoops serve` runs in each gunicorn worker. Importing a route module changes nothing.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Iterable
from io import BytesIO

from bottle import Bottle, HTTPError, JSONPlugin, request, response

from echoops.core import config
from echoops.core.errors import EchoopsError
from echoops.core.files import dumps
from shim.http import MAX_BODY, HTTPTooLarge, from_domain, json_error
from shim.routes import costs, dashboard, health, incidents, portal, scale, slo

# Installed in this order.
ROUTES = (health, dashboard, slo, incidents, portal, costs, scale)

# Paths under /api/ that carry their own credential (a signed token): no X-Dash-Key.
PUBLIC_API: frozenset[str] = frozenset(portal.PUBLIC)

# Run in each gunicorn worker after fork, with the settings (`echoops serve` passes them to
# shim.server.gunicorn_options): the pager's drain thread, so an incident raised over HTTP is
# on its way to Telegram/email within a second or two.
POST_FORK: tuple[Callable[[config.Settings], object], ...] = (*incidents.POST_FORK,)

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
)

_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
    500: "internal",
    503: "unavailable",
}


def _access_check(public: frozenset[str]) -> Callable[[], None]:
    """The before-request hook: body size, then X-Dash-Key on every /api path not in `public`."""

    def check_access() -> None:
        length = request.content_length
        if length and length > MAX_BODY:
            raise from_domain(HTTPTooLarge())
        path = request.path
        if not (path == "/api" or path.startswith("/api/")) or path in public:
            return
        key = config.settings().dashboard_key
        if not key:
            raise json_error(503, "not_configured", "DASHBOARD_KEY is not set on the server; admin routes are off")
        given = request.get_header("X-Dash-Key", "")
        if not hmac.compare_digest(given.encode("utf-8", "replace"), key.encode("utf-8")):
            raise json_error(401, "unauthorized", "missing or wrong X-Dash-Key header")

    return check_access


def _domain_errors(callback):
    """Bottle plugin: a route's EchoopsError becomes `{"error","detail"}` with its status."""

    def wrapper(*args, **kwargs):
        try:
            return callback(*args, **kwargs)
        except EchoopsError as exc:
            return from_domain(exc)

    return wrapper


def _error_page(err: HTTPError) -> bytes:
    # Never a traceback or exception text: 500s say only that something failed.
    status = err.status_code
    code = _STATUS_CODES.get(status, "error")
    detail = "internal server error" if status >= 500 and status != 503 else str(err.body or code)
    if status == 404:
        detail = f"no route for {request.method} {request.path}"
    elif status == 405:
        detail = f"method {request.method} not allowed on {request.path}"
    response.content_type = "application/json"
    return dumps({"error": code, "detail": detail})


def create_app(public: Iterable[str] = PUBLIC_API) -> Bottle:
    """Build the app with every route module installed; `public` paths skip the X-Dash-Key check."""
    app = Bottle(catchall=True)
    app.uninstall(JSONPlugin)
    app.install(JSONPlugin(json_dumps=lambda obj: dumps(obj).decode()))
    app.install(_domain_errors)
    app.add_hook("before_request", _access_check(frozenset(public)))
    app.default_error_handler = _error_page
    for module in ROUTES:
        module.install(app)
    return app


class SecurityHeaders:
    """WSGI middleware: headers on every response, errors included."""

    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")

        def start(status, headers, exc_info=None):
            names = {h[0].lower() for h in headers}
            headers.append(("X-Content-Type-Options", "nosniff"))
            if "referrer-policy" not in names:
                headers.append(("Referrer-Policy", "no-referrer"))
            if path.startswith("/api") and "cache-control" not in names:
                headers.append(("Cache-Control", "no-store"))
            if not path.startswith("/api"):
                headers.append(("Content-Security-Policy", CSP))
                headers.append(("X-Frame-Options", "DENY"))
            return start_response(status, headers, exc_info)

        return self.app(environ, start)


class ChunkedBody:
    """WSGI middleware: a chunked request body the server already decoded becomes a sized one.

    gunicorn de-chunks `wsgi.input` (and says so with `wsgi.input_terminated`) but leaves the
    Transfer-Encoding header, which makes Bottle parse the chunks a second time and answer
    400 to every chunked request. Without a Content-Length the 64 KiB limit is enforced here
    too, before auth and routing, exactly like the Content-Length check in the auth hook.
    """

    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        if "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower() and environ.get("wsgi.input_terminated"):
            stream = environ["wsgi.input"]
            data = b""
            while len(data) <= MAX_BODY:
                part = stream.read(MAX_BODY + 1 - len(data))
                if not part:
                    break
                data += part
            if len(data) > MAX_BODY:
                too_large = HTTPTooLarge()
                body = dumps({"error": too_large.code, "detail": too_large.detail})
                start_response(
                    "413 Request Entity Too Large",
                    [("Content-Type", "application/json"), ("Content-Length", str(len(body))), ("Connection", "close")],
                )
                return [body]
            del environ["HTTP_TRANSFER_ENCODING"]
            environ["CONTENT_LENGTH"] = str(len(data))
            environ["wsgi.input"] = BytesIO(data)
        return self.app(environ, start_response)


def with_middleware(bottle_app: Bottle):
    """The WSGI app a server runs: `bottle_app` behind the chunked-body fix and the security headers."""
    return SecurityHeaders(ChunkedBody(bottle_app))


bottle_app = create_app()
app = with_middleware(bottle_app)
