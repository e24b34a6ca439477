"""The dashboard key's guard (issue 12, items 8 and 9).

8: a key under 16 characters is refused at start (exit 2 naming DASHBOARD_KEY); wrong keys from
   one client are slowed to 429 + Retry-After after 10 a minute, shared by the workers, while a
   right key from another client is unaffected.
9: header bytes that are not UTF-8 are a 400/401, never a 500, and never after a state change
   (raw sockets: httpx refuses to send such headers).
"""

from __future__ import annotations

import socket
import subprocess
import sys
from urllib.parse import urlsplit

import httpx
import orjson
import pytest

from echoops.core import auth, config, portal
from echoops.core.errors import ConfigError
from echoops.core.supervisor import run_up
from tests.conftest import TEST_KEY
from tests.test_shim import _base_env, _call, _throwaway

LIMIT = 10  # ECHOOPS_AUTH_FAILURES_PER_MIN's default
WEAK = "q7-fifteen-char"  # 15 characters
assert len(WEAK) == 15


# --- 8: weak keys ---------------------------------------------------------------------------------------


def test_serve_refuses_a_key_under_16_characters(log_dir):
    env = {**_base_env(log_dir), "DASHBOARD_KEY": WEAK}
    r = subprocess.run(
        [sys.executable, "-m", "echoops", "serve", "--port", "9"], env=env, capture_output=True, text=True, timeout=30
    )
    assert r.returncode == 2
    assert r.stderr == (
        "Error: DASHBOARD_KEY is shorter than 16 characters: use a long random key, e.g. `openssl rand -hex 16`\n"
    )
    assert WEAK not in r.stderr + r.stdout


def test_up_refuses_a_key_under_16_characters(log_dir):
    env = {**_base_env(log_dir), "DASHBOARD_KEY": WEAK}
    with pytest.raises(ConfigError) as info:
        run_up(env=env, out=lambda _: None, err=lambda _: None)
    assert info.value.exit_code == 2
    assert info.value.detail.startswith("DASHBOARD_KEY is shorter than 16 characters")


def test_a_16_character_key_is_enough(monkeypatch):
    assert config.weak_dashboard_key("x" * 16) is None
    assert config.weak_dashboard_key(None) is None
    monkeypatch.setenv("DASHBOARD_KEY", "k" * 16)
    status, _, body = _call(_throwaway(), "GET", "/api/ping", headers={"X-Dash-Key": "k" * 16})
    assert (status, body) == (200, {"ok": True})


def test_the_wsgi_app_serves_no_admin_route_with_a_weak_key(monkeypatch):
    # `gunicorn shim.wsgi:app` skips the `serve` check: the shim refuses too
    monkeypatch.setenv("DASHBOARD_KEY", WEAK)
    status, _, body = _call(_throwaway(), "GET", "/api/ping", headers={"X-Dash-Key": WEAK})
    assert (status, body) == (
        503,
        {
            "error": "not_configured",
            "detail": "DASHBOARD_KEY is shorter than 16 characters on the server; admin routes are off",
        },
    )


# --- 8: 401 throttle ------------------------------------------------------------------------------------


def _client(url: str, source: str, key: str | None) -> httpx.Client:
    headers = {"X-Dash-Key": key} if key is not None else {}
    transport = httpx.HTTPTransport(local_address=source)
    return httpx.Client(base_url=url, headers=headers, transport=transport, timeout=10)


