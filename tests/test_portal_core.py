"""Portal core: the brief's acceptance (24h links with `now` injected, every access audited, 403s),
purpose confusion, path traversal, rendering, unsubscribe."""

from __future__ import annotations

import os
import re
from urllib.parse import parse_qs, urlsplit

import orjson
import pytest

from echoops.core import portal, signing
from echoops.core.errors import NotConfigured, NotFound, ValidationError
from echoops.core.portal import ledger

# the store and feature tests run on both backends (SQLite; PostgreSQL: tests/postgres_server.py)
pytestmark = pytest.mark.backends

SECRET = "portal-test-signing-key-0123456789abcdef"
T0 = 1_795_000_000.0  # 2026-11-18T11:06:40Z


@pytest.fixture
def s(monkeypatch, log_dir):
    monkeypatch.setenv("PORTAL_SIGNING_SECRET", SECRET)
    monkeypatch.setenv("PORTAL_BASE_URL", "https://billing.example.com")
    monkeypatch.setenv("PORTAL_SELLER_NAME", "Echo <Pilot> & Co")
    from echoops.core import config

    s = config.settings()
    (log_dir / "receipts" / "qa").mkdir(parents=True)
    (log_dir / "receipts" / "qa" / "p2.pdf").write_bytes(b"%PDF-1.4 receipt p2")
    rows = [
        dict(id="p1", email="qa@echopilot.ai", created=T0 - 86400, amount_cents=1900, currency="usd",
             description="Pro <script>alert(1)</script> plan", invoice_number="INV-0001", fee_cents=85),
        dict(id="p2", email="qa@echopilot.ai", created=T0 - 3600, amount_cents=500, currency="jpy",
             description="Add-on", document="qa/p2.pdf"),
        dict(id="p3", email="qa@echopilot.ai", created=T0 - 60, amount_cents=700, currency="usd",
             description="Stripe", document="https://pay.stripe.com/receipts/p3",
             invoice_document="https://pay.stripe.com/invoice/p3/pdf"),
        dict(id="o1", email="other@example.com", created=T0, amount_cents=1, currency="usd", description="x"),
    ]  # fmt: skip
    f = log_dir.parent / "seed.ndjson"
    f.write_bytes(b"\n".join(orjson.dumps(r) for r in rows) + b"\n")
    assert portal.import_purchases(f, s=s)["landed"] == 4
    return s


def _token(url: str) -> str:
    return parse_qs(urlsplit(url).query)["token"][0]


def _audit(s, *, admin: bool = False) -> list[dict]:
    """Audit lines of signed-link accesses (and, with `admin`, of admin lookups and links too)."""
    path = s.log_path("portal_access.ndjson")
    lines = [orjson.loads(x) for x in path.read_bytes().splitlines()] if path.exists() else []
    return [e for e in lines if admin or e["action"] not in ("lookup", "link")]


@pytest.mark.parametrize(
    ("minor", "currency", "shown"),
    [
        (1234, "kwd", "KWD 1.234"),
        (1234, "KWD", "KWD 1.234"),
        (5, "bhd", "BHD 0.005"),
        (1_234_500, "jod", "JOD 1,234.500"),
        (1000, "omr", "OMR 1.000"),
        (1, "tnd", "TND 0.001"),
        (250_000, "iqd", "IQD 250.000"),
        (99, "lyd", "LYD 0.099"),
        (4900, "jpy", "JPY 4,900"),
        (12000, "krw", "KRW 12,000"),
        (1999, "usd", "USD 19.99"),
        (5, "eur", "EUR 0.05"),
        (0, "usd", "USD 0.00"),
    ],
)
def test_amounts_show_the_currencys_own_decimals(minor, currency, shown):
    from echoops.core.portal import documents

    assert documents.format_amount(minor, currency) == shown


def test_a_kwd_purchase_shows_three_decimals_in_the_list_and_on_its_receipt(s, log_dir):
    record = dict(id="k1", email="qa@echopilot.ai", created=T0 - 30, amount_cents=1234, currency="KWD",
                  description="Gulf plan")  # fmt: skip
    f = log_dir.parent / "kwd.ndjson"
    f.write_bytes(orjson.dumps(record) + b"\n")
    assert portal.import_purchases(f, s=s)["landed"] == 1
    listed = portal.receipts("qa@echopilot.ai", s=s, now=T0)["purchases"][0]
    assert (listed["id"], listed["amount"], listed["currency"], listed["amount_display"]) == (
        "k1",
        1234,
        "kwd",
        "KWD 1.234",
    )
    doc = portal.download(_token(listed["receipt_url"]), s=s, now=T0)
    assert doc.kind == "html" and b"KWD 1.234" in doc.body and b"KWD 1.23<" not in doc.body


