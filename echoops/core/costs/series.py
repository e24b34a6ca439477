"""Today's spend through the day: the global AI spend as each tick saw it, for the Costs chart.

Spend is stored per (UTC day, model) (`caps.costs_spend`), with no time of day. Each tick notes
the day's global total at that instant in `costs_points`; the status shows today's points, at
most one per SLOT_S (the latest of each slot), so a day of per-minute demo ticks stays ~300
points. Points older than KEEP_DAYS are dropped as new ones land. The chart draws them from
$0 at midnight (a new day starts from zero), with the cap and the forecast to midnight.
"""

from __future__ import annotations

from echoops.core import clock, store
from echoops.core.costs import prices
from echoops.core.costs.types import SpendPoint

SCHEMA = store.Schema(
    "costs_series",
    (
        """
        CREATE TABLE costs_points (
            day TEXT NOT NULL,
            ts REAL NOT NULL,
            spent_p INTEGER NOT NULL,
            PRIMARY KEY (day, ts)
        );
        """,
    ),
)

SLOT_S = 300
KEEP_DAYS = 2


def record(conn: store.Conn, now: float) -> None:
    """Note today's global spend (pico-dollars, from costs_spend) as of `now`; call it inside the
    tick's transaction, after the ingest landed."""
    store.ensure(conn, SCHEMA)
    day = clock.day_iso(now)
    spent = conn.execute("SELECT coalesce(sum(cost_p), 0) FROM costs_spend WHERE day=?", (day,)).fetchone()[0]
    conn.execute(
        "INSERT INTO costs_points(day, ts, spent_p) VALUES(?,?,?) "
        "ON CONFLICT(day, ts) DO UPDATE SET spent_p=excluded.spent_p",
        (day, now, spent),
    )
    conn.execute("DELETE FROM costs_points WHERE day < ?", (clock.day_iso(now - KEEP_DAYS * 86400),))


def points(conn: store.Conn, now: float) -> list[SpendPoint]:
    """Today's (UTC) global spend as ticks saw it, oldest first, up to `now`: the latest point of
    each SLOT_S, in USD."""
    store.ensure(conn, SCHEMA)
    rows = conn.execute(
        "SELECT ts, spent_p FROM costs_points WHERE day=? AND ts <= ? ORDER BY ts", (clock.day_iso(now), now)
    ).fetchall()
    latest: dict[int, tuple[float, int]] = {}  # slot -> its latest point (a day holds a few hundred)
    for ts, spent in rows:
        latest[int(ts // SLOT_S)] = (ts, spent)
    return [{"ts": clock.iso(ts), "spent_usd": prices.pico_to_usd(spent)} for ts, spent in latest.values()]
