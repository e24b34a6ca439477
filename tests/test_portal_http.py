"""Portal endpoints on a real gunicorn server: auth, bodies, statuses, headers, audit, one-click POST."""

from __future__ import annotations

from urllib.parse import urlsplit

import httpx
import orjson

from echoops.core import portal
from tests.conftest import TEST_KEY

SECRET = "http-test-signing-key-0123456789abcdefgh"
ROWS = [
    {"id": "h1", "email": "qa@echopilot.ai", "created": "2026-11-20T10:00:00Z", "amount_cents": 1900,
     "currency": "usd", "description": "Pro plan", "invoice_number": "INV-7", "document": "h1.pdf"},
    {"id": "h2", "email": "qa@echopilot.ai", "created": "2026-11-21T10:00:00Z", "amount_cents": 500,
     "currency": "usd", "description": "Seats", "document": "https://pay.stripe.com/receipts/h2"},
]  # fmt: skip


def _seed(log_dir):
    (log_dir / "receipts").mkdir(exist_ok=True)
    (log_dir / "receipts" / "h1.pdf").write_bytes(b"%PDF-1.4 h1")
    f = log_dir.parent / "rows.ndjson"
    f.write_bytes(b"\n".join(orjson.dumps(r) for r in ROWS) + b"\n")
    assert portal.import_purchases(f)["landed"] == 2


