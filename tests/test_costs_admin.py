"""Cost state never blocks admin endpoints: with spend at 500% of every cap, all ten answer normally."""

from __future__ import annotations

import time
from urllib.parse import urlsplit

import orjson
import pytest

from echoops.core import costs

# the store and feature tests run on both backends (SQLite; PostgreSQL: tests/postgres_server.py)
pytestmark = pytest.mark.backends

SECRET = "costs-admin-test-signing-secret-0123456789"


@pytest.mark.slow
def test_spend_at_500_percent_of_every_cap_blocks_no_admin_endpoint(live_server, log_dir, tmp_path, monkeypatch):
    caps = {
        "COST_CAP_DAILY_USD": "2",
        "MODEL_CAPS_JSON": '{"gpt-4o-mini":1,"embeddings":1}',
        "MODEL_FALLBACKS_JSON": '{"gpt-4o":"gpt-4o-mini"}',
        "STRIPE_FEES_CAP_DAILY_USD": "1",
        "PORTAL_SIGNING_SECRET": SECRET,
    }
    for name, value in caps.items():
        monkeypatch.setenv(name, value)
    now = time.time()
    usage = [
        {"ts": now - 5, "model": "gpt-4o-mini", "usd": 5.0},  # 500% of its $1 cap
        {"ts": now - 5, "model": "text-embedding-3-small", "usd": 5.0},  # 500% of embeddings' $1
    ]  # global: $10 = 500% of $2
    (log_dir / "ai_usage.ndjson").write_bytes(b"".join(orjson.dumps(u) + b"\n" for u in usage))
    from echoops.core import portal

    purchase = {
        "id": "pur_1",
        "email": "buyer@example.com",
        "created": now - 60,
        "amount_cents": 10000,
        "currency": "usd",
        "description": "Pro plan",
        "fee_cents": 500,  # $5 of fees = 500% of the $1 fee cap
    }
    src = tmp_path / "purchases.ndjson"
    src.write_bytes(orjson.dumps(purchase) + b"\n")
    portal.import_purchases(src)
    costs.tick(now=now)
    body = costs.status(now=now)
    assert body["global"]["pct"] == 500.0 and body["global"]["state"] == "throttle"
    assert {k: v["pct"] for k, v in body["models"].items() if v["cap_usd"]} == {
        "embeddings": 500.0,
        "gpt-4o-mini": 500.0,
    }
    assert (body["stripe_fees"]["pct"], body["stripe_fees"]["state"]) == (500.0, "over")
    assert costs.guard("gpt-4o", now=now)["action"] == "throttle"  # AI calls are degraded...

    server = live_server()  # ...admin endpoints are not
    answers = {}
    with server.client() as c:
        # the server itself sees every cap at 500% (else a hook that blocked admin would not fire here)
        check = c.get("/api/costs/check", params={"model": "gpt-4o"}).json()
        assert (check["action"], check["retry_after_s"] > 0) == ("throttle", True)
        receipts = c.get("/api/portal/receipts", params={"email": "buyer@example.com"})
        assert receipts.status_code == 200, receipts.text[:300]
        answers["GET /api/portal/receipts"] = receipts
        url = urlsplit(receipts.json()["purchases"][0]["receipt_url"])
        answers["GET /api/portal/download"] = c.get(f"{url.path}?{url.query}")
        answers["GET /api/slo/status"] = c.get("/api/slo/status")
        answers["POST /api/slo/rebaseline"] = c.post("/api/slo/rebaseline", json={"reason": "costs admin test"})
        answers["POST /api/incidents/raise"] = c.post(
            "/api/incidents/raise", json={"severity": "WARNING", "msg": "admin still works", "source": "test"}
        )
        answers["POST /api/incidents/summarize"] = c.post("/api/incidents/summarize")
        answers["GET /api/costs/status"] = c.get("/api/costs/status")
        answers["POST /api/costs/set-cap"] = c.post("/api/costs/set-cap", json={"scope": "daily", "usd_cap": 2})
        answers["GET /api/scale/status"] = c.get("/api/scale/status")
        answers["POST /api/scale/apply"] = c.post("/api/scale/apply", json={"dry_run": True})
    assert len(answers) == 10
    statuses = {name: r.status_code for name, r in answers.items()}
    failed = {n: r.text[:200] for n, r in answers.items() if r.status_code != 200}
    assert statuses == dict.fromkeys(answers, 200), failed
    for name, r in answers.items():
        assert "retry-after" not in {h.lower() for h in r.headers}, name
        if r.headers.get("content-type", "").startswith("application/json"):
            assert "error" not in r.json(), (name, r.text[:300])
    # each answered with its normal document, not a degraded placeholder
    normal = {
        "GET /api/portal/receipts": lambda r: r.json()["purchases"][0]["id"] == "pur_1",
        "GET /api/portal/download": lambda r: "pur_1" in r.text and "USD 100.00" in r.text,
        "GET /api/slo/status": lambda r: "remaining_budget_pct" in r.json(),
        "POST /api/slo/rebaseline": lambda r: r.json()["reason"] == "costs admin test",
        "POST /api/incidents/raise": lambda r: r.json()["deduped"] is False and r.json()["id"],
        "POST /api/incidents/summarize": lambda r: len(r.json()["groups"]) >= 5,
        "GET /api/costs/status": lambda r: r.json()["global"]["pct"] == 500.0,
        "POST /api/costs/set-cap": lambda r: r.json()["cap"]["usd_cap"] == 2.0,
        "GET /api/scale/status": lambda r: r.json()["dry_run"] is True,
        "POST /api/scale/apply": lambda r: r.json()["dry_run"] is True and "desired" in r.json(),
    }
    assert set(normal) == set(answers)
    assert [n for n, ok in normal.items() if not ok(answers[n])] == []
    # the pages did go out: the summary groups the cost incidents raised at 500%
    fingerprints = {g["fingerprint"] for g in answers["POST /api/incidents/summarize"].json()["groups"]}
    day = body["day"]
    assert {f"costs:throttle:{s}:{day}" for s in ("global", "gpt-4o-mini", "embeddings")} <= fingerprints
    assert f"costs:fee_over:stripe_fees:{day}" in fingerprints
