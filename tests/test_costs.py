"""Cost guardrails core: exact ingest, caps, decisions, alerts once per day, rollover, guard cache."""

from __future__ import annotations

from decimal import Decimal

import orjson
import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from echoops.core import clock, config, costs, files, store
from echoops.core.costs import guardrail, prices
from echoops.core.errors import ValidationError

# the store and feature tests run on both backends (SQLite; PostgreSQL: tests/postgres_server.py)
pytestmark = pytest.mark.backends

DAY = 1795737600  # 2026-11-27T00:00:00Z
NOON = DAY + 12 * 3600


def write_usage(log_dir, *lines: dict | str) -> None:
    with open(log_dir / "ai_usage.ndjson", "ab") as fh:
        for line in lines:
            fh.write((line if isinstance(line, str) else orjson.dumps(line).decode()).encode() + b"\n")


def mini(usd_in_tokens: int, ts: float = NOON - 60, model: str = "gpt-4o-mini", out: int = 0) -> dict:
    return {"ts": ts, "model": model, "input_tokens": usd_in_tokens, "output_tokens": out}


def incidents(s, scope: str | None = None) -> list[tuple[str, str]]:
    """(severity, fingerprint) of the incidents raised, optionally only those of one scope."""
    from echoops.core import pager

    rows = pager.db(s).execute("SELECT severity, fingerprint FROM pager_incidents ORDER BY first_seen, id")
    return [(r[0], r[1]) for r in rows if scope is None or r[1].split(":")[2] == scope]


def events(log_dir, name: str) -> list[dict]:
    path = log_dir / "costs.ndjson"
    if not path.exists():
        return []
    return [e for e in map(orjson.loads, path.read_bytes().splitlines()) if e["event"] == name]


# --- prices and money ----------------------------------------------------------------------


def test_builtin_prices_in_micro_dollars_per_mtok():
    assert prices.BUILTIN["gpt-4o-mini"] == (150_000, 600_000)
    assert prices.BUILTIN["text-embedding-3-small"] == (20_000, 0)
    assert prices.BUILTIN["embeddings"] == prices.BUILTIN["text-embedding-3-small"]
    assert prices.BUILTIN["gpt-4o"] == (2_500_000, 10_000_000)
    # the default for unknown models is the dearest rate in the table, never zero
    assert prices.UNPRICED_DEFAULT == (15_000_000, 60_000_000)


def test_price_overrides_merge_and_extend():
    table = prices.price_table({"gpt-4o-mini": {"input": 0.1}, "my-model": {"input": 1, "output": 2}})
    assert table["gpt-4o-mini"] == (100_000, 600_000)
    assert table["my-model"] == (1_000_000, 2_000_000)


def test_dated_snapshot_names_resolve_to_the_base_model():
    assert prices.canonical("gpt-4o-mini-2024-07-18", prices.BUILTIN) == "gpt-4o-mini"
    assert prices.canonical("gpt-9-2030-01-01", prices.BUILTIN) == "gpt-9-2030-01-01"
    assert prices.cap_scope("text-embedding-3-large", {"embeddings": 2}) == "embeddings"
    assert prices.cap_scope("text-embedding-3-large", {"embeddings": 2, "text-embedding-3-large": 1}) == (
        "text-embedding-3-large"
    )