def test_receipts_lists_newest_first_with_absolute_signed_links(s):
    body = portal.receipts(" QA@EchoPilot.ai ", s=s, now=T0)
    assert body["email"] == "qa@echopilot.ai" and body["unsubscribed"] is False
    assert [p["id"] for p in body["purchases"]] == ["p3", "p2", "p1"]
    p1 = body["purchases"][2]
    assert {k: p1[k] for k in ("id", "created", "amount", "currency", "description", "invoice_number")} == {
        "id": "p1",
        "created": "2026-11-17T11:06:40.000Z",
        "amount": 1900,
        "currency": "usd",
        "description": "Pro <script>alert(1)</script> plan",
        "invoice_number": "INV-0001",
    }
    assert p1["amount_display"] == "USD 19.00" and body["purchases"][1]["amount_display"] == "JPY 500"
    assert p1["receipt_url"].startswith("https://billing.example.com/api/portal/download?token=v1.")
    assert p1["invoice_url"].startswith("https://billing.example.com/api/portal/download?token=v1.")
    assert body["purchases"][1]["invoice_url"] is None  # no invoice number, no invoice document
    assert p1["expires_at"] == "2026-11-19T11:06:40.000Z"
    assert body["unsubscribe_url"].startswith("https://billing.example.com/api/portal/unsubscribe?token=v1.")
    claims = signing.verify(_token(p1["invoice_url"]), portal.PURPOSE_DOWNLOAD, s=s, now=T0)
    assert (claims.resource, claims.email) == ("invoice:p1", "qa@echopilot.ai")


@pytest.mark.parametrize("email", ["", "qa", "qa@", "@echopilot.ai", "qa@echopilot", "a b@c.io", "qa@@x.io"])
def test_malformed_email_is_a_validation_error(s, email):
    with pytest.raises(ValidationError) as info:
        portal.receipts(email, s=s, now=T0)
    assert info.value.field == "email" and info.value.status == 400


def test_unknown_email_has_no_purchases(s):
    assert portal.receipts("nobody@example.com", s=s, now=T0)["purchases"] == []


def test_links_valid_at_23h59m_and_403_at_24h01m_every_access_audited(s):
    url = portal.receipts("qa@echopilot.ai", s=s, now=T0)["purchases"][2]["receipt_url"]
    token = _token(url)
    doc = portal.download(token, ip="203.0.113.9", s=s, now=T0 + 23 * 3600 + 59 * 60)
    assert doc.kind == "html" and doc.status == 200
    with pytest.raises(signing.BadToken) as info:
        portal.download(token, ip="203.0.113.9", s=s, now=T0 + 24 * 3600 + 60)
    assert info.value.status == 403 and info.value.detail == "this link is invalid or has expired"
    entries = _audit(s)
    assert [(e["status"], e["email"], e["resource"], e["ip"]) for e in entries] == [
        (200, "qa@echopilot.ai", "receipt:p1", "203.0.113.9"),
        (403, "qa@echopilot.ai", "receipt:p1", "203.0.113.9"),
    ]
    assert entries[0]["ts"] == "2026-11-19T11:05:40.000Z" and "reason" not in entries[0]
    assert entries[1]["reason"] == "expired at 2026-11-19T11:06:40.000Z"
    raw = s.log_path("portal_access.ndjson").read_text()
    assert token not in raw and token.split(".")[2] not in raw  # never the token


def test_tampered_and_garbage_tokens_are_403_and_audited_without_claims(s):
    token = _token(portal.link("p1", s=s, now=T0)["url"])
    for bad in (token[:-1] + ("A" if token[-1] != "A" else "B"), "garbage", ""):
        with pytest.raises(signing.BadToken):
            portal.download(bad, ip="198.51.100.1", s=s, now=T0)
    entries = _audit(s)
    assert [e["status"] for e in entries] == [403, 403, 403]
    assert [e["email"] for e in entries] == [None, None, None]  # unverified claims are not trusted
    assert [e["reason"] for e in entries] == [
        "tampered: signature does not match",
        "malformed: not a v1 token",
        "malformed: empty or too long",
    ]


def test_purpose_confusion_both_ways(s):
    body = portal.receipts("qa@echopilot.ai", s=s, now=T0)
    download_token = _token(body["purchases"][0]["receipt_url"])
    unsubscribe_token = _token(body["unsubscribe_url"])
    with pytest.raises(signing.BadToken) as info:
        portal.unsubscribe_one_click(download_token, "One-Click", s=s, now=T0)
    assert info.value.reason.startswith("wrong purpose")
    assert ledger.is_unsubscribed("qa@echopilot.ai", s=s) is False
    with pytest.raises(signing.BadToken) as info:
        portal.download(unsubscribe_token, s=s, now=T0)
    assert info.value.reason.startswith("wrong purpose")
    # a token signed for another purpose with a download-looking resource is still refused
    other, _ = signing.sign("slo.something", "receipt:p1", "qa@echopilot.ai", s=s, now=T0)
    with pytest.raises(signing.BadToken):
        portal.download(other, s=s, now=T0)


