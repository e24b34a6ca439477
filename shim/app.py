"""The Bottle app: one auth hook, one error hook, security headers; routes live in shim/routes/.

Every `/api/*` path, and the paths in KEYED (`/metrics`), needs the dashboard key, in
`X-Dash-Key` or as `Authorization: Bearer <key>` (what Prometheus' and Alertmanager's
`authorization` settings send), equal to DASHBOARD_KEY (constant-time compare), except the
paths listed in PUBLIC_API (where a signed token is the credential). Nothing here consults
cost state: admin routes are never degraded.

The wiring is explicit and lives here: ROUTES lists the route modules (each has
`install(app)`), PUBLIC_API the token-authenticated paths they declare, KEYED the keyed
paths outside /api, and POST_FORK the hooks `echoops serve` runs in each gunicorn worker.
Importing a route module changes nothing.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable, Iterable
from io import BytesIO

from bottle import Bottle, HTTPError, JSONPlugin, request, response

from echoops.core import auth, config, store
from echoops.core.errors import EchoopsError
from echoops.core.files import dumps
from shim.http import MAX_BODY, HTTPTooLarge, client_ip, from_domain, json_error, json_response
from shim.http import settings as request_settings
from shim.routes import costs, dashboard, health, incidents, metrics, openapi, portal, scale, slo
from shim.worker import WATCHDOG

# Installed in this order.
ROUTES = (health, dashboard, slo, incidents, portal, costs, scale, metrics, openapi)

# Paths under /api/ that carry their own credential (a signed token): no X-Dash-Key.
PUBLIC_API: frozenset[str] = frozenset((*portal.PUBLIC, *incidents.PUBLIC))

# Paths outside /api/ that need the dashboard key all the same.
KEYED: frozenset[str] = frozenset(metrics.KEYED)

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
    408: "timeout",
    413: "too_large",
    429: "too_many_requests",
    500: "internal",
    503: "unavailable",
}


def _undecodable_header(environ: dict) -> str | None:
    """The first request header whose bytes are not UTF-8 (Bottle decodes headers as UTF-8 and
    raised mid-route, after state had changed), or None.

    Cookie is left out: echoops sets and reads none, and a browser sends every cookie of the
    host, whatever port set it, so another local app's cookie must not break the dashboard.
    """
    for name, value in environ.items():
        # the value first: nearly every value is ASCII text, and the name checks are the cost
        if not isinstance(value, str) or value.isascii() or name == "HTTP_COOKIE":
            continue
        if name.startswith("HTTP_") or name in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            try:
                value.encode("latin-1").decode("utf-8")  # PEP 3333: header bytes arrive as latin-1
            except UnicodeError:
                return name.removeprefix("HTTP_").replace("_", "-").title()
    return None


def _given_key(environ: dict) -> bytes | None:
    """The key's bytes as sent: the X-Dash-Key header, else the token of `Authorization: Bearer`
    (RFC 6750; the scheme in any case); None when neither can be the key."""
    given = environ.get("HTTP_X_DASH_KEY")
    if given is None:
        scheme, _, token = environ.get("HTTP_AUTHORIZATION", "").strip().partition(" ")
        given = token.strip() if scheme.lower() == "bearer" else ""
    try:
        return given.encode("latin-1")
    except UnicodeError:  # a server that passed characters no header byte can carry
        return None


def _access_check(public: frozenset[str], keyed: frozenset[str] = KEYED) -> Callable[[], None]:
    """The before-request hook: body size, header bytes, then the key (X-Dash-Key or Bearer, with
    the wrong-key throttle) on every /api path not in `public` and on every path in `keyed`."""

    def check_access() -> None:
        environ = request.environ
        length = request.content_length
        if length and length > MAX_BODY:
            raise from_domain(HTTPTooLarge())
        bad_header = _undecodable_header(environ)
        path = request.path
        if (not (path == "/api" or path.startswith("/api/")) or path in public) and path not in keyed:
            if bad_header:
                raise json_error(400, "bad_request", f"header {bad_header} is not valid UTF-8")
            return
        s = request_settings()
        key = s.dashboard_key
        if not key:
            raise json_error(503, "not_configured", "DASHBOARD_KEY is not set on the server; admin routes are off")
        weak = config.weak_dashboard_key(key)
        if weak:
            raise json_error(503, "not_configured", f"{weak} on the server; admin routes are off")
        client = client_ip()
        wait = auth.retry_after(client, s=s)
        if wait:
            raise _too_many(wait)
        given = _given_key(environ)
        if given is None or not hmac.compare_digest(given, key.encode("ascii")):
            wait = auth.record_failure(client, s=s)
            resp = json_error(401, "unauthorized", "missing or wrong key (X-Dash-Key header or Authorization: Bearer)")
            if wait:
                resp.set_header("Retry-After", str(wait))
            raise resp
        if bad_header:
            raise json_error(400, "bad_request", f"header {bad_header} is not valid UTF-8")

    return check_access


def _too_many(wait: int):
    detail = f"too many wrong keys from this address; retry after {wait} s"
    return json_response({"error": "too_many_requests", "detail": detail}, 429, {"Retry-After": str(wait)})


def _domain_errors(callback):
    """Bottle plugin: a route's EchoopsError becomes `{"error","detail"}` with its status; a
    store failure (disk full, read-only, db file gone) becomes 503 `store_unavailable`."""

    def wrapper(*args, **kwargs):
        try:
            return callback(*args, **kwargs)
        except EchoopsError as exc:
            return from_domain(exc)
        except store.errors(OSError) as exc:
            found = store.unavailable(exc)
            if found is None:
                raise
            store.note_failure()
            return from_domain(found)

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


def create_app(public: Iterable[str] = PUBLIC_API, keyed: Iterable[str] = KEYED) -> Bottle:
    """Build the app with every route module installed; `public` /api paths skip the key check,
    `keyed` paths outside /api get it."""
    app = Bottle(catchall=True)
    app.uninstall(JSONPlugin)
    app.install(JSONPlugin(json_dumps=lambda obj: dumps(obj).decode()))
    app.install(_domain_errors)
    app.add_hook("before_request", _access_check(frozenset(public), frozenset(keyed)))
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
            if (path.startswith("/api") or path in KEYED) and "cache-control" not in names:
                headers.append(("Cache-Control", "no-store"))
            if not path.startswith("/api"):
                headers.append(("Content-Security-Policy", CSP))
                headers.append(("X-Frame-Options", "DENY"))
            return start_response(status, headers, exc_info)

        return self.app(environ, start)


class RequestBody:
    """WSGI middleware: the whole request body (at most 64 KiB) is read here, before auth and
    routing, within the request's read deadline (`shim.worker`), which it then disarms.

    - A Content-Length over 64 KiB is 413 (a body up to 1 MiB is read and dropped first, so the
      client is done sending and reads the answer rather than a reset).
    - A body that is not complete when the deadline passes (a slow or stalled client) is 408
      with `Connection: close`; one whose client hung up early is 400.
    - gunicorn de-chunks a chunked `wsgi.input` (and says so with `wsgi.input_terminated`) but
      leaves the Transfer-Encoding header, which made Bottle parse the chunks a second time and
      answer 400 to every chunked request: the body handed on is always a sized one.
    """

    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        sock = environ.get("gunicorn.socket")
        try:
            failure = self._read(environ, WATCHDOG.deadline(sock))
        finally:
            WATCHDOG.disarm(sock)
        if failure is not None:
            status, code, detail = failure
            body = dumps({"error": code, "detail": detail})
            start_response(
                status,
                [("Content-Type", "application/json"), ("Content-Length", str(len(body))), ("Connection", "close")],
            )
            return [body]
        return self.app(environ, start_response)

    @staticmethod
    def _read(environ, deadline: float | None) -> tuple[str, str, str] | None:
        chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return ("400 Bad Request", "bad_request", "Content-Length is not a number")
        if chunked and not environ.get("wsgi.input_terminated"):
            return None  # a server that leaves chunks to the app: Bottle decodes them
        if not chunked and length <= 0:
            return None
        if not chunked and length > MAX_BODY:
            # Read (and drop) a moderately large body first: a client still sending when the
            # server closes gets a reset instead of the 413.
            if length <= DRAIN_MAX_BYTES:
                _discard(environ["wsgi.input"], length)
            too_large = HTTPTooLarge()
            return ("413 Request Entity Too Large", too_large.code, too_large.detail)
        want = MAX_BODY + 1 if chunked else length
        stream = environ["wsgi.input"]
        data = b""
        try:
            while len(data) < want:
                part = stream.read(want - len(data))
                if not part:
                    break
                data += part
        except Exception:  # gunicorn's NoMoreData, a reset, a socket shut down at the deadline
            if chunked:
                data = None
        late = deadline is not None and time.monotonic() >= deadline
        if data is None or (not chunked and len(data) < length):
            if late:
                return ("408 Request Timeout", "timeout", "the request body did not arrive in time")
            return ("400 Bad Request", "bad_request", "the request body ended before its Content-Length")
        if len(data) > MAX_BODY:
            too_large = HTTPTooLarge()
            return ("413 Request Entity Too Large", too_large.code, too_large.detail)
        environ.pop("HTTP_TRANSFER_ENCODING", None)
        environ["CONTENT_LENGTH"] = str(len(data))
        environ["wsgi.input"] = BytesIO(data)
        return None


DRAIN_MAX_BYTES = 1024 * 1024


def _discard(stream, length: int) -> None:
    left = length
    try:
        while left > 0:
            part = stream.read(min(left, 65536))
            if not part:
                return
            left -= len(part)
    except Exception:  # the client went away or the read deadline passed: nothing to drain
        return


def with_middleware(bottle_app: Bottle):
    """The WSGI app a server runs: `bottle_app` behind the body reader and the security headers."""
    return SecurityHeaders(RequestBody(bottle_app))


bottle_app = create_app()
app = with_middleware(bottle_app)
