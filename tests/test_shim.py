"""The shim on a real gunicorn: auth on every /api route, the error hook, headers, `serve`.

Routes are enumerated from `shim.app.bottle_app.routes` when the tests are collected, so every
phase's routes are covered without editing this file. Statuses a live route cannot be made to
produce on demand (400 from json_body, 500) are checked in process on a throwaway app built by
the same `create_app()` and wrapped by the same middleware (`shim.app.app` is never modified).
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
from io import BytesIO, StringIO
from pathlib import Path
from wsgiref.util import setup_testing_defaults

import httpx
import pytest

import echoops
from echoops.core import config
from echoops.core.config import VARS
from echoops.core.errors import NotFound, ValidationError
from shim import app as shim_app
from shim.http import MAX_BODY, json_body, json_response, query
from tests.conftest import TEST_KEY, start_server, stop_server

ROOT = Path(__file__).resolve().parent.parent


def _fill(rule: str) -> str:
    """A concrete path for a Bottle rule: `<id:int>` -> 1, `<name>` -> dummy."""

    def value(m: re.Match) -> str:
        spec = m.group(1)
        return "1" if (":int" in spec or ":float" in spec) else "dummy"

    return re.sub(r"<([^>]*)>", value, rule)


def _api_routes() -> list[tuple[str, str]]:
    out = []
    for route in shim_app.bottle_app.routes:
        if not (route.rule == "/api" or route.rule.startswith("/api/")) and route.rule not in shim_app.KEYED:
            continue
        path = _fill(route.rule)
        if route.rule in shim_app.PUBLIC_API or path in shim_app.PUBLIC_API:
            continue
        out.append(("GET" if route.method == "ANY" else route.method, path))
    return sorted(set(out))


API_ROUTES = _api_routes()
WRONG_KEY = "wrong-key-" + secrets.token_hex(8)
UNKNOWN_API = [
    "/api",
    "/api/",
    "/api/nope",
    f"/api/{secrets.token_hex(6)}/{secrets.token_hex(4)}",
    "/api/slo/status/extra",
    "/api/scale/../healthz",
    "/api/%2e%2e/healthz",
    "/api/healthz",
]


def _base_env(log_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {var.env for var in VARS}}
    env["ECHOOPS_LOG_DIR"] = str(log_dir)
    env["HOME"] = str(log_dir.parent)
    return env


class Server:
    """A started server plus cached httpx clients (building an httpx.Client costs tens of ms)."""

    def __init__(self, live):
        self.live = live
        self.url = live.url
        self.log_dir = live.log_dir
        self._clients: dict = {}

    def client(self, key: str | None = "default") -> httpx.Client:
        if key not in self._clients:
            self._clients[key] = self.live.client(key)
        return self._clients[key]

    def close(self) -> None:
        for c in self._clients.values():
            c.close()
        stop_server(self.live.proc)


@pytest.fixture(scope="module")
def keyed(tmp_path_factory):
    """One gunicorn (2 workers) with DASHBOARD_KEY set, shared by this module's tests."""
    log_dir = tmp_path_factory.mktemp("shim") / "logs"
    log_dir.mkdir()
    # these tests send hundreds of wrong keys on purpose: lift the 401 throttle (tests/test_auth_guard.py)
    env = {**_base_env(log_dir), "DASHBOARD_KEY": TEST_KEY, "ECHOOPS_AUTH_FAILURES_PER_MIN": "1000000"}
    srv = Server(start_server(env, 2))
    yield srv
    srv.close()


@pytest.fixture(scope="module")
def keyless(tmp_path_factory):
    """`gunicorn shim.wsgi:app` without DASHBOARD_KEY (`serve` refuses to start): admin routes answer 503."""
    log_dir = tmp_path_factory.mktemp("shim-keyless") / "logs"
    log_dir.mkdir()
    srv = Server(start_server(_base_env(log_dir), 1, wsgi=True))
    yield srv
    srv.close()


def _send(client: httpx.Client, method: str, path: str) -> httpx.Response:
    body = b"{}" if method in ("POST", "PUT", "PATCH") else None
    return client.request(method, path, content=body, headers={"Content-Type": "application/json"} if body else {})


def _assert_error(r: httpx.Response, status: int, code: str) -> dict:
    assert r.status_code == status, (r.request.method, r.request.url, r.text)
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert set(body) == {"error", "detail"}
    assert body["error"] == code
    assert isinstance(body["detail"], str) and body["detail"]
    return body


# --- auth on every /api route ------------------------------------------------------------------


def test_there_are_api_routes_to_check():
    # the scale phase's routes exist already; an empty list would make the next tests vacuous
    assert API_ROUTES