def test_repeated_wrong_keys_from_one_client_get_429_and_others_are_unaffected(live_server):
    srv = live_server(workers=2)
    statuses = []
    for i in range(LIMIT):
        with _client(srv.url, "127.0.0.1", f"guess-{i:04d}-0123456789") as c:  # a new connection each: both workers
            statuses.append(c.get("/api/ping").status_code)
    assert statuses == [401] * LIMIT
    with _client(srv.url, "127.0.0.1", "guess-x-0123456789") as c:
        blocked = c.get("/api/ping")
    assert blocked.status_code == 429
    assert 1 <= int(blocked.headers["retry-after"]) <= 60
    wait = blocked.headers["retry-after"]
    assert blocked.json() == {
        "error": "too_many_requests",
        "detail": f"too many wrong keys from this address; retry after {wait} s",
    }
    with _client(srv.url, "127.0.0.1", TEST_KEY) as c:  # a right key from the guesser: still 429
        assert c.get("/api/ping").status_code == 429
    with _client(srv.url, "127.0.0.2", TEST_KEY) as other:  # another client: unaffected
        assert other.get("/api/ping").json() == {"ok": True}
    with _client(srv.url, "127.0.0.2", None) as other:
        assert other.get("/api/ping").status_code == 401
    assert httpx.get(srv.url + "/healthz").status_code == 200  # public routes are not throttled


def test_behind_a_trusted_proxy_the_forwarded_client_is_throttled(live_server):
    srv = live_server(workers=1, ECHOOPS_TRUSTED_PROXIES="127.0.0.1")
    with _client(srv.url, "127.0.0.1", "wrong-key-0123456789abc") as proxy:
        for _ in range(LIMIT):
            assert proxy.get("/api/ping", headers={"X-Forwarded-For": "203.0.113.7"}).status_code == 401
        assert proxy.get("/api/ping", headers={"X-Forwarded-For": "203.0.113.7"}).status_code == 429
        # the left part of the header is the client's own claim: only the proxy's hop counts
        spoofed = {"X-Forwarded-For": "198.51.100.9, 203.0.113.7"}
        assert proxy.get("/api/ping", headers=spoofed).status_code == 429
    with _client(srv.url, "127.0.0.1", TEST_KEY) as proxy:
        assert proxy.get("/api/ping", headers={"X-Forwarded-For": "203.0.113.8"}).json() == {"ok": True}
    # a peer that is not a trusted proxy cannot pick its address
    with _client(srv.url, "127.0.0.3", TEST_KEY) as direct:
        assert direct.get("/api/ping", headers={"X-Forwarded-For": "203.0.113.7"}).json() == {"ok": True}


def test_throttle_window_and_address_keys(settings):
    t0 = 1_800_000_000.0
    for i in range(LIMIT - 1):
        assert auth.record_failure("192.0.2.1", s=settings, now=t0 + i) == 0
    assert auth.retry_after("192.0.2.1", s=settings, now=t0 + 9) == 0
    assert auth.record_failure("192.0.2.1", s=settings, now=t0 + 10) == 50
    assert auth.retry_after("192.0.2.1", s=settings, now=t0 + 30) == 30
    assert auth.retry_after("192.0.2.2", s=settings, now=t0 + 30) == 0
    assert auth.retry_after("192.0.2.1", s=settings, now=t0 + 60) == 0  # the window is over
    assert auth.record_failure("192.0.2.1", s=settings, now=t0 + 61) == 0  # and counts from 1 again
    # one IPv6 host holds a /64: its addresses share one count
    assert auth.client_key("2001:db8:1:2::1") == auth.client_key("2001:db8:1:2:ffff::9") == "2001:db8:1:2::/64"
    assert auth.client_key("::ffff:192.0.2.1") == "192.0.2.1"


def test_client_address_believes_only_trusted_proxies():
    s = config.load_settings({"ECHOOPS_TRUSTED_PROXIES": "10.0.0.0/8, ::1"})
    assert auth.client_address("10.1.2.3", "203.0.113.7", s) == "203.0.113.7"
    assert auth.client_address("10.1.2.3", "198.51.100.1, 203.0.113.7, 10.9.9.9", s) == "203.0.113.7"
    assert auth.client_address("192.0.2.5", "203.0.113.7", s) == "192.0.2.5"
    assert auth.client_address("10.1.2.3", "not-an-ip", s) == "10.1.2.3"
    assert auth.client_address("10.1.2.3", None, s) == "10.1.2.3"
    with pytest.raises(ConfigError) as info:
        config.load_settings({"ECHOOPS_TRUSTED_PROXIES": "10.0.0.0/8, nope"})
    assert "ECHOOPS_TRUSTED_PROXIES='10.0.0.0/8, nope': 'nope' is not an IP address or network" in info.value.detail