def test_ingest_prices_tokens_usd_lines_and_counts_bad_lines(log_dir, settings):
    write_usage(
        log_dir,
        {"ts": "2026-11-27T10:00:00Z", "model": "gpt-4o-mini", "input_tokens": 1_000_000, "output_tokens": 1_000_000},
        {"ts": "2026-11-27T10:00:00+00:00", "model": "gpt-4o", "usd": 0.0012},
        {"ts": "2026-11-27T01:00:00+05:00", "model": "gpt-4o", "usd": 1},  # 2026-11-26 in UTC
        {"ts": DAY + 5, "model": "gpt-4o-mini-2024-07-18", "input_tokens": 10},
        "not json",
        "[1, 2]",
        {"ts": "yesterday", "model": "gpt-4o", "usd": 1},
        {"ts": NOON, "model": "", "usd": 1},
        {"ts": NOON, "model": "gpt-4o", "usd": -1},
        {"ts": NOON, "model": "gpt-4o", "usd": True},
        {"ts": NOON, "model": "gpt-4o", "input_tokens": -5},
        {"ts": NOON, "model": "gpt-4o"},
    )
    report = costs.tick(s=settings, now=NOON)
    assert report["lines"] == 12
    assert report["calls"] == 4
    assert report["bad"] == {
        "not_json": 1,
        "not_object": 1,
        "bad_ts": 1,
        "bad_model": 1,
        "bad_usd": 2,
        "bad_tokens": 1,
        "no_cost": 1,
    }
    rows = {
        (r["day"], r["model"]): r["cost_p"]
        for r in store.db(settings, costs.SCHEMA).execute("SELECT day, model, cost_p FROM costs_spend")
    }
    assert rows == {
        ("2026-11-27", "gpt-4o-mini"): 750_000_000_000 + 10 * 150_000,
        ("2026-11-27", "gpt-4o"): 1_200_000_000,
        ("2026-11-26", "gpt-4o"): 10**12,
    }
    body = costs.status(s=settings, now=NOON)
    assert body["global"]["spent_usd"] == 0.751202
    assert body["unpriced"] == []


def test_unknown_model_priced_conservatively_and_reported_with_a_warn(log_dir, settings):
    write_usage(log_dir, mini(1000, model="mystery-llm"))
    costs.tick(s=settings, now=NOON)
    body = costs.status(s=settings, now=NOON)
    assert body["unpriced"] == ["mystery-llm"]
    assert body["models"]["mystery-llm"]["spent_usd"] == 0.015  # 1000 tokens at $15/Mtok
    warn = events(log_dir, "cost_unpriced")
    assert [(e["scope"], e["level"]) for e in warn] == [("mystery-llm", "WARN")]
    costs.tick(s=settings, now=NOON + 60)
    assert len(events(log_dir, "cost_unpriced")) == 1  # once per model per day


@pytest.mark.slow
def test_a_million_mini_calls_sum_exactly(log_dir, settings):
    # 1,000,000 calls of 812 in / 95 out tokens: 812e6 * $0.15/M + 95e6 * $0.60/M = $178.80 exactly.
    line = orjson.dumps(
        {"ts": "2026-11-27T11:00:00.000Z", "model": "gpt-4o-mini", "input_tokens": 812, "output_tokens": 95}
    )
    (log_dir / "ai_usage.ndjson").write_bytes((line + b"\n") * 1_000_000)
    report = costs.tick(s=settings, now=NOON)
    assert report["calls"] == 1_000_000
    row = store.db(settings, costs.SCHEMA).execute("SELECT cost_p FROM costs_spend").fetchone()
    assert row[0] == 178_800_000 * 10**6  # pico-dollars
    assert costs.status(s=settings, now=NOON)["models"]["gpt-4o-mini"]["spent_usd"] == 178.8


@hsettings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 10**6)), min_size=1, max_size=40))
def test_token_sums_match_decimal_arithmetic(tmp_path_factory, calls):
    log_dir = tmp_path_factory.mktemp("logs")
    s = config.load_settings({"ECHOOPS_LOG_DIR": str(log_dir)})
    write_usage(log_dir, *[mini(i, out=o) for i, o in calls])
    costs.tick(s=s, now=NOON)
    got = store.db(s, costs.SCHEMA).execute("SELECT cost_p FROM costs_spend").fetchone()[0]
    want = sum(Decimal(i) * Decimal("0.15") + Decimal(o) * Decimal("0.60") for i, o in calls) / Decimal(10**6)
    assert Decimal(got) / Decimal(10**12) == want
    store.close_all()


def test_usd_lines_sum_exactly():
    # ten thousand $0.1 lines are $1000 exactly in pico-dollars (floats would give 1000.0000000001588)
    assert sum(prices.usd_to_pico(0.1) for _ in range(10_000)) == 1000 * 10**12
    assert prices.usd_to_pico(1234.5678) == 1_234_567_800_000_000