@pytest.mark.parametrize(("method", "path"), API_ROUTES, ids=[f"{m} {p}" for m, p in API_ROUTES])
def test_every_api_route_needs_the_key(keyed, keyless, method, path):
    for client in (keyed.client(None), keyed.client(WRONG_KEY), keyed.client("")):
        r = _send(client, method, path)
        body = _assert_error(r, 401, "unauthorized")
        assert body["detail"] == "missing or wrong key (X-Dash-Key header or Authorization: Bearer)"
        assert r.headers["cache-control"] == "no-store"
    # a key that is a prefix or an extension of the real one is still wrong
    for near in (TEST_KEY[:-1], TEST_KEY + "x", TEST_KEY.upper()):
        _assert_error(_send(keyed.client(near), method, path), 401, "unauthorized")
    # without DASHBOARD_KEY on the server: 503, whatever key is sent
    for client in (keyless.client(None), keyless.client(TEST_KEY)):
        body = _assert_error(_send(client, method, path), 503, "not_configured")
        assert "DASHBOARD_KEY" in body["detail"]


@pytest.mark.parametrize("path", UNKNOWN_API)
def test_unknown_api_paths_need_the_key_before_routing(keyed, keyless, path):
    for method in ("GET", "POST", "DELETE"):
        _assert_error(keyed.client(None).request(method, path), 401, "unauthorized")
        _assert_error(keyless.client(None).request(method, path), 503, "not_configured")


def test_unknown_api_path_with_key_is_404(keyed):
    body = _assert_error(keyed.client().get("/api/nope"), 404, "not_found")
    assert body["detail"] == "no route for GET /api/nope"


def test_right_key_passes_auth(keyed):
    client = keyed.client()
    for method, path in API_ROUTES:
        r = _send(client, method, path)
        assert r.status_code != 401, (method, path, r.text)
        assert not (r.status_code == 503 and "DASHBOARD_KEY" in r.text), (method, path, r.text)


# --- error hook on the live server ---------------------------------------------------------------


def test_404_and_405(keyed):
    body = _assert_error(keyed.client(None).get("/nope"), 404, "not_found")
    assert body["detail"] == "no route for GET /nope"
    body = _assert_error(keyed.client(None).post("/healthz"), 405, "method_not_allowed")
    assert body["detail"] == "method POST not allowed on /healthz"


def test_413_with_content_length(keyed):
    big = b'{"pad": "' + b"x" * MAX_BODY + b'"}'
    for client in (keyed.client(), keyed.client(None)):
        for path in ("/api/anything", "/healthz"):
            r = client.post(path, content=big, headers={"Content-Type": "application/json"})
            body = _assert_error(r, 413, "too_large")
            assert body["detail"] == f"request body is larger than {MAX_BODY} bytes"


def test_413_with_chunked_body(keyed):
    def chunks(total: int):
        sent = 0
        while sent < total:
            n = min(8192, total - sent)
            sent += n
            yield b" " * n

    for client in (keyed.client(), keyed.client(None)):
        r = client.post("/api/anything", content=chunks(MAX_BODY + 10))
        assert r.request.headers.get("transfer-encoding") == "chunked"
        assert "content-length" not in r.request.headers
        _assert_error(r, 413, "too_large")


def test_small_chunked_body_is_read_once(keyed):
    # gunicorn already de-chunks the body; Bottle must not parse the chunks again (it used
    # to answer 400 "Error while parsing chunked transfer body" to every chunked request).
    posts = [(m, p) for m, p in API_ROUTES if m == "POST"]
    if not posts:
        pytest.skip("no POST /api route installed yet")
    method, path = posts[0]

    def chunks():
        yield b"not "
        yield b"json"

    r = keyed.client().post(path, content=chunks(), headers={"Content-Type": "application/json"})
    assert r.request.headers.get("transfer-encoding") == "chunked"
    assert r.status_code != 400 or r.json()["error"] != "bad_request", r.text


def test_503_body_on_keyless_server(keyless):
    body = _assert_error(keyless.client(None).get("/api/slo/status"), 503, "not_configured")
    assert body["detail"] == "DASHBOARD_KEY is not set on the server; admin routes are off"


# --- headers, healthz, dashboard ------------------------------------------------------------------


def test_security_headers(keyed):
    c = keyed.client(None)
    api = c.get("/api/nope")
    assert api.headers["cache-control"] == "no-store"
    assert api.headers["x-content-type-options"] == "nosniff"
    assert api.headers["referrer-policy"] == "no-referrer"
    page = c.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["content-security-policy"] == shim_app.CSP
    assert "script-src 'self'" in shim_app.CSP and "unsafe-inline" not in shim_app.CSP
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["referrer-policy"] == "no-referrer"
    assert page.headers["x-frame-options"] == "DENY"
    for r in (c.get("/nope"), c.get("/healthz")):
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["referrer-policy"] == "no-referrer"


