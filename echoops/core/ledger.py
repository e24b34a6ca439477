"""The purchase ledger and the unsubscribe list (SQLite), and the importer that fills the ledger.

A purchase: id, email (trimmed, lower-cased), created (epoch s), amount in minor units
(integer cents) + ISO currency (lower-case), description, status, invoice number, optional
fee (minor units) and optional documents for the receipt and the invoice: a path relative
to `logs/receipts/` or an http(s) URL. Rows are upserted by id, so every source (import,
Stripe sync, demo seed) can be re-run safely.
"""

from __future__ import annotations

import csv
import io
import posixpath
import re
import sqlite3
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson

from echoops.core import clock, config, store
from echoops.core.config import Settings
from echoops.core.errors import NotFound, ValidationError

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
UPSERT_SQL = (
    f"INSERT INTO portal_purchases({','.join(COLUMNS)}) VALUES({','.join('?' * len(COLUMNS))}) "
    "ON CONFLICT(id) DO UPDATE SET " + ",".join(f"{c}=excluded.{c}" for c in COLUMNS[1:])
)
REQUIRED = ("id", "email", "created", "amount_cents", "currency", "description")
OPTIONAL = ("invoice_number", "fee_cents", "document", "invoice_document", "status")
BATCH = 20_000
MAX_REPORTED_ERRORS = 100
MAX_TEXT = 1000
RECEIPTS_DIR = "receipts"

_LABEL = r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?"
EMAIL_RE = re.compile(rf"^[a-z0-9.!#$%&'*+/=?^_`{{|}}~-]+@{_LABEL}(?:\.{_LABEL})+$")


def conn_for(s: Settings) -> sqlite3.Connection:
    return store.db(s, SCHEMA)


# --- validation ---------------------------------------------------------------------------


def normalize_email(value: object, *, field: str = "email") -> str:
    """Trimmed, lower-cased email; ValidationError naming `field` when it is not an address."""
    if not isinstance(value, str):
        raise ValidationError("email must be a string", field=field)
    email = value.strip().lower()
    if len(email) > 254 or not EMAIL_RE.match(email):
        raise ValidationError(f"{value[:80]!r} is not a valid email address", field=field)
    return email


def receipts_dir(s: Settings) -> Path:
    return s.log_dir / RECEIPTS_DIR


def check_document(value: str) -> str:
    """A document reference: an http(s) URL, or a relative path inside logs/receipts/ (normalised)."""
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
    elif type(value) is str:
        try:
            cents = int(value.strip(), 10)
        except ValueError:
            raise ValueError(f"{field} must be a whole number of minor units") from None
    elif type(value) is float and value.is_integer():
        cents = int(value)
    else:
        raise ValueError(f"{field} must be a whole number of minor units")
    if cents < 0:
        raise ValueError(f"{field} must be >= 0")
    if cents > 10**15:
        raise ValueError(f"{field} is absurdly large")
    return cents


def _created(value: Any) -> float:
    if type(value) is str:
        v = value.strip()
        if v[:1].isdigit() and "-" not in v and ":" not in v:
            try:
                value = float(v)
            except ValueError:
                pass
        else:
            value = v
    ts = clock.parse_ts(value)
    if ts is None:
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
    """One validated ledger row (tuple in COLUMNS order) from a record; ValueError naming the field."""
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
        created = _created(rec["created"])
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


# --- import -------------------------------------------------------------------------------


def _ndjson_records(fh) -> Iterator[tuple[int, Any, str | None]]:
    loads = orjson.loads
    for n, line in enumerate(fh, start=1):
        try:
            rec = loads(line)
        except orjson.JSONDecodeError:
            if line.strip():
                yield n, None, "not valid JSON"
            continue
        yield n, rec, None if type(rec) is dict else "not a JSON object"


def _csv_records(fh) -> Iterator[tuple[int, Any, str | None]]:
    text = io.TextIOWrapper(fh, encoding="utf-8-sig", errors="strict", newline="")
    reader = csv.reader(text)
    try:
        header = [h.strip().lower() for h in next(reader)]
    except StopIteration:
        return
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise ValidationError(f"CSV header lacks column(s): {', '.join(missing)}", field="header")
    width = len(header)
    prev = reader.line_num
    for row in reader:
        n = prev + 1  # first physical line of the record (a quoted field may span lines)
        prev = reader.line_num
        if not row:
            continue
        if len(row) != width:
            yield n, None, f"expected {width} fields, found {len(row)}"
            continue
        yield n, dict(zip(header, row, strict=True)), None


def _detect_format(path: Path, fh) -> str:
    head = fh.peek(64)[:64] if hasattr(fh, "peek") else b""
    if path.suffix.lower() in (".ndjson", ".jsonl", ".json") or head.lstrip().startswith(b"{"):
        return "ndjson"
    return "csv"


def import_purchases(
    path: str | Path,
    *,
    strict: bool = False,
    fmt: str = "auto",
    source: str = "import",
    s: Settings | None = None,
    now: float | None = None,
) -> dict[str, Any]:
    """Upsert purchases from an NDJSON or CSV file; report rows, landed, bad (with line numbers), rate.

    Idempotent by id. Bad rows are reported and skipped; with `strict` any bad row lands none.
    """
    s = s or config.settings()
    path = Path(path)
    if fmt not in ("auto", "csv", "ndjson"):
        raise ValidationError("format must be auto, csv or ndjson", field="format")
    try:
        fh = open(path, "rb")
    except FileNotFoundError:
        raise NotFound(f"no such file: {path}") from None
    except IsADirectoryError:
        raise ValidationError(f"{path} is a directory", field="file") from None
    started = time.perf_counter()
    stamp = clock.now_s(now)
    errors: list[dict[str, Any]] = []
    bad = rows = landed = 0
    conn = conn_for(s)
    with fh:
        kind = _detect_format(path, fh) if fmt == "auto" else fmt
        records = _ndjson_records(fh) if kind == "ndjson" else _csv_records(fh)
        batch: list[tuple] = []
        try:
            with store.transaction(conn):
                for n, rec, problem in records:
                    rows += 1
                    try:
                        if problem is not None:
                            raise ValueError(problem)
                        batch.append(purchase_row(rec, source=source, now=stamp))
                    except ValueError as exc:
                        bad += 1
                        if len(errors) < MAX_REPORTED_ERRORS:
                            errors.append({"line": n, "error": str(exc)})
                        continue
                    if len(batch) >= BATCH:
                        conn.executemany(UPSERT_SQL, batch)
                        landed += len(batch)
                        batch.clear()
                if batch:
                    conn.executemany(UPSERT_SQL, batch)
                    landed += len(batch)
                if strict and bad:
                    raise _StrictAbort
        except _StrictAbort:
            landed = 0
        except UnicodeDecodeError as exc:
            raise ValidationError(f"{path} is not UTF-8 ({exc.reason})", field="file") from None
    elapsed = time.perf_counter() - started
    return {
        "file": str(path),
        "format": kind,
        "strict": strict,
        "rows": rows,
        "landed": landed,
        "bad": bad,
        "errors": errors,
        "errors_truncated": bad > len(errors),
        "elapsed_s": round(elapsed, 3),
        "rows_per_s": int(rows / elapsed) if elapsed > 0 else None,
    }


class _StrictAbort(Exception):
    """Raised inside the import transaction to roll it back (strict mode, some rows bad)."""


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


def count(*, s: Settings | None = None) -> int:
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