def test_ingest_is_incremental(log_dir, settings):
    write_usage(log_dir, mini(1_000_000))
    costs.tick(s=settings, now=NOON)
    write_usage(log_dir, mini(1_000_000))
    assert costs.tick(s=settings, now=NOON + 60)["lines"] == 1
    assert costs.tick(s=settings, now=NOON + 120)["lines"] == 0
    assert costs.status(s=settings, now=NOON)["models"]["gpt-4o-mini"]["spent_usd"] == 0.3


def test_tick_reports_a_truncated_or_rotated_usage_log(log_dir, settings):
    write_usage(log_dir, mini(1_000_000), mini(1_000_000))
    assert costs.tick(s=settings, now=NOON)["log_events"] == []
    (log_dir / "ai_usage.ndjson").write_bytes(b"")  # someone emptied it: spend read so far stays
    write_usage(log_dir, mini(1_000_000))
    report = costs.tick(s=settings, now=NOON + 60)
    assert (report["lines"], report["log_events"]) == (1, ["truncated"])
    assert costs.status(s=settings, now=NOON + 60)["models"]["gpt-4o-mini"]["spent_usd"] == 0.45
    (event,) = [e for e in events(log_dir, "cost_tick") if e["log_events"]]
    assert event["log_events"] == ["truncated"]


# --- caps and decisions --------------------------------------------------------------------


def test_a_page_that_fails_is_tried_again_on_the_next_tick(log_dir, settings, monkeypatch):
    import sqlite3

    from echoops.core import pager

    real = pager.raise_incident

    def locked(*args, **kwargs):
        raise sqlite3.OperationalError("database is locked")

    write_usage(log_dir, mini(100_000_000))  # $15: the gpt-4o-mini cap
    monkeypatch.setattr(pager, "raise_incident", locked)
    costs.tick(s=settings, now=NOON)
    assert incidents(settings) == []
    failed = events(log_dir, "cost_alert_failed")
    assert {(e["kind"], e["scope"], e["error"]) for e in failed} >= {("throttle", "gpt-4o-mini", "database is locked")}
    assert events(log_dir, "cost_throttle") == []
    monkeypatch.setattr(pager, "raise_incident", real)
    costs.tick(s=settings, now=NOON + 60)
    assert incidents(settings, "gpt-4o-mini") == [("CRITICAL", "costs:throttle:gpt-4o-mini:2026-11-27")]
    assert len(events(log_dir, "cost_throttle")) == 1


def test_warn_at_90_percent_once_per_day(log_dir, settings):
    write_usage(log_dir, mini(90_000_000))  # $13.50 of the $15 gpt-4o-mini cap = 90%
    costs.tick(s=settings, now=NOON)
    entry = costs.status(s=settings, now=NOON)["models"]["gpt-4o-mini"]
    assert (entry["pct"], entry["state"], entry["action"]) == (90.0, "warn", "allow")
    assert costs.guard("gpt-4o-mini", s=settings, now=NOON) == {
        "action": "allow",
        "model": "gpt-4o-mini",
        "reason": "gpt-4o-mini near its daily cap ($13.50 of $15.00)",
        "retry_after_s": 0,
    }
    assert incidents(settings, "gpt-4o-mini") == [("WARNING", "costs:warn:gpt-4o-mini:2026-11-27")]
    # $13.50 by noon extrapolates to $27 > the $25 global cap: a forecast warning, not a WARN
    assert incidents(settings, "global") == [("WARNING", "costs:forecast:global:2026-11-27")]
    assert [e["scope"] for e in events(log_dir, "cost_warn")] == ["gpt-4o-mini"]
    costs.tick(s=settings, now=NOON + 3600)
    assert len(events(log_dir, "cost_warn")) == 1
    assert len(incidents(settings)) == 2


def test_just_under_90_percent_is_ok(log_dir, settings):
    write_usage(log_dir, mini(89_999_999))
    costs.tick(s=settings, now=NOON)
    assert costs.status(s=settings, now=NOON)["models"]["gpt-4o-mini"]["state"] == "ok"


