"""The per-call ledger: reservations held before an AI call, settled after it, and usage recorded
one call at a time. Every statement that moves money between "reserved" and "spent" is in this
module, so another store backend (PostgreSQL) replaces this file alone; the decision itself is
the pure function `admission.admit`, run inside the transaction.

Tables (the costs schema, v2):
- `costs_calls`: the reservations not settled yet: `open` (its `reserved_p` is held against
  the caps) or `expired` (left open past its TTL: the tick counted it at its estimate, and a
  late settle corrects that to the actual; kept 2 days). Settling or releasing deletes the row,
  so the table holds only what is in flight, and a second settle of the same token is a 404.
- `costs_minutes`: calls counted one by one per UTC minute (the recording rate; kept 2 days).
- `costs_spend` (v1, shared with the log ingest): settled spend per (day, model), `add_spend`.

**The guarantee.** A reservation is admitted only when, for the global cap and the cap of the
model's scope, `spent + reserved < cap` and `spent + reserved + estimate <= cap`, with spent and
reserved read in the transaction that inserts it. Settling moves the call from reserved to spent
at its actual cost in one transaction. So after every commit, for each cap, spent + reserved <=
cap + the sum of (actual - estimate) over the calls that cost more than their estimate: settled
spend passes a cap by at most the under-estimates, and never with exact ones. (Log lines the
tick ingests, and usage recorded without a reservation, report calls already made: they are
added without asking and may take a scope past its cap, which closes it to the next call.)

**Serialisation.** Every transaction here is `store.transaction` (SQLite's BEGIN IMMEDIATE: the
database's write lock), so no other writer interleaves with a read-check-insert. It is entered
through `store.queued_transaction(conn, "budget")`, an flock queue in front of that lock (16
processes on one cap line up instead of sleeping in SQLite's busy handler); correctness rests
on the database's lock.
`lock_day` is where a backend without a database-wide write lock serialises the day's budget
transactions (see there). The SQL is standard, or the `INSERT ... ON CONFLICT ... DO UPDATE` form that SQLite
and PostgreSQL share; ids are made by the client.

**Pages a call.** A commit's cost here is mostly the pages it writes to the WAL (a checkpoint
with its fsyncs comes every 1,000): a reserve writes one (the new row), a settle three (the row
deleted, the spend row, the minute's count). `bench/costs_spend.py` measures it.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from echoops.core import clock, store
from echoops.core.config import Settings
from echoops.core.costs import admission, cap_sources, prices
from echoops.core.costs.admission import Admission, Caps, admit
from echoops.core.errors import NotFound

if TYPE_CHECKING:  # annotations only
    from echoops.core.costs.types import Calls

# Ids are time-ordered integers (`new_id`): the primary key is the only index, and a new row
# lands on the last page. PostgreSQL: `id BIGINT PRIMARY KEY` (SQLite makes only `INTEGER
# PRIMARY KEY` the rowid).
MIGRATION = """
    CREATE TABLE costs_calls (
        id INTEGER PRIMARY KEY,
        day TEXT NOT NULL,
        model TEXT NOT NULL,
        reserved_p INTEGER NOT NULL,
        cost_p INTEGER,
        state TEXT NOT NULL,
        source TEXT NOT NULL,
        created_at REAL NOT NULL,
        expires_at REAL NOT NULL
    );
    CREATE TABLE costs_minutes (
        minute INTEGER PRIMARY KEY,
        calls INTEGER NOT NULL
    );
