"""Stripe fees for the cost guardrails, against the loopback fake Stripe (paging, 429s, failures).
A fee read failing against the real emulator is in test_stripe_localstripe.py."""

from __future__ import annotations

import orjson
import pytest

from echoops.core import config, costs
from tests.fakes_stripe import FakeStripe, balance_transaction

DAY = 1795737600  # 2026-11-27T00:00:00Z
NOON = DAY + 12 * 3600


@pytest.fixture
def fake(monkeypatch):
    with FakeStripe({"balance_transactions": []}) as fake:
        monkeypatch.setenv("STRIPE_API_BASE", fake.url)
        monkeypatch.setenv("STRIPE_API_KEY", fake.key)
        yield fake


def test_fees_per_day_across_pages_with_429s(fake, log_dir):
    # 250 of today's charges at 30 cents fee, 3 of yesterday's, one EUR fee kept apart, one too old
    fake.add("balance_transactions", *[balance_transaction(f"txn_{i:03d}", 1000, 30, NOON - i) for i in range(250)])
    fake.add("balance_transactions", *[balance_transaction(f"txn_y{i}", 1000, 59, DAY - 100 - i) for i in range(3)])
    fake.add("balance_transactions", balance_transaction("txn_eur", 1000, 41, NOON, currency="eur"))
    fake.add("balance_transactions", balance_transaction("txn_old", 1000, 999, DAY - 2 * 86400))
    fake.rate_limit_every(2)
    report = costs.tick(now=NOON + 60)
    assert report["stripe_fees"] == {
        "spent_usd": 75.0,
        "source": "stripe",
        "today_cents": 7500,
        "other_currencies": {"eur": 41},
    }
    assert {p for p, _, _ in fake.requests} == {"/v1/balance_transactions"}
    assert any("starting_after" in q for _, q, _ in fake.requests)  # paged
    # only the filter Stripe documents, at most 100 a page, the pinned version on every request
    assert all(set(q) <= {"created[gte]", "limit", "starting_after"} for _, q, _ in fake.requests)
    assert all(q["created[gte]"] == [str(DAY - 86400)] and q["limit"] == ["100"] for _, q, _ in fake.requests)
    assert {h["Stripe-Version"] for h in fake.headers} == {"2026-10-28.endive"}
    body = costs.status(now=NOON + 60)
    assert body["stripe_fees"] == {
        "spent_usd": 75.0,
        "source": "stripe",
        "fetched_at": "2026-11-27T12:01:00.000Z",
        "error": None,
        "error_at": None,
        "count": 250,
    }
    # refetching is idempotent: the day's row is replaced, not added to
    costs.tick(now=NOON + 120)
    assert costs.status(now=NOON + 120)["stripe_fees"]["spent_usd"] == 75.0


def test_fee_cap_warns_and_pages_but_never_throttles_ai(fake, log_dir, monkeypatch):
    monkeypatch.setenv("STRIPE_FEES_CAP_DAILY_USD", "5")
    fake.add("balance_transactions", *[balance_transaction(f"txn_{i}", 10000, 320, NOON - i) for i in range(2)])
    costs.tick(now=NOON)  # $6.40 of $5
    fees = costs.status(now=NOON)["stripe_fees"]
    assert (fees["spent_usd"], fees["cap_usd"], fees["pct"], fees["state"]) == (6.4, 5.0, 128.0, "over")
    assert costs.guard("gpt-4o-mini", now=NOON)["action"] == "allow"
    events = [orjson.loads(line) for line in (log_dir / "costs.ndjson").read_bytes().splitlines()]
    over = [e for e in events if e["event"] == "fee_over"]
    assert len(over) == 1 and over[0]["severity"] == "CRITICAL"
    from echoops.core import pager

    fps = [r[0] for r in pager.db(config.settings()).execute("SELECT fingerprint FROM pager_incidents")]
    assert fps == ["costs:fee_over:stripe_fees:2026-11-27"]