def test_at_100_percent_throttles_and_raises_a_critical_incident(log_dir, settings):
    write_usage(log_dir, mini(100_000_000))  # exactly $15.00
    costs.tick(s=settings, now=NOON)
    body = costs.status(s=settings, now=NOON)
    assert body["models"]["gpt-4o-mini"] | {} == {
        "spent_usd": 15.0,
        "reserved_usd": 0.0,
        "cap_usd": 15.0,
        "pct": 100.0,
        "state": "throttle",
        "forecast_usd": 30.0,
        "action": "throttle",
        "cap_source": "env",
        "cap_since": clock.iso(NOON),  # first seen by this tick
    }
    decision = costs.guard("gpt-4o-mini", s=settings, now=NOON)
    assert decision == {
        "action": "throttle",
        "model": "gpt-4o-mini",
        "reason": "gpt-4o-mini daily cap reached ($15.00 of $15.00); no fallback configured",
        "retry_after_s": 12 * 3600,
    }
    assert incidents(settings, "gpt-4o-mini") == [("CRITICAL", "costs:throttle:gpt-4o-mini:2026-11-27")]
    (event,) = events(log_dir, "cost_throttle")
    assert event["severity"] == "CRITICAL" and event["level"] == "ERROR"
    costs.tick(s=settings, now=NOON + 3600)
    assert len(incidents(settings, "gpt-4o-mini")) == 1  # once per scope per day


def test_switch_to_fallback_with_headroom_then_throttle_when_none(log_dir, monkeypatch):
    monkeypatch.setenv("MODEL_CAPS_JSON", '{"gpt-4o":5,"gpt-4o-mini":15,"embeddings":2}')
    monkeypatch.setenv("MODEL_FALLBACKS_JSON", '{"gpt-4o":"gpt-4o-mini"}')
    s = config.settings()
    write_usage(log_dir, mini(2_000_000, model="gpt-4o"))  # $5 of gpt-4o's $5
    costs.tick(s=s, now=NOON)
    assert costs.guard("gpt-4o", s=s, now=NOON) == {
        "action": "switch",
        "model": "gpt-4o-mini",
        "reason": "gpt-4o daily cap reached ($5.00 of $5.00); gpt-4o-mini has headroom",
        "retry_after_s": 0,
    }
    assert costs.status(s=s, now=NOON)["models"]["gpt-4o"]["action"] == "switch"
    assert ("CRITICAL", "costs:throttle:gpt-4o:2026-11-27") in incidents(s)
    write_usage(log_dir, mini(100_000_000))  # the fallback is now at its cap too
    costs.tick(s=s, now=NOON + 60)
    decision = costs.guard("gpt-4o", s=s, now=NOON + 60)
    assert decision["action"] == "throttle"
    assert decision["reason"] == "gpt-4o daily cap reached ($5.00 of $5.00); no fallback has headroom"


def test_global_cap_throttles_every_model(log_dir, monkeypatch):
    monkeypatch.setenv("COST_CAP_DAILY_USD", "1")
    s = config.settings()
    write_usage(log_dir, {"ts": NOON - 5, "model": "gpt-4o", "usd": 1.0})
    costs.tick(s=s, now=NOON)
    for model in ("gpt-4o", "gpt-4o-mini", "anything"):
        d = costs.guard(model, s=s, now=NOON)
        assert (d["action"], d["reason"]) == ("throttle", "global daily AI cap reached ($1.00 of $1.00)")
    assert ("CRITICAL", "costs:throttle:global:2026-11-27") in incidents(s)


def test_embeddings_cap_covers_embedding_models(log_dir, settings):
    write_usage(log_dir, mini(100_000_000, model="text-embedding-3-small"))  # $2
    costs.tick(s=settings, now=NOON)
    body = costs.status(s=settings, now=NOON)
    assert body["models"]["embeddings"]["state"] == "throttle"
    assert body["models"]["embeddings"]["members"] == ["text-embedding-3-small"]
    assert costs.guard("text-embedding-3-large", s=settings, now=NOON)["action"] == "throttle"
    assert costs.guard("gpt-4o-mini", s=settings, now=NOON)["action"] == "allow"