"""

KEEP_S = 2 * 86400  # an expired reservation can still be settled this long after it was made
RATE_WINDOW_MIN = 5  # the recording rate: calls in this minute and the 4 before, per minute
_MAX = prices.MAX_PICO
_RANDOM_BITS = 22  # below the millisecond: 4M ids a millisecond, a clash is retried


def new_id(now: float) -> int:
    """A call id: milliseconds since the epoch, then random bits (time-ordered, fits in 63 bits)."""
    return (int(now * 1000) << _RANDOM_BITS) | secrets.randbits(_RANDOM_BITS)


def id_floor(ts: float) -> int:
    """The smallest id made at or after `ts`."""
    return int(ts * 1000) << _RANDOM_BITS


def token(call_id: int) -> str:
    """The reservation token apps hold (`rsv_` and the id)."""
    return f"rsv_{call_id}"


def parse_token(text: str) -> int | None:
    """The id inside a reservation token, or None when it is not one."""
    digits = text[4:] if text.startswith("rsv_") else ""
    return int(digits) if digits.isdigit() and len(digits) <= 19 else None


# (settings object, store file, caps version) -> Caps: reading the caps costs two queries and a
# few Decimal conversions; the version (bumped by every cap write) costs one indexed read.
_memo: tuple[Settings, str, object, Caps] | None = None


def load_caps(conn: store.Conn, s: Settings) -> Caps:
    """The caps in force (API, else the environment's as last noted in the store, else `s`'s
    before anything was noted; see cap_sources), `s`'s fallbacks and prices, cached per caps
    version; call it inside the transaction that decides on them."""
    global _memo
    row = conn.execute("SELECT v FROM costs_meta WHERE k='caps_version'").fetchone()
    version = None if row is None else row[0]
    where = getattr(conn, "path", "")
    memo = _memo
    if memo is not None and memo[0] is s and memo[1] == where and memo[2] == version:
        return memo[3]
    daily, models = cap_sources.effective_caps(conn, s, cap_sources.noted_env(conn))
    ppm = prices.PICO_PER_MICRO
    caps = Caps(
        daily[0] * ppm,
        {k: v[0] * ppm for k, v in models.items()},
        s.model_fallbacks,
        prices.price_table(s.model_prices),
    )
    _memo = (s, where, version, caps)
    return caps


# --- the statements -------------------------------------------------------------------------


def lock_day(conn: store.Conn, day: str) -> None:
    """Serialise `day`'s budget transactions: called first in each transaction that changes the
    day's spend or reservations. SQLite: nothing to do, `store.transaction` holds the database's
    write lock already (a statement here would cost a page per commit). PostgreSQL (READ
    COMMITTED): take the day's row lock, `INSERT INTO costs_days(day, seq) VALUES(%s, 1) ON
    CONFLICT (day) DO UPDATE SET seq = costs_days.seq + 1`."""
    del conn, day


def _saturating(column: str) -> str:
    return (
        f"{column} = CASE WHEN excluded.{column} > 0 AND costs_spend.{column} > {_MAX} - excluded.{column} "
        f"THEN {_MAX} ELSE costs_spend.{column} + excluded.{column} END"
    )


_COLUMNS = ("calls", "input_tokens", "output_tokens", "cost_p", "unpriced_calls")
_ADD_SPEND = (
    f"INSERT INTO costs_spend(day, model, {', '.join(_COLUMNS)}) VALUES(?,?,?,?,?,?,?) "
    f"ON CONFLICT(day, model) DO UPDATE SET {', '.join(_saturating(c) for c in _COLUMNS)}"
)


def add_spend(
    conn: store.Conn,
    day: str,
    model: str,
    calls: int,
    input_tokens: int,
    output_tokens: int,
    cost_p: int,
    unpriced: int,
) -> None:
    """Add to a (day, model) spend row (negative amounts correct an earlier estimate); saturates at 2^63-1."""
    values = [max(-_MAX, min(v, _MAX)) for v in (calls, input_tokens, output_tokens, cost_p, unpriced)]
    conn.execute(_ADD_SPEND, (day, model, *values))


def _spent(conn: store.Conn, day: str) -> dict[str, int]:
    return {r[0]: r[1] for r in conn.execute("SELECT model, cost_p FROM costs_spend WHERE day=?", (day,))}


def _spent_and_held(conn: store.Conn, day: str) -> tuple[dict[str, int], dict[str, int]]:
    """`day`'s spend and open holds per model, in one statement."""
    rows = conn.execute(
        "SELECT 0, model, cost_p FROM costs_spend WHERE day=? "
        "UNION ALL SELECT 1, model, SUM(reserved_p) FROM costs_calls WHERE day=? AND state='open' GROUP BY model",
        (day, day),
    )
    out: tuple[dict[str, int], dict[str, int]] = ({}, {})
    for kind, model, amount in rows:
        out[kind][model] = amount
    return out


def held_by_model(conn: store.Conn, day: str) -> dict[str, int]:
    """Pico-dollars held by `day`'s open reservations, per model (expired ones included: they
    are counted at their estimate either way)."""
    rows = conn.execute(
        "SELECT model, SUM(reserved_p) FROM costs_calls WHERE day=? AND state='open' GROUP BY model", (day,)
    )
    return {r[0]: r[1] for r in rows}


def _insert(conn: store.Conn, now: float, values: tuple) -> int:
    """Insert a reservation under a new id (a clash within the same millisecond is retried)."""
    for _ in range(8):
        call_id = new_id(now)
        cur = conn.execute(
            "INSERT INTO costs_calls(id, day, model, reserved_p, cost_p, state, source, created_at, expires_at) "
            "VALUES(?,?,?,?,NULL,'open',?,?,?) ON CONFLICT(id) DO NOTHING",
            (call_id, *values),
        )
        if cur.rowcount == 1:
            return call_id
    raise RuntimeError("no free call id")  # 8 clashes in 4M: the clock or the RNG is broken


def _count_minute(conn: store.Conn, now: float) -> None:
    conn.execute(
        "INSERT INTO costs_minutes(minute, calls) VALUES(?, 1) "
        "ON CONFLICT(minute) DO UPDATE SET calls = costs_minutes.calls + 1",
        (int(now // 60),),
    )


# --- the transactions -------------------------------------------------------------------------


@dataclass(frozen=True)
class Held:
    """A reservation made (or refused: `id` None when throttled)."""

    admission: Admission
    id: str | None
    day: str
    expires_at: float | None


def reserve(
    conn: store.Conn,
    s: Settings,
    model: str,
    estimate: Callable[[Caps, str], int],
    *,
    enforce: bool,
    now: float,
    ttl_s: float,
    source: str,
) -> Held:
    """Decide one call and, unless throttled, hold its estimate (`estimate(caps, model)`, in
    pico-dollars, for whichever model is chosen): one transaction (see the guarantee)."""
    day = clock.day_iso(now)
    with store.queued_transaction(conn, "budget"):
        lock_day(conn, day)
        caps = load_caps(conn, s)
        spent, held = _spent_and_held(conn, day)
        adm = admit(caps, model, lambda m: estimate(caps, m), spent, held, enforce)
        if adm.action == "throttle":
            return Held(adm, None, day, None)
        call_id = _insert(conn, now, (day, adm.name, adm.estimate_p, source, now, now + ttl_s))
    return Held(adm, token(call_id), day, now + ttl_s)


@dataclass(frozen=True)
class Counted:
    """Usage counted: on which day and name, for how much, and whether a scope of that day
    changed state (ok/warn/throttle) so the decisions must be republished."""

    day: str
    name: str
    cost_p: int
    changed: bool


def _apply(conn: store.Conn, caps: Caps, day: str, changes: list[tuple[str, int, int, int, int, int]]) -> bool:
    """Add (name, calls, in, out, cost, unpriced) rows to `day`'s spend; True when a state changed."""
    before = _spent(conn, day)
    after = dict(before)
    for name, calls, tin, tout, cost, unpriced in changes:
        add_spend(conn, day, name, calls, tin, tout, cost, unpriced)
        after[name] = after.get(name, 0) + cost
    names = [c[0] for c in changes]
    return admission.states(caps, before, names) != admission.states(caps, after, names)


def record(
    conn: store.Conn,
    s: Settings,
    model: str,
    input_tokens: int,
    output_tokens: int,
    usd_p: int | None,
    *,
    day: str,
    now: float,
) -> Counted:
    """Count one call reported without a reservation (it happened: no cap is asked)."""
    with store.queued_transaction(conn, "budget"):
        lock_day(conn, day)
        caps = load_caps(conn, s)
        name = caps.name(model)
        cost, priced = caps.cost(name, input_tokens, output_tokens, usd_p)
        _count_minute(conn, now)
        changed = _apply(conn, caps, day, [(name, 1, input_tokens, output_tokens, cost, 0 if priced else 1)])
    return Counted(day, name, cost, changed)


def _closing(conn: store.Conn, reservation: str) -> tuple[int, store.Row]:
    """The id and row of an open (or expired) reservation; NotFound otherwise (unknown, already
    settled or released: those rows are gone)."""
    call_id = parse_token(reservation)
    row = None
    if call_id is not None:
        row = conn.execute(
            "SELECT day, model, reserved_p, cost_p, state FROM costs_calls WHERE id=?", (call_id,)
        ).fetchone()
    if row is None or call_id is None:
        raise NotFound(
            f"no open reservation {reservation[:40]!r} (already settled or released, unknown, or made over "
            f"{KEEP_S // 3600} h ago)",
            field="reservation",
        )
    return call_id, row


def settle(
    conn: store.Conn,
    s: Settings,
    reservation: str,
    *,
    model: str | None,
    input_tokens: int,
    output_tokens: int,
    usd_p: int | None,
    at_estimate: bool = False,
    now: float,
) -> Counted:
    """Close an open (or expired) reservation at the call's actual cost, under `model` (default: the
    model reserved); `at_estimate` counts what was held. NotFound when not open (or expired)."""
    with store.queued_transaction(conn, "budget"):
        call_id, row = _closing(conn, reservation)
        day, held_name, state = row["day"], row["model"], row["state"]
        lock_day(conn, day)
        caps = load_caps(conn, s)
        name = held_name if model is None else caps.name(model)
        if at_estimate:
            cost, priced = row["reserved_p"], True
        else:
            cost, priced = caps.cost(name, input_tokens, output_tokens, usd_p)
        conn.execute("DELETE FROM costs_calls WHERE id=?", (call_id,))
        _count_minute(conn, now)
        changes = [(name, 1, input_tokens, output_tokens, cost, 0 if priced else 1)]
        if state == "expired":  # the tick counted the estimate: take it back
            changes.insert(0, (held_name, -1, 0, 0, -row["cost_p"], 0))
        changed = _apply(conn, caps, day, changes)
    return Counted(day, name, cost, changed)


def release(conn: store.Conn, s: Settings, reservation: str) -> Counted:
    """Close a reservation counting nothing (the call failed). NotFound when not open (or expired)."""
    with store.queued_transaction(conn, "budget"):
        call_id, row = _closing(conn, reservation)
        lock_day(conn, row["day"])
        caps = load_caps(conn, s)
        conn.execute("DELETE FROM costs_calls WHERE id=?", (call_id,))
        changed = False
        if row["state"] == "expired":
            changed = _apply(conn, caps, row["day"], [(row["model"], -1, 0, 0, -row["cost_p"], 0)])
    return Counted(row["day"], row["model"], 0, changed)


def expire(conn: store.Conn, now: float) -> int:
    """Settle reservations left open past their TTL at their estimate (a killed process may
    have made the call and been billed); returns how many. The tick's job."""
    with store.queued_transaction(conn, "budget"):
        rows = conn.execute(
            "SELECT id, day, model, reserved_p FROM costs_calls WHERE state='open' AND expires_at <= ? ORDER BY day",
            (now,),
        ).fetchall()
        locked: set[str] = set()
        for row in rows:
            if row["day"] not in locked:
                lock_day(conn, row["day"])
                locked.add(row["day"])
            conn.execute("UPDATE costs_calls SET state='expired', cost_p=reserved_p WHERE id=?", (row["id"],))
            add_spend(conn, row["day"], row["model"], 1, 0, 0, row["reserved_p"], 0)
        conn.execute("DELETE FROM costs_calls WHERE id < ? AND state = 'expired'", (id_floor(now - KEEP_S),))
        conn.execute("DELETE FROM costs_minutes WHERE minute < ?", (int((now - KEEP_S) // 60),))
    return len(rows)


def calls_summary(conn: store.Conn, now: float, ttl_s: int) -> Calls:
    """Reservations in flight and the per-call recording rate, as of `now`."""
    row = conn.execute(
        "SELECT COUNT(*), SUM(reserved_p), SUM(CASE WHEN expires_at <= ? THEN 1 ELSE 0 END) "
        "FROM costs_calls WHERE state='open'",
        (now,),
    ).fetchone()
    minute = int(now // 60)
    recent = (
        conn.execute(
            "SELECT SUM(calls) FROM costs_minutes WHERE minute > ? AND minute <= ?", (minute - RATE_WINDOW_MIN, minute)
        ).fetchone()[0]
        or 0
    )
    expired = row[2] or 0
    return {
        "in_flight": row[0] - expired,
        "reserved_usd": prices.pico_to_usd(row[1] or 0),
        "expired": expired,
        "recorded_5m": recent,
        "per_min": round(recent / RATE_WINDOW_MIN, 2),
        "ttl_s": ttl_s,
    }