def test_stored_file_is_served_with_type_and_disposition(s):
    doc = portal.download(_token(portal.link("p2", s=s, now=T0)["url"]), s=s, now=T0)
    assert (doc.kind, doc.body, doc.content_type, doc.filename, doc.inline) == (
        "file",
        b"%PDF-1.4 receipt p2",
        "application/pdf",
        "receipt-p2.pdf",
        True,
    )
    assert "sandbox" in doc.csp


def test_url_documents_redirect_to_the_hosted_page(s):
    for kind, where in (
        ("receipt", "https://pay.stripe.com/receipts/p3"),
        ("invoice", "https://pay.stripe.com/invoice/p3/pdf"),
    ):
        doc = portal.download(_token(portal.link("p3", kind, s=s, now=T0)["url"]), s=s, now=T0)
        assert (doc.kind, doc.status, doc.location) == ("redirect", 302, where)
    assert [e["action"] for e in _audit(s)] == ["download:redirect", "download:redirect"]


def _force_doc(s, pid: str, doc: str) -> None:
    conn = ledger.conn_for(s)
    conn.execute("UPDATE portal_purchases SET receipt_doc=? WHERE id=?", (doc, pid))


@pytest.mark.parametrize("doc", ["../echoops.db", "../../../../etc/passwd", "/etc/passwd", "qa/../../echoops.db"])
def test_documents_outside_receipts_are_never_served(s, doc):
    # the importer refuses such paths; even a row written behind its back cannot escape
    _force_doc(s, "p2", doc)
    with pytest.raises(signing.BadToken):
        portal.download(_token(portal.link("p2", s=s, now=T0)["url"]), s=s, now=T0)
    assert _audit(s)[-1]["reason"] == "document resolves outside logs/receipts/"


def test_symlink_out_of_receipts_is_refused(s, log_dir):
    secret = log_dir / "secret.txt"
    secret.write_text("do not serve")
    os.symlink(secret, log_dir / "receipts" / "qa" / "evil.pdf")
    _force_doc(s, "p2", "qa/evil.pdf")
    with pytest.raises(signing.BadToken):
        portal.download(_token(portal.link("p2", s=s, now=T0)["url"]), s=s, now=T0)


def test_token_resource_is_an_id_never_a_path(s):
    # a validly signed token naming a path is just an unknown purchase id
    token, _ = signing.sign(portal.PURPOSE_DOWNLOAD, "receipt:../echoops.db", "qa@echopilot.ai", s=s, now=T0)
    with pytest.raises(NotFound):
        portal.download(token, s=s, now=T0)
    assert _audit(s)[-1]["status"] == 404


def test_token_for_another_email_is_refused(s):
    token, _ = signing.sign(portal.PURPOSE_DOWNLOAD, "receipt:o1", "qa@echopilot.ai", s=s, now=T0)
    with pytest.raises(signing.BadToken):
        portal.download(token, s=s, now=T0)
    assert _audit(s)[-1]["reason"] == "purchase belongs to another email"


def test_missing_stored_file_is_404(s, log_dir):
    (log_dir / "receipts" / "qa" / "p2.pdf").unlink()
    with pytest.raises(NotFound):
        portal.download(_token(portal.link("p2", s=s, now=T0)["url"]), s=s, now=T0)


def test_rendered_receipt_is_escaped_self_contained_and_carries_unsubscribe(s):
    doc = portal.download(_token(portal.link("p1", "invoice", s=s, now=T0)["url"]), s=s, now=T0)
    html = doc.body.decode()
    assert "<script>" not in html and "Pro &lt;script&gt;alert(1)&lt;/script&gt; plan" in html
    assert "Echo &lt;Pilot&gt; &amp; Co" in html
    for fact in ("Invoice INV-0001", "qa@echopilot.ai", "2026-11-17", "USD 19.00", "Reference"):
        assert fact in html
    assert "https://billing.example.com/api/portal/unsubscribe?token=v1." in html
    # the footer link really unsubscribes this buyer (right purpose, right email, lives 30 days)
    footer = re.search(r'/api/portal/unsubscribe\?token=([A-Za-z0-9_.-]+)"', html).group(1)
    claims = signing.verify(footer, portal.PURPOSE_UNSUBSCRIBE, s=s, now=T0 + 29 * 86400)
    assert (claims.email, claims.resource) == ("qa@echopilot.ai", "unsubscribe")
    assert "http" not in html.replace("https://billing.example.com/api/portal/unsubscribe", "")  # no external asset
    assert doc.csp.startswith("default-src 'none'; style-src 'sha256-")