def test_day_rollover_at_utc_midnight_resets_decisions(log_dir, settings):
    write_usage(log_dir, mini(100_000_000, ts=DAY + 86400 - 10))
    costs.tick(s=settings, now=DAY + 86400 - 1)
    assert costs.guard("gpt-4o-mini", s=settings, now=DAY + 86400 - 1) | {} == {
        "action": "throttle",
        "model": "gpt-4o-mini",
        "reason": "gpt-4o-mini daily cap reached ($15.00 of $15.00); no fallback configured",
        "retry_after_s": 1,
    }
    # no tick has run since midnight: the cached decisions must not carry over
    assert costs.guard("gpt-4o-mini", s=settings, now=DAY + 86400)["action"] == "allow"
    assert costs.status(s=settings, now=DAY + 86400)["models"]["gpt-4o-mini"]["state"] == "ok"
    costs.tick(s=settings, now=DAY + 86400 + 60)
    assert costs.guard("gpt-4o-mini", s=settings, now=DAY + 86400 + 60)["action"] == "allow"


def test_forecast_warns_before_the_cap_is_near(log_dir, settings):
    # $2.70 by 03:00 is 18% of the $15 cap, but at that rate the day ends at $21.60
    write_usage(log_dir, mini(18_000_000, ts=DAY + 3 * 3600 - 60))
    costs.tick(s=settings, now=DAY + 3 * 3600)
    entry = costs.status(s=settings, now=DAY + 3 * 3600)["models"]["gpt-4o-mini"]
    assert (entry["state"], entry["forecast_usd"]) == ("ok", 21.6)
    assert ("WARNING", "costs:forecast:gpt-4o-mini:2026-11-27") in incidents(settings)
    assert [e["forecast_usd"] for e in events(settings.log_dir, "cost_forecast")] == [21.6]


def test_money_a_person_reads_has_cents_and_events_keep_the_exact_figure(log_dir, settings):
    from echoops.core import pager

    assert [prices.usd_text(v) for v in (150.832, 7.67002, 0, 25, 1204, 0.0042, 0.00001, -3.5)] == [
        "$150.83", "$7.67", "$0.00", "$25.00", "$1,204.00", "$0.0042", "<$0.0001", "-$3.50",
    ]  # fmt: skip
    write_usage(log_dir, {"ts": DAY + 3 * 3600 - 60, "model": "gpt-4o", "usd": 7.67002})
    costs.tick(s=settings, now=DAY + 3 * 3600)  # x8 by midnight: $61.36016 over the $25 global cap
    [msg] = [r[0] for r in pager.db(settings).execute("SELECT msg FROM pager_incidents WHERE source='costs'")]
    assert msg == "global AI spend forecast $61.36 exceeds the $25.00 daily cap (2026-11-27)"
    assert [e["forecast_usd"] for e in events(settings.log_dir, "cost_forecast")] == [61.36016]


def test_spend_today_is_the_global_total_each_tick_saw(log_dir, settings):
    from echoops.core.costs import series

    assert costs.status(s=settings, now=DAY + 3600)["spend_today"] == []  # no tick yet
    write_usage(log_dir, mini(10_000_000, ts=DAY + 3000))  # $1.50 before 01:00
    costs.tick(s=settings, now=DAY + 3600)
    write_usage(log_dir, mini(20_000_000, ts=DAY + 7000), mini(10_000_000, ts=DAY + 7100, model="gpt-4o"))
    costs.tick(s=settings, now=DAY + 7200)  # + $3.00 + $25.00
    costs.tick(s=settings, now=DAY + 7320)  # same 5-minute slot: the later point stands for it
    assert costs.status(s=settings, now=DAY + 3 * 3600)["spend_today"] == [
        {"ts": "2026-11-27T01:00:00.000Z", "spent_usd": 1.5},
        {"ts": "2026-11-27T02:02:00.000Z", "spent_usd": 29.5},
    ]
    assert costs.status(s=settings, now=DAY + 3601)["spend_today"] == [  # a simulated past: nothing after it
        {"ts": "2026-11-27T01:00:00.000Z", "spent_usd": 1.5},
    ]
    # a new UTC day starts from nothing; points older than two days are dropped
    costs.tick(s=settings, now=DAY + 86400 + 60)
    assert costs.status(s=settings, now=DAY + 86400 + 120)["spend_today"] == [
        {"ts": "2026-11-28T00:01:00.000Z", "spent_usd": 0.0}
    ]
    costs.tick(s=settings, now=DAY + 3 * 86400)
    days = [r[0] for r in store.db(settings).execute("SELECT DISTINCT day FROM costs_points ORDER BY day")]
    assert days == ["2026-11-28", "2026-11-30"] and series.KEEP_DAYS == 2