# --- 9: header bytes that are not UTF-8 -----------------------------------------------------------------


def _raw(url: str, request: bytes) -> tuple[int, bytes]:
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(request)
        out = b""
        while True:
            part = sock.recv(65536)
            if not part:
                break
            out += part
    head, _, body = out.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


def test_non_utf8_key_header_is_401_without_a_traceback(live_server):
    srv = live_server(workers=1)
    status, body = _raw(
        srv.url, b"GET /api/ping HTTP/1.1\r\nHost: x\r\nX-Dash-Key: \xff\xfe\r\nConnection: close\r\n\r\n"
    )
    assert (status, orjson.loads(body)["error"]) == (401, "unauthorized")
    latin_key = b"GET /api/ping HTTP/1.1\r\nHost: x\r\nX-Dash-Key: " + TEST_KEY.encode() + b"\xe9\r\n"
    status, _ = _raw(srv.url, latin_key + b"Connection: close\r\n\r\n")
    assert status == 401
    status, body = _raw(
        srv.url,
        b"GET /api/ping HTTP/1.1\r\nHost: x\r\nX-Dash-Key: " + TEST_KEY.encode() + b"\r\n"
        b"User-Agent: \xff\r\nConnection: close\r\n\r\n",
    )
    assert (status, orjson.loads(body)) == (
        400,
        {"error": "bad_request", "detail": "header User-Agent is not valid UTF-8"},
    )
    status, _ = _raw(srv.url, b"GET /healthz HTTP/1.1\r\nHost: x\r\nAccept: \xff\r\nConnection: close\r\n\r\n")
    assert status == 400
    # a cookie another app on this host set is none of echoops' business
    status, _ = _raw(srv.url, b"GET /healthz HTTP/1.1\r\nHost: x\r\nCookie: a=\xff\r\nConnection: close\r\n\r\n")
    assert status == 200
    srv.proc.terminate()
    _, err = srv.proc.communicate(timeout=20)
    assert b"Traceback" not in err, err.decode(errors="replace")[-2000:]


SECRET = "header-test-signing-key-0123456789abcdef"


def test_non_utf8_accept_on_unsubscribe_changes_nothing(live_server, monkeypatch, log_dir):
    monkeypatch.setenv("PORTAL_SIGNING_SECRET", SECRET)
    f = log_dir.parent / "rows.ndjson"
    row = {
        "id": "u1",
        "email": "qa@echopilot.ai",
        "created": "2026-11-20T10:00:00Z",
        "amount_cents": 1900,
        "currency": "usd",
        "description": "Pro plan",
        "document": "https://pay.stripe.com/receipts/u1",
    }
    f.write_bytes(orjson.dumps(row) + b"\n")
    assert portal.import_purchases(f)["landed"] == 1
    srv = live_server(workers=1, PORTAL_SIGNING_SECRET=SECRET)
    url = urlsplit(portal.unsubscribe_url("qa@echopilot.ai"))
    form = b"List-Unsubscribe=One-Click"
    request = (
        f"POST {url.path}?{url.query} HTTP/1.1\r\nHost: x\r\n".encode()
        + b"Content-Type: application/x-www-form-urlencoded\r\nAccept: \xff\r\nConnection: close\r\n"
        + f"Content-Length: {len(form)}\r\n\r\n".encode()
        + form
    )
    status, body = _raw(srv.url, request)
    assert (status, orjson.loads(body)) == (400, {"error": "bad_request", "detail": "header Accept is not valid UTF-8"})
    receipts = httpx.get(
        srv.url + "/api/portal/receipts", params={"email": "qa@echopilot.ai"}, headers={"X-Dash-Key": TEST_KEY}
    )
    assert receipts.json()["unsubscribed"] is False
