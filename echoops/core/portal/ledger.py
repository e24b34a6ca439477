"""The purchase ledger and the unsubscribe list (SQLite): row validation, upserts, queries, fees.

A purchase: id, email (trimmed, lower-cased), created (epoch s), amount in minor units
(integer cents) + ISO currency (lower-case), description, status, invoice number, optional
fee (minor units) and optional documents for the receipt and the invoice: a path relative
to `logs/receipts/` or an http(s) URL. Rows are upserted by id, so every source (import,
Stripe sync, demo seed) can be re-run safely. Importing files lives in `importer`.
"""

from __future__ import annotations

import posixpath
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from echoops.core import clock, config, parsers, store
from echoops.core.config import Settings
from echoops.core.errors import NotFound, ValidationError

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
    + f" WHERE ({','.join(_COMPARED)}) IS NOT ({','.join('excluded.' + c for c in _COMPARED)})"
)
REQUIRED = ("id", "email", "created", "amount_cents", "currency", "description")
OPTIONAL = ("invoice_number", "fee_cents", "document", "invoice_document", "status")
MAX_TEXT = 1000
RECEIPTS_DIR = "receipts"
MAX_CENTS = 10**15
_MIN_TS, _MAX_TS = 946684800.0, 7258118400.0  # clock.parse_ts's range: 2000..2200


def conn_for(s: Settings) -> sqlite3.Connection:
    """This thread's store connection with the portal tables migrated."""
    return store.db(s, SCHEMA)


# --- validation ---------------------------------------------------------------------------


def normalize_email(value: object, *, field: str = "email") -> str:
    """Trimmed, lower-cased email; ValidationError naming `field` when it is not an address."""
    if not isinstance(value, str):
        raise ValidationError("email must be a string", field=field)
    email = value.strip().lower()
    if not parsers.is_email(email):
        raise ValidationError(f"{value[:80]!r} is not a valid email address", field=field)
    return email


def receipts_dir(s: Settings) -> Path:
    """`logs/receipts/`: the only directory stored documents are ever served from."""
    return s.log_dir / RECEIPTS_DIR


def check_document(value: str) -> str:
    """A document reference: an http(s) URL, or a relative path inside logs/receipts/ (normalised).

    Neither may hold a control character or line break: a URL is answered as a `Location`
    header, a path's suffix names the download in `Content-Disposition`."""
    found = parsers.control_char(value)
    if found is not None:
        raise ValueError(f"must not contain control characters or line breaks ({found})")
    if value.startswith(("https://", "http://")):
        if any(c.isspace() for c in value) or len(value) > 2000:
            raise ValueError("URL contains whitespace or is too long")
        return value
    if "\x00" in value or "\\" in value or value.startswith("/") or ":" in value.split("/", 1)[0]:
        raise ValueError("must be a path relative to logs/receipts/ or an http(s) URL")
    norm = posixpath.normpath(value)
    if norm.startswith("..") or norm in (".", "") or "/../" in f"/{norm}/":
        raise ValueError("path escapes logs/receipts/")
    return norm


def _int_cents(value: Any, field: str) -> int:
    if type(value) is int:
        cents = value
    elif type(value) is float and value.is_integer():
        cents = int(value)
    elif type(value) is str and value.strip().lstrip("-").isdigit() and value.strip().isascii():
        if len(value.strip()) > 20:
            raise ValueError(f"{field} is absurdly large")
        cents = int(value.strip(), 10)  # ASCII digits only: no "1_000", "+5" or other scripts' digits
    else:
        raise ValueError(f"{field} must be a whole number of minor units")
    if cents < 0:
        raise ValueError(f"{field} must be >= 0")
    if cents > MAX_CENTS:
        raise ValueError(f"{field} is absurdly large")
    return cents


def _created(value: Any, now: float) -> float:
    """A purchase's `created`: ISO-8601 or epoch seconds (a number or digits), by clock.line_ts's
    rule: within 2000..2200 and not after now + clock.MAX_SKEW_S."""
    if type(value) is str:
        v = value.strip()
        if v[:1].isdigit() and "-" not in v and ":" not in v:
            try:
                value = float(v)
            except ValueError:
                pass
        else:
            value = v
    ts = clock.line_ts(value, now)
    if ts == "future":
        raise ValueError(f"is in the future (more than {clock.MAX_SKEW_S:.0f} s after now)")
    if isinstance(ts, str):
        raise ValueError("created must be ISO-8601 or epoch seconds (2000..2200)")
    return ts


def _opt_text(value: Any, field: str) -> str | None:
    if value is None:
        return None
    if type(value) is not str:
        raise ValueError(f"{field} must be a string")
    v = value.strip()
    if len(v) > MAX_TEXT:
        raise ValueError(f"{field} is longer than {MAX_TEXT} characters")
    return v or None