def test_cap_of_zero_closes_a_model_without_paging(log_dir, settings):
    costs.set_cap("model", "gpt-4o", 0, s=settings, now=NOON)
    assert costs.guard("gpt-4o", s=settings, now=NOON)["action"] == "throttle"
    assert incidents(settings) == []


# --- cents-valued caps: read back exactly, compared exactly ------------------------------------


def test_usd_to_cents_rounds_the_decimal_text_never_truncates():
    assert int(19.99 * 100) == 1998  # the trap
    assert [prices.usd_to_cents(v) for v in (19.99, 0.29, 0.07, "19.99", 1e9, 0, 4.35)] == [
        1999, 29, 7, 1999, 100_000_000_000, 0, 435,
    ]  # fmt: skip
    assert prices.usd_to_micro(19.99) == 19_990_000 and prices.usd_to_micro(0.29) == 290_000


def _ledger_fee(settings, cents: int, now: float) -> None:
    from echoops.core.portal import ledger, rows

    record = {"id": f"fee_{cents}", "email": "b@example.com", "created": now - 60, "amount_cents": 10_000,
              "currency": "usd", "description": "Pro plan", "fee_cents": cents}  # fmt: skip
    ledger.upsert([rows.purchase_row(record, source="test", now=now)], s=settings)


@pytest.mark.parametrize(
    ("fee_cents", "state", "pct"),
    [(1999, "over", 100.0), (1998, "warn", 99.95), (1800, "warn", 90.05), (1799, "ok", 89.99)],
)
def test_a_19_99_fee_cap_reads_back_19_99_and_is_compared_in_whole_cents(monkeypatch, log_dir, fee_cents, state, pct):
    monkeypatch.setenv("STRIPE_FEES_CAP_DAILY_USD", "19.99")
    s = config.settings()
    _ledger_fee(s, fee_cents, NOON)
    costs.tick(s=s, now=NOON)
    fees = costs.status(s=s, now=NOON)["stripe_fees"]
    assert fees == {
        "spent_usd": fee_cents / 100,
        "source": "ledger",
        "fetched_at": "2026-11-27T12:00:00.000Z",
        "error": None,
        "error_at": None,
        "cap_usd": 19.99,
        "pct": pct,
        "state": state,
    }


@pytest.mark.parametrize(
    ("spent", "state"),
    [(0.29, "throttle"), (0.289999, "warn"), (0.261, "warn"), (0.260999, "ok")],
)
def test_cents_valued_model_caps_from_the_environment(monkeypatch, log_dir, spent, state):
    monkeypatch.setenv("MODEL_CAPS_JSON", '{"gpt-4o-mini": 0.29, "embeddings": 0.07}')
    monkeypatch.setenv("COST_CAP_DAILY_USD", "19.99")
    s = config.settings()
    write_usage(log_dir, {"ts": NOON - 60, "model": "gpt-4o-mini", "usd": spent})
    costs.tick(s=s, now=NOON)
    body = costs.status(s=s, now=NOON)
    assert (body["global"]["cap_usd"], body["models"]["embeddings"]["cap_usd"]) == (19.99, 0.07)
    entry = body["models"]["gpt-4o-mini"]
    assert (entry["spent_usd"], entry["cap_usd"], entry["state"]) == (spent, 0.29, state)
    expected = "throttle" if state == "throttle" else "allow"
    assert costs.guard("gpt-4o-mini", s=s, now=NOON)["action"] == expected


