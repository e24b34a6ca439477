"""Stripe fees for the cost guardrails: read per UTC day, and never silently zero.

Where they come from: with STRIPE_API_KEY, Stripe's balance transactions
(`GET /v1/balance_transactions` filtered by `created[gte]`, the filter Stripe documents for it,
100 a page); without it, the `fee_cents` of the portal ledger. Each tick re-reads yesterday and
today and replaces those days' rows in `costs_fees` (reading is idempotent). USD fees are
summed; other currencies are reported apart, never converted.

A read that fails leaves the last good figures in place and is recorded: the status entry
carries `error` and `error_at` until a read succeeds, the tick reports it (`costs tick` exits
1), and `caps` raises a WARNING incident for it once per UTC day. `source` and `fetched_at` say
where the figures last came from and when.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from echoops.core import clock, files, store
from echoops.core.config import Settings
from echoops.core.costs import prices
from echoops.core.errors import EchoopsError

SCHEMA = store.Schema(
    "costs_fee_reads",
    (
        """
        CREATE TABLE costs_fee_reads (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            source TEXT,
            fetched_at REAL,
            error TEXT,
            error_source TEXT,
            error_at REAL
        );
        """,
    ),
)
MAX_ERROR_CHARS = 300
WARN_RATIO = (9, 10)  # warn at fees * 10 >= cap * 9, like the AI caps


def _from_stripe(s: Settings, since: float) -> tuple[dict[str, list[int]], dict[str, int]]:
    """Balance transactions since `since`: per day [fee cents (USD), count], plus other currencies."""
    from echoops.core.portal.stripe import client  # lazy: httpx costs ~55 ms; only a keyed Stripe read needs it

    per_day: dict[str, list[int]] = {}
    other: Counter[str] = Counter()
    for txn in client.iter_list("/v1/balance_transactions", {"created[gte]": int(since)}, s=s):
        created, fee, currency = txn.get("created"), txn.get("fee"), txn.get("currency")
        if type(created) is not int or type(fee) is not int or created < since:
            continue
        if currency != "usd":
            other[str(currency)] += fee  # no FX here: reported apart, never mixed into USD
            continue
        row = per_day.setdefault(clock.day_iso(created), [0, 0])
        row[0] += fee
        row[1] += 1
    return per_day, dict(other)


def _from_ledger(s: Settings, since: float, now: float) -> tuple[dict[str, list[int]], dict[str, int]]:
    """The portal ledger's fees per day (USD cents) and other currencies' totals (the ledger
    stores currencies lower-case and fees as integer cents)."""
    from echoops.core import portal  # lazy: ~20 ms that `costs check` and guard() never need

    per_day: dict[str, list[int]] = {}
    other: Counter[str] = Counter()
    for day, by_currency in portal.fees_by_day(s=s, since=since, until=now + 1).items():
        for currency, cents in by_currency.items():
            if currency == "usd":
                per_day[day] = [cents, 0]
            else:
                other[currency] += cents
    return per_day, dict(other)


def sync_fees(conn: store.Conn, s: Settings, now: float) -> dict[str, Any]:
    """Refresh yesterday's and today's fees (Stripe when keyed, else the portal ledger).

    `{"source", "today_cents", "other_currencies"}`, or `{"source", "error"}` when the read
    failed (the failure is recorded for `status_entry`; the previous figures stay).
    """
    store.ensure(conn, SCHEMA)
    today = clock.day_start(now)
    since = today - 86400
    days = (clock.day_iso(since), clock.day_iso(today))
    source = "stripe" if s.stripe_api_key else "ledger"
    try:
        if source == "stripe":
            per_day, other = _from_stripe(s, since)
        else:
            per_day, other = _from_ledger(s, since, now)
    except store.errors(EchoopsError) as exc:
        detail = (exc.detail if isinstance(exc, EchoopsError) else f"ledger unreadable: {exc}")[:MAX_ERROR_CHARS]
        with store.transaction(conn):
            conn.execute(
                "INSERT INTO costs_fee_reads(id, error, error_source, error_at) VALUES(1,?,?,?) "
                "ON CONFLICT(id) DO UPDATE SET error=excluded.error, error_source=excluded.error_source, "
                "error_at=excluded.error_at",
                (detail, source, now),
            )
        return {"source": source, "error": detail}
    with store.transaction(conn):
        for day in days:
            cents, count = per_day.get(day, [0, 0])
            extra = {"other_currencies": other} if other and day == days[1] else None
            conn.execute(
                "INSERT INTO costs_fees(day, source, fee_cents, count, detail, updated_at) VALUES(?,?,?,?,?,?) "
                "ON CONFLICT(day) DO UPDATE SET source=excluded.source, fee_cents=excluded.fee_cents, "
                "count=excluded.count, detail=excluded.detail, updated_at=excluded.updated_at",
                (day, source, cents, count, None if extra is None else files.dumps(extra).decode(), now),
            )
        conn.execute(
            "INSERT INTO costs_fee_reads(id, source, fetched_at, error, error_source, error_at) "
            "VALUES(1,?,?,NULL,NULL,NULL) ON CONFLICT(id) DO UPDATE SET source=excluded.source, "
            "fetched_at=excluded.fetched_at, error=NULL, error_source=NULL, error_at=NULL",
            (source, now),
        )
    return {"source": source, "today_cents": per_day.get(days[1], [0, 0])[0], "other_currencies": other}


def status_entry(conn: store.Conn, s: Settings, day: str) -> dict[str, Any]:
    """The `stripe_fees` entry of the costs status: `{spent_usd, source, fetched_at, error,
    error_at, count?, cap_usd?, pct?, state?}` (times ISO-8601; `error` null after a good read)."""
    store.ensure(conn, SCHEMA)
    row = conn.execute("SELECT source, fee_cents, count FROM costs_fees WHERE day=?", (day,)).fetchone()
    read = conn.execute("SELECT source, fetched_at, error, error_at FROM costs_fee_reads WHERE id=1").fetchone()
    cents = row["fee_cents"] if row else 0
    out: dict[str, Any] = {
        "spent_usd": round(cents / 100, 2),
        "source": read["source"] if read and read["source"] else (row["source"] if row else None),
        "fetched_at": clock.iso(read["fetched_at"]) if read and read["fetched_at"] is not None else None,
        "error": read["error"] if read else None,
        "error_at": clock.iso(read["error_at"]) if read and read["error_at"] is not None else None,
    }
    if row and row["source"] == "stripe":
        out["count"] = row["count"]  # balance transactions; the ledger sums fees without counting
    if s.stripe_fees_cap_usd is not None:
        cap_cents = prices.usd_to_cents(s.stripe_fees_cap_usd)
        out["cap_usd"] = cap_cents / prices.CENTS_PER_USD
        out["pct"] = round(cents * 100 / cap_cents, 2) if cap_cents else None
        if cents >= cap_cents and (cents or cap_cents):
            out["state"] = "over"
        elif cents * WARN_RATIO[1] >= cap_cents * WARN_RATIO[0] and cents:
            out["state"] = "warn"
        else:
            out["state"] = "ok"
    return out


def alert_candidates(entry: dict[str, Any]) -> list[tuple[str, str, str, str, dict[str, Any]]]:
    """(scope, kind, severity, event, entry) for the fee alerts the entry calls for: the cap
    (warn/over) and a failed read (WARNING; the caller raises each at most once a day)."""
    out = []
    if entry.get("state") == "over":
        out.append(("stripe_fees", "fee_over", "CRITICAL", "fee_over", entry))
    elif entry.get("state") == "warn":
        out.append(("stripe_fees", "fee_warn", "WARNING", "fee_warn", entry))
    if entry.get("error"):
        out.append(("stripe_fees", "fee_error", "WARNING", "fee_read_failed", entry))
    return out


def error_message(entry: dict[str, Any], day: str) -> str:
    """The incident text for a failed read."""
    since = f"figures from {entry['fetched_at']}" if entry.get("fetched_at") else "no fees read yet"
    return f"Stripe fees could not be read: {entry['error']} ({since}; {day})"