def purchase_row(rec: dict[str, Any], *, source: str, now: float) -> tuple:
    """One validated ledger row (tuple in COLUMNS order) from a record; ValueError naming the field.

    A fast path takes the common shapes (what 1M-row imports are made of); anything else goes
    through `checked_row`, which gives the same row or the precise error. A property test
    holds the two to the same answers.
    """
    try:
        pid = rec["id"]
        email = rec["email"]
        created = rec["created"]
        amount = rec["amount_cents"]
        currency = rec["currency"]
        description = rec["description"]
    except KeyError:
        return checked_row(rec, source=source, now=now)
    get = rec.get
    fee = get("fee_cents")
    number = get("invoice_number")
    status = get("status")
    if (
        type(pid) is not str
        or len(pid) > 200
        or type(email) is not str
        or type(currency) is not str
        or type(description) is not str
        or get("document") not in (None, "")
        or get("invoice_document") not in (None, "")
        or (number is not None and type(number) is not str)
        or (status is not None and type(status) is not str)
    ):
        return checked_row(rec, source=source, now=now)
    pid = pid.strip()
    email = email.strip().lower()
    currency = currency.strip().lower()
    description = description.strip()
    t = type(created)
    if t is int or t is float:
        ok_ts = _MIN_TS <= created <= _MAX_TS and created <= now + clock.MAX_SKEW_S
    elif t is str:
        try:
            created, ok_ts = _created(created, now), True
        except ValueError:
            ok_ts = False
    else:
        ok_ts = False
    if type(amount) is str and len(amount) <= 16 and amount.isdigit() and amount.isascii():
        amount = int(amount)
    if type(fee) is str:
        fee = int(fee) if len(fee) <= 16 and fee.isdigit() and fee.isascii() else (None if fee == "" else -1)
    if (
        pid
        and ok_ts
        and type(amount) is int
        and 0 <= amount <= MAX_CENTS
        and (fee is None or (type(fee) is int and 0 <= fee <= MAX_CENTS))
        and len(currency) == 3
        and currency.isalpha()
        and currency.isascii()
        and len(description) <= MAX_TEXT
        and parsers.is_email(email)
    ):
        if number is not None:
            number = number.strip() or None
            if number is not None and len(number) > MAX_TEXT:
                return checked_row(rec, source=source, now=now)
        if status is not None:
            status = status.strip().lower() or None
            if status is not None and len(status) > MAX_TEXT:
                return checked_row(rec, source=source, now=now)
        return (pid, email, float(created), amount, currency, description, status or "paid", number, fee,
                None, None, source, now)  # fmt: skip
    return checked_row(rec, source=source, now=now)


def checked_row(rec: dict[str, Any], *, source: str, now: float) -> tuple:
    """purchase_row's careful path: every field checked in order, the first problem raised by name."""
    for name in REQUIRED:
        value = rec.get(name)
        # description must be present as a column/key but may be empty
        if (value is None or value == "") and (name != "description" or name not in rec):
            raise ValueError(f"{name}: missing")
    pid = rec["id"]
    if type(pid) is int:
        pid = str(pid)
    if type(pid) is not str or not pid.strip() or len(pid) > 200:
        raise ValueError("id: must be a non-empty string of at most 200 characters")
    try:
        email = normalize_email(rec["email"])
    except ValidationError as exc:
        raise ValueError(f"email: {exc.detail}") from None
    try:
        created = _created(rec["created"], now)
    except ValueError as exc:
        raise ValueError(f"created: {exc}") from None
    amount = _int_cents(rec["amount_cents"], "amount_cents")
    currency = rec["currency"]
    if type(currency) is not str or len(currency.strip()) != 3 or not currency.strip().isalpha():
        raise ValueError("currency: must be a 3-letter ISO code")
    currency = currency.strip().lower()
    if not currency.isascii():
        raise ValueError("currency: must be a 3-letter ISO code")
    description = _opt_text(rec.get("description"), "description") or ""
    fee = rec.get("fee_cents")
    fee = None if fee is None or fee == "" else _int_cents(fee, "fee_cents")
    docs = []
    for name in ("document", "invoice_document"):
        doc = _opt_text(rec.get(name), name)
        if doc is not None:
            try:
                doc = check_document(doc)
            except ValueError as exc:
                raise ValueError(f"{name}: {exc}") from None
        docs.append(doc)
    status = _opt_text(rec.get("status"), "status") or "paid"
    invoice_number = _opt_text(rec.get("invoice_number"), "invoice_number")
    return (
        pid.strip(),
        email,
        created,
        amount,
        currency,
        description,
        status.lower(),
        invoice_number,
        fee,
        docs[0],
        docs[1],
        source,
        now,
    )


def upsert(rows: Iterable[tuple], *, s: Settings | None = None) -> int:
    """Upsert validated rows (from purchase_row) in one transaction; returns how many."""
    conn = conn_for(s or config.settings())
    rows = list(rows)
    with store.transaction(conn):
        conn.executemany(UPSERT_SQL, rows)
    return len(rows)


# --- queries ------------------------------------------------------------------------------


def purchases_for(email: str, *, limit: int = 100, s: Settings | None = None) -> list[sqlite3.Row]:
    """The newest `limit` purchases of one (normalised) email."""
    conn = conn_for(s or config.settings())
    return conn.execute(
        "SELECT id, email, created, amount_cents, currency, description, status, invoice_number, "
        "receipt_doc, invoice_doc FROM portal_purchases WHERE email=? ORDER BY created DESC LIMIT ?",
        (email, limit),
    ).fetchall()


def purchase(purchase_id: str, *, s: Settings | None = None) -> sqlite3.Row:
    """One purchase by id; NotFound otherwise."""
    row = (
        conn_for(s or config.settings())
        .execute(f"SELECT {','.join(COLUMNS)} FROM portal_purchases WHERE id=?", (purchase_id,))
        .fetchone()
    )
    if row is None:
        raise NotFound(f"no purchase with id {purchase_id!r}")
    return row


def count_upto(conn: sqlite3.Connection, limit: int) -> int:
    """Rows in the ledger, counting no further than `limit` (cheap on a big ledger)."""
    sql = "SELECT count(*) FROM (SELECT 1 FROM portal_purchases LIMIT ?)"
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
