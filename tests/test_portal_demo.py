"""`echoops demo seed` gives the portal something real: qa@echopilot.ai purchases, invoices, a stored PDF."""

from __future__ import annotations

from echoops.core import demo, portal

SECRET = "demo-test-signing-key-0123456789abcdefghij"
NOW = 1_795_000_000.0


def test_demo_seed_fills_the_ledger_for_qa(monkeypatch, settings, log_dir):
    monkeypatch.setenv("PORTAL_SIGNING_SECRET", SECRET)
    n = demo.seed_purchases(settings, NOW)
    assert n == 16
    assert demo.seed_purchases(settings, NOW) == 16  # upserts: seeding twice keeps 16 purchases
    body = portal.receipts("qa@echopilot.ai", now=NOW)
    assert [p["id"] for p in body["purchases"]] == ["demo_qa_004", "demo_qa_003", "demo_qa_002", "demo_qa_001"]
    assert [p["invoice_number"] for p in body["purchases"]] == [None, None, "EP-2026-0077", "EP-2026-0041"]
    stored = body["purchases"][2]["invoice_url"].split("token=")[1]
    doc = portal.download(stored, now=NOW)
    assert doc.kind == "file" and doc.content_type == "application/pdf" and doc.body.startswith(b"%PDF-1.4")
    assert b"EP-2026-0077" in doc.body and doc.body.rstrip().endswith(b"%%EOF")
    assert (log_dir / "receipts" / "demo" / "demo_qa_002.pdf").is_file()
    rendered = portal.download(body["purchases"][3]["invoice_url"].split("token=")[1], now=NOW)
    assert rendered.kind == "html" and b"Invoice EP-2026-0041" in rendered.body
    assert portal.fees_by_day(since=NOW - 86400 * 3)  # demo fees feed the costs card