def test_a_cents_valued_cap_set_through_the_api_reads_back_exactly(log_dir, settings):
    write_usage(log_dir, {"ts": NOON - 60, "model": "gpt-4o", "usd": 19.99})
    costs.tick(s=settings, now=NOON)
    out = costs.set_cap("model", "gpt-4o", 19.99, s=settings, now=NOON)
    assert out["cap"]["usd_cap"] == 19.99
    assert out["status"]["models"]["gpt-4o"] | {} == {
        "spent_usd": 19.99,
        "reserved_usd": 0.0,
        "cap_usd": 19.99,
        "pct": 100.0,
        "state": "throttle",
        "forecast_usd": 39.98,
        "action": "throttle",
        "cap_source": "api",
        "cap_since": "2026-11-27T12:00:00.000Z",
    }
    assert (
        costs.set_cap("model", "gpt-4o", "20.01", s=settings, now=NOON)["status"]["models"]["gpt-4o"]["state"] == "warn"
    )
    assert costs.set_cap("daily", None, 0.07, s=settings, now=NOON)["cap"] == {
        "scope": "daily",
        "key": None,
        "usd_cap": 0.07,
        "old_usd_cap": 25.0,
        "old_source": "env",
    }
    assert files.read_json(log_dir / "cost_state.json")["caps"]["models"]["gpt-4o"] == 20.01


# --- set-cap --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scope", "key", "usd", "field"),
    [
        ("daily", None, -1, "usd_cap"),
        ("daily", None, float("nan"), "usd_cap"),
        ("daily", None, float("inf"), "usd_cap"),
        ("daily", None, "NaN", "usd_cap"),
        ("daily", None, True, "usd_cap"),
        ("daily", None, None, "usd_cap"),
        ("daily", None, "ten", "usd_cap"),
        ("model", None, 5, "key"),
        ("model", "  ", 5, "key"),
        ("model", 7, 5, "key"),
        ("daily", "gpt-4o", 5, "key"),
        ("weekly", None, 5, "scope"),
        (None, None, 5, "scope"),
    ],
)
def test_set_cap_validation_names_the_field(settings, scope, key, usd, field):
    with pytest.raises(ValidationError) as err:
        costs.set_cap(scope, key, usd, s=settings, now=NOON)
    assert err.value.field == field


def test_set_cap_overrides_env_logs_old_value_and_recomputes(log_dir, settings):
    write_usage(log_dir, mini(40_000_000))  # $6
    costs.tick(s=settings, now=NOON)
    assert costs.guard("gpt-4o-mini", s=settings, now=NOON)["action"] == "allow"
    out = costs.set_cap("model", "gpt-4o-mini", 6, s=settings, now=NOON + 1)
    assert out["cap"] == {
        "scope": "model",
        "key": "gpt-4o-mini",
        "usd_cap": 6.0,
        "old_usd_cap": 15.0,
        "old_source": "env",
    }
    assert out["status"]["models"]["gpt-4o-mini"]["state"] == "throttle"
    # the guard sees the change at once (new cost_state.json), no tick needed
    assert costs.guard("gpt-4o-mini", s=settings, now=NOON + 1)["action"] == "throttle"
    assert ("CRITICAL", "costs:throttle:gpt-4o-mini:2026-11-27") in incidents(settings)
    costs.set_cap("daily", None, 40, s=settings, now=NOON + 2)
    logged = [
        (e["scope"], e["key"], e["usd_cap"], e["old_usd_cap"], e["old_source"]) for e in events(log_dir, "cap_set")
    ]
    assert logged == [("model", "gpt-4o-mini", 6.0, 15.0, "env"), ("daily", None, 40.0, 25.0, "env")]
    state = files.read_json(log_dir / "cost_state.json")
    assert state["caps"]["daily_usd"] == 40.0 and state["caps"]["daily_source"] == "api"
    costs.set_cap("model", "gpt-4o-mini", 20, s=settings, now=NOON + 3)
    assert events(log_dir, "cap_set")[-1]["old_source"] == "api"
    assert costs.guard("gpt-4o-mini", s=settings, now=NOON + 3)["action"] == "allow"


def test_state_file_is_written_for_other_languages(log_dir, settings):
    write_usage(log_dir, mini(1_000_000))
    costs.tick(s=settings, now=NOON)
    state = files.read_json(log_dir / "cost_state.json")
    assert state["day"] == "2026-11-27"
    assert state["decisions"]["gpt-4o-mini"] == {"action": "allow", "model": "gpt-4o-mini", "reason": "within caps"}
    assert state["global"]["spent_usd"] == 0.15
    assert state["version"] >= 1


def test_guard_before_any_tick_allows(settings):
    assert costs.guard("gpt-4o", s=settings, now=NOON) == {
        "action": "allow",
        "model": "gpt-4o",
        "reason": "within caps",
        "retry_after_s": 0,
    }