def test_invoice_link_for_a_purchase_without_invoice(s):
    with pytest.raises(NotFound, match="has no invoice"):
        portal.link("p2", "invoice", s=s, now=T0)
    with pytest.raises(ValidationError):
        portal.link("p2", "refund", s=s, now=T0)
    with pytest.raises(NotFound):
        portal.link("nope", s=s, now=T0)


def test_unsubscribe_get_changes_nothing_post_is_idempotent(s):
    token = _token(portal.receipts("qa@echopilot.ai", s=s, now=T0)["unsubscribe_url"])
    page = portal.unsubscribe_view(token, s=s, now=T0)
    assert b'name="List-Unsubscribe" value="One-Click"' in page.body and b"method=post" in page.body
    assert ledger.is_unsubscribed("qa@echopilot.ai", s=s) is False
    with pytest.raises(ValidationError):
        portal.unsubscribe_one_click(token, None, s=s, now=T0)
    assert ledger.is_unsubscribed("qa@echopilot.ai", s=s) is False
    first = portal.unsubscribe_one_click(token, "One-Click", s=s, now=T0)
    again = portal.unsubscribe_one_click(token, "One-Click", s=s, now=T0)
    assert first == {"email": "qa@echopilot.ai", "unsubscribed": True, "changed": True}
    assert again == {"email": "qa@echopilot.ai", "unsubscribed": True, "changed": False}
    assert portal.receipts("qa@echopilot.ai", s=s, now=T0)["unsubscribed"] is True
    assert b"You are unsubscribed" in portal.unsubscribe_view(token, s=s, now=T0).body
    # unsubscribe links outlive download links (they travel in emails)
    portal.unsubscribe_view(token, s=s, now=T0 + 29 * 86400)
    assert [e["status"] for e in _audit(s)] == [200, 400, 200, 200, 200, 200]


def test_operator_unsubscribe_and_resubscribe(s):
    assert portal.set_subscription("QA@echopilot.ai", True, s=s, now=T0)["changed"] is True
    assert portal.set_subscription("qa@echopilot.ai", True, s=s, now=T0)["changed"] is False
    assert portal.set_subscription("qa@echopilot.ai", False, s=s, now=T0) == {
        "email": "qa@echopilot.ai",
        "unsubscribed": False,
        "changed": True,
    }


def test_not_configured_without_a_strong_secret(s, monkeypatch):
    from echoops.core import config

    monkeypatch.setenv("PORTAL_SIGNING_SECRET", "short")
    weak = config.settings()
    with pytest.raises(NotConfigured, match="PORTAL_SIGNING_SECRET"):
        portal.receipts("qa@echopilot.ai", s=weak, now=T0)
    with pytest.raises(NotConfigured):
        portal.download("v1.a.b", s=weak, now=T0)


def test_audit_listing_newest_first_and_by_email(s):
    for pid in ("p1", "o1", "p2"):
        portal.download(_token(portal.link(pid, s=s, now=T0)["url"]), ip="10.0.0.1", s=s, now=T0)
    assert [(e["action"].split(":")[0], e["resource"]) for e in portal.audit(s=s)["entries"]] == [
        ("download", "receipt:p2"),
        ("link", "receipt:p2"),
        ("download", "receipt:o1"),
        ("link", "receipt:o1"),
        ("download", "receipt:p1"),
        ("link", "receipt:p1"),
    ]
    mine = portal.audit(email="QA@echopilot.ai", limit=1, s=s)
    assert mine["entries"][0]["action"].startswith("download")
    assert mine["email"] == "qa@echopilot.ai" and [e["resource"] for e in mine["entries"]] == ["receipt:p2"]


def test_verify_explains_links_for_support(s):
    url = portal.link("p1", s=s, now=T0)["url"]
    assert portal.verify(url, s=s, now=T0)["valid"] is True
    late = portal.verify(url, s=s, now=T0 + 90000)
    assert late["valid"] is False and late["reason"] == "expired at 2026-11-19T11:06:40.000Z"
    assert portal.verify(url + "x", s=s, now=T0)["reason"] == "tampered: signature does not match"


def test_any_single_character_change_of_a_download_link_is_403(s):
    from hypothesis import HealthCheck, given
    from hypothesis import settings as hsettings
    from hypothesis import strategies as st

    token = _token(portal.link("p2", s=s, now=T0)["url"])
    assert portal.download(token, s=s, now=T0).status == 200

    @hsettings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(pos=st.integers(0, len(token) - 1), char=st.sampled_from("AZaz09-_.=%+/ ~é"))
    def changed(pos, char):
        if token[pos] == char:
            return
        with pytest.raises(signing.BadToken) as info:
            portal.download(token[:pos] + char + token[pos + 1 :], s=s, now=T0)
        assert info.value.status == 403

    changed()
    assert all(e["status"] == 403 for e in _audit(s)[1:])