def test_healthz_fields(keyed, keyless):
    for srv in (keyed, keyless):
        r = srv.client(None).get("/healthz")
        assert r.status_code == 200
        # and who leads the schedule (no scheduler runs here: nobody), as this instance sees it
        assert r.json() == {
            "ok": True,
            "version": echoops.__version__,
            "log_dir_writable": True,
            "db_ok": True,
            "instance": config.settings().instance,
            "leader": None,
            "is_leader": False,
        }
        assert r.headers["cache-control"] == "no-store"
        assert r.headers["server"].startswith("gunicorn")  # never wsgiref
    assert (keyed.log_dir / "echoops.db").exists()


def test_healthz_reports_unwritable_log_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("ECHOOPS_LOG_DIR", str(tmp_path / "missing" / "logs"))
    for app in (_throwaway(), shim_app.app):  # a throwaway app and the real middleware stack
        status, headers, body = _call(app, "GET", "/healthz")
        assert status == 503
        assert body == {
            "ok": False,
            "version": echoops.__version__,
            "log_dir_writable": False,
            "db_ok": False,
            "detail": f"log dir {tmp_path / 'missing' / 'logs'} is not a writable directory",
        }
        assert headers["cache-control"] == "no-store"


# --- serve --------------------------------------------------------------------------------------------


def test_serve_refuses_without_key(cli, monkeypatch):
    monkeypatch.delenv("DASHBOARD_KEY")
    result = cli("serve", "--port", "1")
    assert result.exit_code == 2
    assert result.stderr == (
        "Error: DASHBOARD_KEY is not set: set it (admin routes need it), or run `echoops up --demo`\n"
    )


def test_serve_refuses_without_key_in_a_real_process(log_dir):
    env = _base_env(log_dir)
    r = subprocess.run(
        [sys.executable, "-m", "echoops", "serve", "--port", "9"], env=env, capture_output=True, text=True, timeout=30
    )
    assert r.returncode == 2
    assert r.stderr.startswith("Error: DASHBOARD_KEY is not set")
    assert r.stdout == ""


# --- in process: 400, 500, domain errors, body parsing ---------------------------------------------


class Boom(RuntimeError):
    pass


def _throwaway(public=shim_app.PUBLIC_API):
    """The real app machinery (hooks, plugins, error page, middleware) plus test-only routes."""
    bottle_app = shim_app.create_app(public)

    def boom():
        raise Boom("secret-marker Traceback /srv/app.py line 12")

    def echo():
        return {"got": json_body()}

    def echo_optional():
        return {"got": json_body(required=False)}

    def domain():
        raise NotFound("no receipt for that email")

    def invalid():
        raise ValidationError("usd_cap must be >= 0", field="usd_cap")

    def q():
        return json_response([query("email"), query("missing", "dflt")], 201)

    bottle_app.route("/api/test/boom", "GET", boom)
    bottle_app.route("/boom", "GET", boom)
    bottle_app.route("/api/test/echo", "POST", echo)
    bottle_app.route("/api/test/echo-optional", "POST", echo_optional)
    bottle_app.route("/api/test/domain", "GET", domain)
    bottle_app.route("/api/test/invalid", "GET", invalid)
    bottle_app.route("/api/test/q", "GET", q)
    return shim_app.with_middleware(bottle_app)


def _call(app, method, path, body=b"", headers=None, query_string="", gunicorn_chunked=False):
    environ: dict = {}
    setup_testing_defaults(environ)
    environ.update(
        {
            "REQUEST_METHOD": method,
            "PATH_INFO": path,
            "QUERY_STRING": query_string,
            "wsgi.input": BytesIO(body),
            "wsgi.errors": StringIO(),  # Bottle prints 500 tracebacks here (the server log)
        }
    )
    if gunicorn_chunked:
        environ["HTTP_TRANSFER_ENCODING"] = "chunked"
        environ["wsgi.input_terminated"] = True
        environ.pop("CONTENT_LENGTH", None)
    else:
        environ["CONTENT_LENGTH"] = str(len(body))
    for k, v in (headers or {}).items():
        environ["HTTP_" + k.upper().replace("-", "_")] = v
    seen = {}

    def start_response(status, hdrs, exc_info=None):
        seen["status"], seen["headers"] = status, hdrs

    import orjson

    out = b"".join(app(environ, start_response))
    hdrs = {k.lower(): v for k, v in seen["headers"]}
    return int(seen["status"][:3]), hdrs, orjson.loads(out) if out else None