def test_guard_without_settings_follows_the_log_dir_env(log_dir, monkeypatch, tmp_path):
    write_usage(log_dir, mini(100_000_000))
    costs.tick(now=NOON)
    assert costs.guard("gpt-4o-mini", now=NOON)["action"] == "throttle"
    other = tmp_path / "other"
    other.mkdir()
    monkeypatch.setenv("ECHOOPS_LOG_DIR", str(other))
    assert costs.guard("gpt-4o-mini", now=NOON)["action"] == "allow"


def test_tick_event_without_stripe_key_or_ledger_fees(log_dir, settings):
    costs.tick(s=settings, now=NOON)
    (event,) = events(log_dir, "cost_tick")
    assert event["stripe_fees"] == {"spent_usd": 0.0, "source": "ledger", "today_cents": 0, "other_currencies": {}}
    assert event["lines"] == 0 and event["alerts"] == []
    assert costs.status(s=settings, now=NOON)["stripe_fees"] == {
        "spent_usd": 0.0,
        "source": "ledger",
        "fetched_at": "2026-11-27T12:00:00.000Z",
        "error": None,
        "error_at": None,
    }


def test_utc_day_of_a_timestamp():
    assert clock.day_iso(DAY) == "2026-11-27"
    assert clock.day_iso(DAY - 0.001) == "2026-11-26"
    assert clock.day_iso(DAY + 86399.999) == "2026-11-27"


def test_seconds_to_midnight():
    assert guardrail.seconds_to_midnight(DAY) == 86400
    assert guardrail.seconds_to_midnight(DAY + 86399.5) == 1
    assert guardrail.seconds_to_midnight(NOON) == 43200


def test_a_mangled_state_file_reads_as_nothing_spent(log_dir, settings):
    (log_dir / "cost_state.json").write_text('{"global": {"state": "throttle"}, "models": [1, 2]}')
    assert costs.guard("gpt-4o", s=settings, now=NOON)["action"] == "allow"
    (log_dir / "cost_state.json").write_text("not json")
    assert costs.guard("gpt-4o", s=settings, now=NOON)["action"] == "allow"


def test_guard_sees_a_cap_change_made_milliseconds_later(log_dir, settings):
    costs.set_cap("model", "gpt-4o", 20, s=settings, now=NOON)
    assert costs.guard("gpt-4o", s=settings, now=NOON)["action"] == "allow"
    costs.set_cap("model", "gpt-4o", 0, s=settings, now=NOON)  # same length document, a few ms later
    assert costs.guard("gpt-4o", s=settings, now=NOON)["action"] == "throttle"


_MODELS = ["a", "b", "c", "d"]


@hsettings(max_examples=200, deadline=None)
@given(
    states=st.dictionaries(st.sampled_from(_MODELS), st.sampled_from(["ok", "warn", "throttle"])),
    fallbacks=st.dictionaries(st.sampled_from(_MODELS), st.sampled_from(_MODELS)),
    global_state=st.sampled_from(["ok", "warn", "throttle"]),
    model=st.sampled_from(_MODELS),
)
def test_decide_never_sends_a_call_to_a_model_without_headroom(states, fallbacks, global_state, model):
    doc = {
        "global": {"state": global_state, "spent_usd": 1, "cap_usd": 1},
        "models": {m: {"state": s, "spent_usd": 1, "cap_usd": 1} for m, s in states.items()},
        "caps": {"models": dict.fromkeys(states, 1)},
        "fallbacks": fallbacks,
    }
    d = guardrail.decide(model, doc)
    if global_state == "throttle":
        assert d["action"] == "throttle"
    elif d["action"] == "allow":
        assert d["model"] == model and states.get(model) != "throttle"
    elif d["action"] == "switch":
        assert states.get(model) == "throttle" and states.get(d["model"]) != "throttle"
        assert d["model"] != model
    else:
        # throttled for the model's own cap: every model reachable along the fallbacks is at its cap
        assert states.get(model) == "throttle"
        seen, nxt = {model}, fallbacks.get(model)
        while nxt and nxt not in seen:
            assert states.get(nxt) == "throttle"
            seen.add(nxt)
            nxt = fallbacks.get(nxt)
