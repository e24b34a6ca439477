"""The purchase ledger and the unsubscribe list (SQLite): upserts, queries, fees.

A purchase: id, email (trimmed, lower-cased), created (epoch s), amount in minor units
(integer cents) + ISO currency (lower-case), description, status, invoice number, optional
fee (minor units) and optional documents for the receipt and the invoice: a path relative
to `logs/receipts/` or an http(s) URL. Rows are upserted by id, so every source (import,
Stripe sync, demo seed) can be re-run safely. Rows are validated by `rows` (one table of
per-field rules); importing files lives in `importer`.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from echoops.core import clock, config, store
from echoops.core.config import Settings
from echoops.core.errors import NotFound

# Also dropped and rebuilt by large imports (sorting once beats a million random inserts).
EMAIL_INDEX_SQL = "CREATE INDEX portal_purchases_email ON portal_purchases(email, created DESC)"

SCHEMA = store.Schema(
    "portal",
    (
        """
        CREATE TABLE portal_purchases (
            id TEXT PRIMARY KEY,
            email TEXT NOT NULL,
            created REAL NOT NULL,
            amount_cents INTEGER NOT NULL,
            currency TEXT NOT NULL,
            description TEXT NOT NULL DEFAULT '',
            status TEXT NOT NULL DEFAULT 'paid',
            invoice_number TEXT,
            fee_cents INTEGER,
            receipt_doc TEXT,
            invoice_doc TEXT,
            source TEXT NOT NULL,
            updated_at REAL NOT NULL
        ) WITHOUT ROWID;
        CREATE INDEX portal_purchases_email ON portal_purchases(email, created DESC);
        CREATE TABLE portal_suppressions (
            email TEXT PRIMARY KEY,
            unsubscribed_at REAL NOT NULL,
            source TEXT NOT NULL
        ) WITHOUT ROWID;
        """,
        # v2: refunds (minor units). Written by the Stripe sync; imports leave it alone.
        """
        ALTER TABLE portal_purchases ADD COLUMN refunded_cents INTEGER NOT NULL DEFAULT 0;
        """,
    ),
)

COLUMNS = (
    "id",
    "email",
    "created",
    "amount_cents",
    "currency",
    "description",
    "status",
    "invoice_number",
    "fee_cents",
    "receipt_doc",
    "invoice_doc",
    "source",
    "updated_at",
)
_COMPARED = COLUMNS[1:-1]  # everything but id and updated_at
# An unchanged row is left alone: re-importing a file writes nothing and keeps updated_at.
UPSERT_SQL = (
    f"INSERT INTO portal_purchases({','.join(COLUMNS)}) VALUES({','.join('?' * len(COLUMNS))}) "
    "ON CONFLICT(id) DO UPDATE SET "
    + ",".join(f"{c}=excluded.{c}" for c in COLUMNS[1:])
    + f" WHERE ({','.join('portal_purchases.' + c for c in _COMPARED)})"
    + f" IS NOT ({','.join('excluded.' + c for c in _COMPARED)})"
)
RECEIPTS_DIR = "receipts"


def conn_for(s: Settings) -> store.Conn:
    """This thread's store connection with the portal tables migrated."""
    return store.db(s, SCHEMA)


def receipts_dir(s: Settings) -> Path:
    """`logs/receipts/`: the only directory stored documents are ever served from."""
    return s.log_dir / RECEIPTS_DIR


def upsert(rows: Iterable[tuple], *, s: Settings | None = None) -> int:
    """Upsert validated rows (from purchase_row) in one transaction; returns how many."""
    conn = conn_for(s or config.settings())
    rows = list(rows)
    with store.transaction(conn):
        conn.executemany(UPSERT_SQL, rows)
    return len(rows)


# --- queries ------------------------------------------------------------------------------


def purchases_for(email: str, *, limit: int = 100, s: Settings | None = None) -> list[store.Row]:
    """The newest `limit` purchases of one (normalised) email."""
    conn = conn_for(s or config.settings())
    return conn.execute(
        "SELECT id, email, created, amount_cents, currency, description, status, invoice_number, "
        "receipt_doc, invoice_doc, refunded_cents FROM portal_purchases WHERE email=? ORDER BY created DESC LIMIT ?",
        (email, limit),
    ).fetchall()


def purchase(purchase_id: str, *, s: Settings | None = None) -> store.Row:
    """One purchase by id; NotFound otherwise."""
    row = (
        conn_for(s or config.settings())
        .execute(f"SELECT {','.join(COLUMNS)}, refunded_cents FROM portal_purchases WHERE id=?", (purchase_id,))
        .fetchone()
    )
    if row is None:
        raise NotFound(f"no purchase with id {purchase_id!r}")
    return row


def count_upto(conn: store.Conn, limit: int) -> int:
    """Rows in the ledger, counting no further than `limit` (cheap on a big ledger)."""
    sql = "SELECT count(*) FROM (SELECT 1 FROM portal_purchases LIMIT ?) AS upto"
    return conn.execute(sql, (limit,)).fetchone()[0]


def count(*, s: Settings | None = None) -> int:
    """Purchases in the ledger (a full count: use count_upto on hot paths)."""
    return conn_for(s or config.settings()).execute("SELECT count(*) FROM portal_purchases").fetchone()[0]


def fees_by_day(
    *, s: Settings | None = None, since: float | None = None, until: float | None = None
) -> dict[str, dict[str, int]]:
    """Fees in minor units per UTC day and currency, `since` <= created < `until` (epoch s):
    `{"2026-11-27": {"usd": 1234}}`. Purchases without a fee are left out."""
    conn = conn_for(s or config.settings())
    sql = (
        "SELECT date(created, 'unixepoch') AS day, currency, sum(fee_cents) FROM portal_purchases "
        "WHERE fee_cents IS NOT NULL"
    )
    args: list[float] = []
    if since is not None:
        sql += " AND created >= ?"
        args.append(float(since))
    if until is not None:
        sql += " AND created < ?"
        args.append(float(until))
    out: dict[str, dict[str, int]] = {}
    for day, currency, total in conn.execute(sql + " GROUP BY day, currency ORDER BY day", args):
        out.setdefault(day, {})[currency] = int(total)
    return out


# --- suppression list ---------------------------------------------------------------------


def is_unsubscribed(email: str, *, s: Settings | None = None) -> bool:
    """Whether (normalised) `email` is on the suppression list."""
    conn = conn_for(s or config.settings())
    return conn.execute("SELECT 1 FROM portal_suppressions WHERE email=?", (email,)).fetchone() is not None


def unsubscribe(email: str, *, source: str, s: Settings | None = None, now: float | None = None) -> bool:
    """Add `email` to the suppression list; True when it was not on it (idempotent)."""
    conn = conn_for(s or config.settings())
    with store.transaction(conn):
        cur = conn.execute(
            "INSERT INTO portal_suppressions(email, unsubscribed_at, source) VALUES(?,?,?) "
            "ON CONFLICT(email) DO NOTHING",
            (email, clock.now_s(now), source),
        )
    return cur.rowcount == 1


def resubscribe(email: str, *, s: Settings | None = None) -> bool:
    """Remove `email` from the suppression list; True when it was on it."""
    conn = conn_for(s or config.settings())
    with store.transaction(conn):
        cur = conn.execute("DELETE FROM portal_suppressions WHERE email=?", (email,))
    return cur.rowcount == 1