def _path(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def _audit(log_dir) -> list[dict]:
    return [orjson.loads(x) for x in (log_dir / "portal_access.ndjson").read_bytes().splitlines()]


def test_receipts_download_and_audit_over_http(live_server, log_dir, monkeypatch):
    monkeypatch.setenv("PORTAL_SIGNING_SECRET", SECRET)
    _seed(log_dir)
    server = live_server(PORTAL_SIGNING_SECRET=SECRET, PORTAL_BASE_URL="http://portal.test")
    admin, public = server.client(), server.client(None)

    assert public.get("/api/portal/receipts", params={"email": "qa@echopilot.ai"}).status_code == 401
    bad = admin.get("/api/portal/receipts", params={"email": "not-an-email"})
    assert bad.status_code == 400 and bad.json()["field"] == "email"
    assert admin.get("/api/portal/receipts").status_code == 400
    for limit in ("0", "1.5", "abc", "501"):
        r = admin.get("/api/portal/receipts", params={"email": "qa@echopilot.ai", "limit": limit})
        assert (r.status_code, r.json()["field"]) == (400, "limit"), limit

    r = admin.get("/api/portal/receipts", params={"email": "QA@echopilot.ai"})
    assert r.status_code == 200 and r.headers["cache-control"] == "private, no-store"
    body = r.json()
    assert body["email"] == "qa@echopilot.ai" and body["unsubscribed"] is False
    assert [p["id"] for p in body["purchases"]] == ["h2", "h1"]
    h2, h1 = body["purchases"]
    assert h1["receipt_url"].startswith("http://portal.test/api/portal/download?token=v1.")
    assert h2["invoice_url"] is None and h1["invoice_url"]
    assert set(h1) >= {"id", "created", "amount", "currency", "description", "receipt_url", "invoice_url", "expires_at"}

    # stored file: content type, disposition, private headers, strict CSP (no X-Dash-Key needed)
    f = public.get(_path(h1["receipt_url"]))
    assert f.status_code == 200 and f.content == b"%PDF-1.4 h1"
    assert f.headers["content-type"] == "application/pdf"
    assert f.headers["content-disposition"] == 'inline; filename="receipt-h1.pdf"'
    assert f.headers["cache-control"] == "private, no-store" and f.headers["referrer-policy"] == "no-referrer"
    assert "sandbox" in f.headers["content-security-policy"]

    # rendered invoice
    inv = public.get(_path(h1["invoice_url"]))
    assert inv.status_code == 200 and inv.headers["content-type"] == "text/html; charset=utf-8"
    assert b"Invoice INV-7" in inv.content and b"USD 19.00" in inv.content
    assert inv.headers["content-security-policy"].startswith("default-src 'none'")

    # URL document: redirect to the hosted receipt
    red = public.get(_path(h2["receipt_url"]), follow_redirects=False)
    assert red.status_code == 302 and red.headers["location"] == "https://pay.stripe.com/receipts/h2"
    assert red.headers["cache-control"] == "private, no-store"

    # tampered, garbage and missing tokens: generic 403 JSON with the same headers
    token = _path(h1["receipt_url"]).split("token=")[1]
    for t in (token[:-3] + "abc", "nonsense", ""):
        x = public.get("/api/portal/download", params={"token": t})
        assert x.status_code == 403
        assert x.json() == {"error": "forbidden", "detail": "this link is invalid or has expired"}
        assert x.headers["cache-control"] == "private, no-store" and x.headers["referrer-policy"] == "no-referrer"

    entries = [e for e in _audit(log_dir) if e["resource"] != "receipts"]  # the lookups: see the next test
    assert [(e["status"], e["resource"]) for e in entries] == [
        (200, "receipt:h1"),
        (200, "invoice:h1"),
        (302, "receipt:h2"),
        (403, None),
        (403, None),
        (403, None),
    ]
    assert all(e["ip"] == "127.0.0.1" and e["event"] == "portal_access" for e in entries)
    assert token not in (log_dir / "portal_access.ndjson").read_text()

    audit = admin.get("/api/portal/audit", params={"email": "qa@echopilot.ai", "limit": "2"}).json()
    assert [e["resource"] for e in audit["entries"]] == ["receipt:h2", "invoice:h1"]
    assert public.get("/api/portal/audit").status_code == 401


def test_an_admin_receipts_lookup_adds_an_audit_line(live_server, log_dir, monkeypatch, cli):
    monkeypatch.setenv("PORTAL_SIGNING_SECRET", SECRET)
    _seed(log_dir)
    server = live_server(PORTAL_SIGNING_SECRET=SECRET)
    admin = server.client()
    r = admin.get("/api/portal/receipts", params={"email": "QA@echopilot.ai"})
    assert r.status_code == 200
    assert admin.get("/api/portal/receipts", params={"email": "not-an-email"}).status_code == 400
    assert cli("portal", "receipts", "qa@echopilot.ai", "--json").exit_code == 0
    lines = (log_dir / "portal_access.ndjson").read_text()
    entries = [{k: v for k, v in e.items() if k != "ts"} for e in _audit(log_dir)]
    assert entries == [
        {
            "event": "portal_access",
            "email": "qa@echopilot.ai",
            "ip": "127.0.0.1",
            "resource": "receipts",
            "status": 200,
            "action": "lookup",
            "route": "GET /api/portal/receipts",
            "count": 2,
        },
        {
            "event": "portal_access",
            "email": None,
            "ip": "127.0.0.1",
            "resource": "receipts",
            "status": 400,
            "action": "lookup",
            "reason": "'not-an-email' is not a valid email address",
            "route": "GET /api/portal/receipts",
        },
        {
            "event": "portal_access",
            "email": "qa@echopilot.ai",
            "ip": "cli",
            "resource": "receipts",
            "status": 200,
            "action": "lookup",
            "route": "echoops portal receipts",
            "count": 2,
        },
    ]
    for url in (p["receipt_url"] for p in r.json()["purchases"]):  # never a token
        assert url.split("token=")[1] not in lines
    assert TEST_KEY not in lines


def test_one_click_unsubscribe_over_http(live_server, log_dir, monkeypatch):
    monkeypatch.setenv("PORTAL_SIGNING_SECRET", SECRET)
    _seed(log_dir)
    server = live_server(PORTAL_SIGNING_SECRET=SECRET)
    admin, public = server.client(), server.client(None)
    body = admin.get("/api/portal/receipts", params={"email": "qa@echopilot.ai"}).json()
    unsub = _path(body["unsubscribe_url"])

    page = public.get(unsub)  # what a link scanner prefetches: changes nothing
    assert page.status_code == 200 and b'value="One-Click"' in page.content
    assert page.headers["cache-control"] == "private, no-store"
    assert admin.get("/api/portal/receipts", params={"email": "qa@echopilot.ai"}).json()["unsubscribed"] is False

    assert public.post(unsub, data={"List-Unsubscribe": "Nope"}).status_code == 400
    r1 = public.post(unsub, data={"List-Unsubscribe": "One-Click"})
    r2 = public.post(unsub, data={"List-Unsubscribe": "One-Click"})
    assert (r1.status_code, r1.json()) == (200, {"email": "qa@echopilot.ai", "unsubscribed": True, "changed": True})
    assert (r2.status_code, r2.json()["changed"]) == (200, False)  # idempotent, no redirect
    multipart = public.post(unsub, files={"List-Unsubscribe": (None, "One-Click")})  # RFC 8058 allows both encodings
    assert (multipart.status_code, multipart.json()["unsubscribed"]) == (200, True)
    html = public.post(unsub, data={"List-Unsubscribe": "One-Click"}, headers={"Accept": "text/html"})
    assert html.status_code == 200 and b"You are unsubscribed" in html.content
    assert admin.get("/api/portal/receipts", params={"email": "qa@echopilot.ai"}).json()["unsubscribed"] is True

    # a download token cannot unsubscribe (purpose-bound)
    other = admin.get("/api/portal/receipts", params={"email": "qa@echopilot.ai"}).json()["purchases"][0]
    dl_token = _path(other["receipt_url"]).split("token=")[1]
    wrong = public.post(f"/api/portal/unsubscribe?token={dl_token}", data={"List-Unsubscribe": "One-Click"})
    assert wrong.status_code == 403


def test_portal_routes_answer_503_without_a_strong_secret(live_server):
    server = live_server(PORTAL_SIGNING_SECRET="too-short")
    r = server.client().get("/api/portal/receipts", params={"email": "qa@echopilot.ai"})
    assert r.status_code == 503 and "PORTAL_SIGNING_SECRET" in r.json()["detail"]
    d = httpx.get(server.url + "/api/portal/download", params={"token": "v1.a.b"})
    assert d.status_code == 503 and d.json()["error"] == "not_configured"
    assert "too-short" not in d.text


def test_an_operator_resubscribes_over_http_and_it_is_audited(live_server, log_dir, cli):
    assert cli("portal", "unsubscribe", "QA@echopilot.ai").exit_code == 0
    server = live_server()
    with server.client() as c:
        r = c.post("/api/portal/resubscribe", json={"email": " QA@echopilot.ai "})
        assert r.status_code == 200 and r.json() == {"email": "qa@echopilot.ai", "unsubscribed": False, "changed": True}
        assert r.headers["cache-control"] == "private, no-store"
        again = c.post("/api/portal/resubscribe", json={"email": "qa@echopilot.ai"})
        assert again.json()["changed"] is False  # idempotent
        for body, field in [({}, "email"), ({"email": "nope"}, "email"), ({"email": "a@b.co", "by": "x"}, "by")]:
            bad = c.post("/api/portal/resubscribe", json=body)
            assert (bad.status_code, bad.json()["error"], bad.json()["field"]) == (400, "invalid", field), body
    assert httpx.post(server.url + "/api/portal/resubscribe", json={"email": "qa@echopilot.ai"}).status_code == 401
    changes = [
        (e["action"], e["email"], e["ip"], e["route"]) for e in _audit(log_dir) if e["resource"] == "subscription"
    ]
    assert changes == [
        ("unsubscribe", "qa@echopilot.ai", "cli", "echoops portal unsubscribe"),
        ("resubscribe", "qa@echopilot.ai", "127.0.0.1", "POST /api/portal/resubscribe"),
        ("resubscribe", "qa@echopilot.ai", "127.0.0.1", "POST /api/portal/resubscribe"),
    ]
