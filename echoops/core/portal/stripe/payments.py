"""Which ledger purchase each Stripe payment belongs to, kept across syncs.

`portal_stripe_payments` has a row per charge the sync has read (its purchase: its invoice's
id, or its own id when it is a purchase of its own; its fee, refunded amount, receipt URL and
payment intent) and a row per payment intent or charge an invoice named. A later, narrower
sync (`--since`) uses it to attach a charge or a refund to the invoice an earlier sync
landed, and to fold a charge landed alone into its invoice once the link shows up. The fee,
refunds and receipt link of a purchase are derived from its charges' rows (`totals`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from echoops.core import store

SCHEMA = store.Schema(
    "portal_stripe",
    (
        """
        CREATE TABLE portal_stripe_payments (
            payment_id TEXT PRIMARY KEY,
            purchase_id TEXT NOT NULL,
            kind TEXT NOT NULL,
            payment_intent TEXT,
            created REAL,
            fee_cents INTEGER,
            refunded_cents INTEGER NOT NULL DEFAULT 0,
            receipt_url TEXT,
            updated_at REAL NOT NULL
        ) WITHOUT ROWID;
        CREATE INDEX portal_stripe_payments_purchase ON portal_stripe_payments(purchase_id);
        CREATE INDEX portal_stripe_payments_intent ON portal_stripe_payments(payment_intent);
        """,
    ),
)
_CHUNK = 500  # ids per `IN (...)` query


@dataclass
class ChargeLink:
    """What a sync read about one succeeded charge."""

    id: str
    purchase_id: str  # its invoice's id, or its own
    payment_intent: str | None
    created: float | None
    fee: int | None
    refunded: int
    receipt_url: str | None


def chunks(items: Iterable[str]) -> Iterable[list[str]]:
    """Sorted distinct ids, _CHUNK at a time (for `IN (...)` queries)."""
    ids = sorted(set(items))
    for i in range(0, len(ids), _CHUNK):
        yield ids[i : i + _CHUNK]


def known(conn: store.Conn, ids: Iterable[str]) -> dict[str, str]:
    """payment id -> purchase id, for the ids earlier syncs recorded."""
    out: dict[str, str] = {}
    for chunk in chunks(ids):
        marks = ",".join("?" * len(chunk))
        sql = f"SELECT payment_id, purchase_id FROM portal_stripe_payments WHERE payment_id IN ({marks})"
        out.update(conn.execute(sql, chunk).fetchall())
    return out


def _fold(conn: store.Conn, charge_ids: Iterable[str]) -> int:
    """Delete Stripe rows landed for charges that turned out to pay an invoice; how many."""
    removed = 0
    for cid in charge_ids:
        removed += conn.execute("DELETE FROM portal_purchases WHERE id=? AND source='stripe'", (cid,)).rowcount
    return removed


def record(conn: store.Conn, charges: list[ChargeLink], links: dict[str, str], stamp: float) -> tuple[set, int]:
    """Store this sync's charges and invoice links (inside the caller's transaction).

    `links` maps payment intent and charge ids to invoice ids. Returns the purchase ids whose
    payments changed and how many stale single-charge purchases were folded into an invoice.
    """
    touched: set[str] = set()
    stale: set[str] = set()
    for c in charges:
        conn.execute(
            "INSERT INTO portal_stripe_payments(payment_id, purchase_id, kind, payment_intent, created, fee_cents, "
            "refunded_cents, receipt_url, updated_at) VALUES(?,?,'charge',?,?,?,?,?,?) ON CONFLICT(payment_id) "
            "DO UPDATE SET purchase_id=excluded.purchase_id, kind='charge', payment_intent=excluded.payment_intent, "
            "created=excluded.created, fee_cents=excluded.fee_cents, refunded_cents=excluded.refunded_cents, "
            "receipt_url=coalesce(excluded.receipt_url, portal_stripe_payments.receipt_url), "
            "updated_at=excluded.updated_at",
            (c.id, c.purchase_id, c.payment_intent, c.created, c.fee, c.refunded, c.receipt_url, stamp),
        )
        touched.add(c.purchase_id)
        if c.purchase_id != c.id:
            stale.add(c.id)
    for pid, invoice_id in sorted(links.items()):
        kind = "payment_intent" if pid.startswith("pi_") else "charge"
        before = conn.execute("SELECT purchase_id FROM portal_stripe_payments WHERE payment_id=?", (pid,)).fetchone()
        conn.execute(
            "INSERT INTO portal_stripe_payments(payment_id, purchase_id, kind, updated_at) VALUES(?,?,?,?) "
            "ON CONFLICT(payment_id) DO UPDATE SET purchase_id=excluded.purchase_id, updated_at=excluded.updated_at "
            "WHERE portal_stripe_payments.purchase_id IS NOT excluded.purchase_id",
            (pid, invoice_id, kind, stamp),
        )
        if kind == "charge" and before is not None and before[0] != invoice_id:
            stale.add(pid)  # landed alone (or linked elsewhere) by an earlier sync
            touched.add(invoice_id)
            if before[0] != pid:
                touched.add(before[0])
        if kind == "payment_intent":
            # charges of this intent read by earlier syncs, before the invoice link was known
            moved = conn.execute(
                "SELECT payment_id FROM portal_stripe_payments WHERE payment_intent=? AND purchase_id IS NOT ?",
                (pid, invoice_id),
            ).fetchall()
            for (cid,) in moved:
                conn.execute(
                    "UPDATE portal_stripe_payments SET purchase_id=?, updated_at=? WHERE payment_id=?",
                    (invoice_id, stamp, cid),
                )
                stale.add(cid)
                touched.add(invoice_id)
    return touched, _fold(conn, stale - touched)


def totals(conn: store.Conn, purchase_ids: Iterable[str]) -> dict[str, tuple[int | None, int, str | None]]:
    """Per purchase, from its charges: (fee total, None when no fee is known; refunded total;
    the newest receipt URL)."""
    out: dict[str, tuple[int | None, int, str | None]] = {}
    for chunk in chunks(purchase_ids):
        marks = ",".join("?" * len(chunk))
        rows = conn.execute(
            "SELECT purchase_id, sum(fee_cents), count(fee_cents), sum(refunded_cents), "
            "(SELECT receipt_url FROM portal_stripe_payments r WHERE r.purchase_id = p.purchase_id "
            "AND r.kind = 'charge' AND r.receipt_url IS NOT NULL "
            "ORDER BY r.created DESC NULLS LAST, r.payment_id DESC LIMIT 1) "
            f"FROM portal_stripe_payments p WHERE kind='charge' AND purchase_id IN ({marks}) GROUP BY purchase_id",
            chunk,
        )
        for pid, fee_sum, fee_n, refunded, receipt in rows:
            out[pid] = (fee_sum if fee_n else None, refunded or 0, receipt)
    return out