def test_stripe_down_does_not_stop_the_tick_but_is_an_error_everywhere(fake, log_dir, monkeypatch):
    monkeypatch.setattr("echoops.core.portal.stripe.client.MAX_ATTEMPTS", 2)
    monkeypatch.setattr("time.sleep", lambda _s: None)
    fake.add("balance_transactions", balance_transaction("txn_a", 1000, 59, NOON - 3600))
    costs.tick(now=NOON - 60)  # a good read first: $0.59
    fake.add("balance_transactions", balance_transaction("txn_b", 1000, 41, NOON - 30))
    fake.fail_next(2, status=500)  # both attempts of the next read
    (log_dir / "ai_usage.ndjson").write_bytes(
        orjson.dumps({"ts": NOON - 5, "model": "gpt-4o-mini", "input_tokens": 1_000_000}) + b"\n"
    )
    report = costs.tick(now=NOON)
    assert report["calls"] == 1  # AI spend still ingested and the caps applied
    detail = (
        "Stripe answered 500 to /v1/balance_transactions: Something went wrong on Stripe's end. "
        "(gave up after 2 attempts)"
    )
    assert report["stripe_fees"] == {"spent_usd": 0.59, "source": "stripe", "error": detail}
    assert fake.key not in orjson.dumps(report).decode()
    # the status keeps the last good figures and says where and when they came from, and why not newer
    assert costs.status(now=NOON)["stripe_fees"] == {
        "spent_usd": 0.59,
        "source": "stripe",
        "fetched_at": "2026-11-27T11:59:00.000Z",
        "error": detail,
        "error_at": "2026-11-27T12:00:00.000Z",
        "count": 1,
    }
    # a WARNING incident, once per UTC day however many ticks fail
    fake.fail_next(2, status=500)
    costs.tick(now=NOON + 3600)
    from echoops.core import pager

    rows = pager.db(config.settings()).execute("SELECT fingerprint, severity FROM pager_incidents").fetchall()
    assert [tuple(r) for r in rows] == [("costs:fee_error:stripe_fees:2026-11-27", "WARNING")]
    events = [orjson.loads(line) for line in (log_dir / "costs.ndjson").read_bytes().splitlines()]
    failed = [e for e in events if e["event"] == "fee_read_failed"]
    assert len(failed) == 1 and failed[0]["msg"] == (
        f"Stripe fees could not be read: {detail} (figures from 2026-11-27T11:59:00.000Z; 2026-11-27)"
    )
    # the next good read clears the error
    report = costs.tick(now=NOON + 7200)
    assert "error" not in report["stripe_fees"] and report["stripe_fees"]["today_cents"] == 100
    fees = costs.status(now=NOON + 7200)["stripe_fees"]
    assert (fees["spent_usd"], fees["error"], fees["error_at"]) == (1.0, None, None)
    assert fees["fetched_at"] == "2026-11-27T14:00:00.000Z"


def test_costs_tick_exits_1_naming_the_failed_fee_read(fake, cli, monkeypatch):
    monkeypatch.setattr("echoops.core.portal.stripe.client.MAX_ATTEMPTS", 1)
    fake.refuse("/v1/balance_transactions", 401, "Invalid API Key provided: sk_test_****mnop")
    result = cli("costs", "tick", "--now", "2026-11-27T12:00:00Z")
    assert result.exit_code == 1
    assert result.stderr == (
        "Error: Stripe fees could not be read: Stripe answered 401 to /v1/balance_transactions: "
        "Invalid API Key provided: sk_test_****mnop\n"
    )
    as_json = cli("costs", "tick", "--json", "--now", "2026-11-27T12:05:00Z")
    assert as_json.exit_code == 1 and orjson.loads(as_json.stdout)["stripe_fees"]["error"].startswith(
        "Stripe answered 401"
    )
    shown = cli("costs", "status", "--now", "2026-11-27T12:06:00Z")
    assert shown.exit_code == 0
    assert "Stripe fees today: $0.00 (source: none)" in shown.stdout
    assert "Stripe fee read failed at 2026-11-27 12:05 UTC: Stripe answered 401" in shown.stdout
    fake.allow("/v1/balance_transactions")
    ok = cli("costs", "tick", "--now", "2026-11-27T12:10:00Z")
    assert ok.exit_code == 0, ok.output


def test_without_a_stripe_key_fees_come_from_the_portal_ledger(log_dir, tmp_path):
    from echoops.core import portal

    rows = [
        {
            "id": "p1",
            "email": "a@example.com",
            "created": NOON - 10,
            "amount_cents": 1900,
            "currency": "usd",
            "description": "Pro",
            "fee_cents": 85,
        },
        {
            "id": "p2",
            "email": "b@example.com",
            "created": NOON - 20,
            "amount_cents": 1900,
            "currency": "usd",
            "description": "Pro",
            "fee_cents": 85,
        },
        {
            "id": "p3",
            "email": "c@example.com",
            "created": NOON - 30,
            "amount_cents": 500,
            "currency": "eur",
            "description": "Add-on",
            "fee_cents": 30,
        },
        {
            "id": "p4",
            "email": "d@example.com",
            "created": DAY - 3 * 86400,
            "amount_cents": 500,
            "currency": "usd",
            "description": "Old",
            "fee_cents": 999,
        },
    ]
    src = tmp_path / "purchases.ndjson"
    src.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    portal.import_purchases(src)
    report = costs.tick(now=NOON)
    assert report["stripe_fees"] == {
        "spent_usd": 1.7,
        "source": "ledger",
        "today_cents": 170,
        "other_currencies": {"eur": 30},
    }
    assert costs.status(now=NOON)["stripe_fees"] == {
        "spent_usd": 1.7,
        "source": "ledger",
        "fetched_at": "2026-11-27T12:00:00.000Z",
        "error": None,
        "error_at": None,
    }
