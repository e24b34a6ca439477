"""Input of the cost guardrails: AI usage lines, read incrementally (Stripe fees: `fees`).

`logs/ai_usage.ndjson`, one line per AI call:
    {"ts": "2026-11-27T10:00:00Z", "model": "gpt-4o-mini", "input_tokens": 812, "output_tokens": 95}
    {"ts": 1795000000, "model": "gpt-4o", "usd": 0.0123}
Spend lands per (UTC day, model) in `costs_spend`, in the same transaction that moves the
reader's cursor, so racing ticks never count a line twice. Usage recorded per call
(`record_usage`, `spend`, `POST /api/costs/usage`) goes straight into the store and never
into this file, so each call is counted once whichever way it arrives. Tokens are summed per
(day, model) and priced once per tick (price x tokens is linear, so this is exact and keeps
the per-line work to a few dict operations).
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Iterator
from typing import Any

from echoops.core import clock, ndjson, store
from echoops.core.config import Settings
from echoops.core.costs import prices, reservations

SOURCE = "ai_usage.ndjson"
CONSUMER = "costs"
MAX_TOKENS = 10**9  # per call; more is a broken line, not a call
MAX_USD = 10**6  # per call
MAX_MODEL_CHARS = 200


def _valid_day(prefix: str) -> str | None:
    """`YYYY-MM-DD` when it is a real date within the clock's sane range, else None."""
    ts = clock.parse_ts(prefix + "T00:00:00+00:00")
    return prefix if ts is not None and len(prefix) == 10 else None


def _slow_day(ts: object) -> str | None:
    parsed = clock.parse_ts(ts)
    return None if parsed is None else clock.day_iso(parsed)


def _tokens(value: object) -> int | None:
    """A token count from a line: missing -> 0, whole non-negative number -> int, else None."""
    if value is None:
        return 0
    if type(value) is float and value.is_integer():
        value = int(value)
    if type(value) is int and 0 <= value <= MAX_TOKENS:
        return value
    return None


def _usd_pico(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if not (0 <= value <= MAX_USD):  # NaN fails this too
        return None
    return prices.usd_to_pico(value)


_BAD_TS = [0] * 6  # sentinels stored under keys that failed validation, so a bad key costs one lookup
_BAD_MODEL = [0] * 6


def _new_key(agg: dict, key: tuple[str, str]) -> list[int]:
    """Validate a (date prefix, model) key the first time it is seen; return its accumulator or a sentinel."""
    prefix, model = key
    if _valid_day(prefix) is None:
        acc = _BAD_TS
    elif not model.strip() or len(model) > MAX_MODEL_CHARS or not model.isprintable():
        acc = _BAD_MODEL
    else:
        acc = [0, 0, 0, 0, 0, 0]
    agg[key] = acc
    return acc


def aggregate(batches: Iterator[list[dict[str, Any]]], bad: Counter) -> dict[tuple[str, str], list[int]]:
    """Sum lines per (day, logged model): [calls, priced in, priced out, usd pico, tokens in, tokens out].

    The hot loop of the ingest. An ISO stamp ending in `Z` is bucketed by its first ten
    characters, and the (date, model) key is validated once, when first seen; any other stamp
    goes through clock.parse_ts. A line then costs a few dict lookups and integer additions.
    """
    agg: dict[tuple[str, str], list[int]] = {}
    get_acc = agg.get
    top = MAX_TOKENS
    for batch in batches:
        for obj in batch:
            ts = obj.get("ts")
            model = obj.get("model")
            if type(model) is not str:
                bad["bad_model"] += 1
                continue
            if type(ts) is str and ts[-1:] == "Z":
                key = (ts[:10], model)
            else:
                day = _slow_day(ts)
                if day is None:
                    bad["bad_ts"] += 1
                    continue
                key = (day, model)
            acc = get_acc(key)
            if acc is None:
                acc = _new_key(agg, key)
            if acc is _BAD_TS:
                bad["bad_ts"] += 1
                continue
            if acc is _BAD_MODEL:
                bad["bad_model"] += 1
                continue
            it = obj.get("input_tokens")
            ot = obj.get("output_tokens")
            usd = obj.get("usd")
            if usd is None:
                if type(it) is int and type(ot) is int and 0 <= it <= top and 0 <= ot <= top:
                    acc[0] += 1
                    acc[1] += it
                    acc[2] += ot
                    continue
                if it is None and ot is None:
                    bad["no_cost"] += 1
                    continue
                it, ot = _tokens(it), _tokens(ot)
                if it is None or ot is None:
                    bad["bad_tokens"] += 1
                    continue
                acc[0] += 1
                acc[1] += it
                acc[2] += ot
            else:
                pico = _usd_pico(usd)
                if pico is None:
                    bad["bad_usd"] += 1
                    continue
                acc[0] += 1
                acc[3] += pico
                # tokens beside a usd figure are kept for the record, not priced again
                it, ot = _tokens(it), _tokens(ot)
                acc[4] += it or 0
                acc[5] += ot or 0
    return {k: v for k, v in agg.items() if v is not _BAD_TS and v is not _BAD_MODEL}


def price(agg: dict[tuple[str, str], list[int]], table: dict[str, tuple[int, int]]) -> dict[tuple[str, str], list[int]]:
    """Per (day, canonical model): [calls, input tokens, output tokens, cost pico, unpriced calls]."""
    out: dict[tuple[str, str], list[int]] = {}
    for (day, logged), (calls, pin_tok, pout_tok, usd_p, in_x, out_x) in agg.items():
        if not calls:
            continue
        name = prices.canonical(logged, table)
        p_in, p_out, priced = prices.price_of(name, table)
        row = out.setdefault((day, name), [0, 0, 0, 0, 0])
        row[0] += calls
        row[1] += pin_tok + in_x
        row[2] += pout_tok + out_x
        row[3] += usd_p + pin_tok * p_in + pout_tok * p_out
        if not priced and (pin_tok or pout_tok):
            row[4] += calls  # at most: usd lines of the same model were priced by the app
    return out


def _add_rows(conn: sqlite3.Connection, rows: dict[tuple[str, str], list[int]]) -> None:
    for day in sorted({day for day, _ in rows}):
        reservations.lock_day(conn, day)  # the day's budget transactions see this spend whole
    for (day, model), (calls, tin, tout, cost, unpriced) in rows.items():
        reservations.add_spend(conn, day, model, calls, tin, tout, cost, unpriced)


def ingest_usage(conn: sqlite3.Connection, s: Settings, now: float) -> dict[str, Any]:
    """Read new ai_usage.ndjson lines into costs_spend; the report counts lines, calls and bad lines."""
    path = s.log_path(SOURCE)
    report: dict[str, Any] = {"lines": 0, "calls": 0, "bad": {}, "events": []}
    if not ndjson.pending(conn, path, CONSUMER):
        return report
    table = prices.price_table(s.model_prices)
    bad: Counter[str] = Counter()
    with store.transaction(conn):
        # Created inside the transaction: a second tick waits here, then sees the moved cursor.
        reader = ndjson.Reader(conn, path, CONSUMER)
        agg = aggregate(reader.batches(), bad)
        rows = price(agg, table)
        _add_rows(conn, rows)
        for reason, n in bad.items():
            reader.count_bad(reason, n)
        reader.commit(now)
    all_bad = dict(reader.bad)
    report.update(
        lines=reader.lines,
        calls=sum(r[0] for r in rows.values()),
        bad=all_bad,
        events=list(reader.events),
    )
    return report