KEY = {"X-Dash-Key": TEST_KEY}


def test_500_has_no_traceback():
    app = _throwaway()
    for path in ("/api/test/boom", "/boom"):
        status, headers, body = _call(app, "GET", path, headers=KEY)
        assert status == 500
        assert body == {"error": "internal", "detail": "internal server error"}
        assert headers["content-type"].startswith("application/json")
        assert headers["x-content-type-options"] == "nosniff"


def test_400_from_json_body():
    app = _throwaway()
    cases = [b"", b"   ", b"not json", b"[1, 2]", b'"s"', b"\xff\xfe", b'{"a": NaN}']
    for raw in cases:
        status, _, body = _call(app, "POST", "/api/test/echo", raw, KEY)
        assert status == 400, raw
        assert body["error"] == "invalid" and body["field"] == "body"
        assert body["detail"] in ("request body is not valid JSON", "request body must be a JSON object")
    assert _call(app, "POST", "/api/test/echo", b'{"a": 1}', KEY)[2] == {"got": {"a": 1}}
    assert _call(app, "POST", "/api/test/echo-optional", b"", KEY)[2] == {"got": {}}


def test_domain_errors_map_to_status_and_field():
    app = _throwaway()
    assert _call(app, "GET", "/api/test/domain", headers=KEY)[:3:2] == (
        404,
        {"error": "not_found", "detail": "no receipt for that email"},
    )
    assert _call(app, "GET", "/api/test/invalid", headers=KEY)[:3:2] == (
        400,
        {"error": "invalid", "detail": "usd_cap must be >= 0", "field": "usd_cap"},
    )


def test_auth_runs_before_the_route_in_process():
    app = _throwaway()
    status, headers, body = _call(app, "GET", "/api/test/boom")
    assert (status, body["error"]) == (401, "unauthorized")
    assert headers["cache-control"] == "no-store"


def test_chunked_bodies_as_gunicorn_passes_them():
    app = _throwaway()
    status, _, body = _call(app, "POST", "/api/test/echo", b'{"a": [1, 2]}', KEY, gunicorn_chunked=True)
    assert (status, body) == (200, {"got": {"a": [1, 2]}})
    status, _, body = _call(app, "POST", "/api/test/echo", b" " * (MAX_BODY + 1), KEY, gunicorn_chunked=True)
    assert (status, body["error"]) == (413, "too_large")
    status, _, body = _call(app, "POST", "/api/test/echo", b" " * MAX_BODY + b"{}", KEY)
    assert (status, body["error"]) == (413, "too_large")


def test_query_decodes_utf8():
    status, _, body = _call(_throwaway(), "GET", "/api/test/q", headers=KEY, query_string="email=%C3%A9t%C3%A9%40x.io")
    assert (status, body) == (201, ["été@x.io", "dflt"])


def test_a_public_path_skips_the_key_check_and_only_that_path():
    path = "/api/test/q"
    assert path not in shim_app.PUBLIC_API
    assert _call(_throwaway(), "GET", path, query_string="email=a")[0] == 401
    app = _throwaway(public={path})
    status, _, body = _call(app, "GET", path, query_string="email=a")
    assert (status, body) == (201, ["a", "dflt"])
    assert _call(app, "GET", path + "/x")[0] == 401  # only that exact path


def test_the_app_lists_its_routes_public_paths_and_post_fork_hooks(settings):
    from echoops.core import pager, portal
    from shim import server
    from shim.routes import costs, dashboard, health, incidents, metrics, openapi, scale, slo
    from shim.routes import portal as portal_routes

    assert (health, dashboard, slo, incidents, portal_routes, costs, scale, metrics, openapi) == shim_app.ROUTES
    assert {
        portal.DOWNLOAD_PATH,
        portal.UNSUBSCRIBE_PATH,
        pager.ACK_LINK_PATH,
        pager.RESOLVE_LINK_PATH,
    } == shim_app.PUBLIC_API
    assert {"/metrics"} == shim_app.KEYED
    assert (pager.start_background_drain,) == shim_app.POST_FORK
    assert not hasattr(server, "POST_FORK")  # nothing is registered by importing a module
    seen = []
    options = server.gunicorn_options(settings, 2, (seen.append, lambda s: seen.append(("second", s))))
    options["post_fork"](None, None)  # gunicorn calls it with (server, worker)
    assert seen == [settings, ("second", settings)]
    assert options["workers"] == 2 and server.gunicorn_options(settings, 1)["post_fork"] is not None
