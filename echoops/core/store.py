"""SQLite state store: `echoops.db` in the log dir, WAL, busy timeout, per-feature schemas.

`PRAGMA user_version` holds the version of the store's own meta schema (cursors and the
feature version table). Each feature owns its tables and declares them as a Schema: an
ordered list of migration scripts; `schema_versions` records how many have run. Migrations
run inside BEGIN IMMEDIATE, so the scheduler and several gunicorn workers opening a new
database at once apply each step exactly once.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from echoops.core.config import Settings
from echoops.core.errors import EchoopsError

_META = [
    """
    CREATE TABLE IF NOT EXISTS schema_versions (
        feature TEXT PRIMARY KEY,
        version INTEGER NOT NULL,
        updated_at REAL NOT NULL
    );
    CREATE TABLE IF NOT EXISTS cursors (
        consumer TEXT NOT NULL,
        source TEXT NOT NULL,
        inode INTEGER NOT NULL,
        offset INTEGER NOT NULL,
        size INTEGER NOT NULL,
        lines INTEGER NOT NULL DEFAULT 0,
        bad INTEGER NOT NULL DEFAULT 0,
        updated_at REAL NOT NULL,
        PRIMARY KEY (consumer, source)
    );
    """,
    # v2: the first bytes of a source at its cursor, so a file replaced under a reused inode
    # number (delete + create, or copytruncate refilled past the offset) is read from 0.
    """
    ALTER TABLE cursors ADD COLUMN head BLOB NOT NULL DEFAULT x'';
    """,
]
META_VERSION = len(_META)

BUSY_TIMEOUT_MS = 15000


class SchemaTooNew(EchoopsError, RuntimeError):
    """The database was written by a newer echoops; refusing to use it beats corrupting it."""

    code = "schema_too_new"
    status = 503
    exit_code = 2


@dataclass(frozen=True)
class Schema:
    """A feature's tables: `feature` name and its migrations, oldest first (never edit one that shipped)."""

    feature: str
    migrations: tuple[str, ...]


_local = threading.local()


class Connection(sqlite3.Connection):
    """sqlite3 connection that remembers which feature schemas it has ensured."""

    ensured: set[str]


def _open(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(
        path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=True, factory=Connection
    )
    conn.ensured = set()
    conn.row_factory = sqlite3.Row
    conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    # WAL lets readers (the dashboard) run while the scheduler writes; NORMAL is durable at
    # each checkpoint and safe against corruption in WAL mode.
    _enable_wal(conn)
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    try:
        _migrate_meta(conn)
    except BaseException:
        conn.close()
        raise
    return conn


def _enable_wal(conn: sqlite3.Connection) -> None:
    """Put the file in WAL mode (persistent, so only the first opener changes it).

    Switching needs an exclusive lock, and SQLite answers "database is locked" at once, without
    the busy handler, when several processes open a fresh file together (the scheduler's jobs
    and the gunicorn workers at `echoops up`): retry within the busy timeout.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    delay = 0.005
    while True:
        try:
            mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
            if mode.lower() != "wal":
                conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.2)


def _migrate_meta(conn: sqlite3.Connection) -> None:
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > META_VERSION:
        raise SchemaTooNew(f"{conn_path(conn)} has store schema v{version}; this echoops knows v{META_VERSION}")
    if version == META_VERSION:
        return
    with transaction(conn):
        current = conn.execute("PRAGMA user_version").fetchone()[0]
        for step, script in enumerate(_META[current:], start=current + 1):
            for stmt in _statements(script):
                conn.execute(stmt)
            conn.execute(f"PRAGMA user_version={step}")


def conn_path(conn: sqlite3.Connection) -> str:
    """The file behind a connection (for messages)."""
    row = conn.execute("PRAGMA database_list").fetchone()
    return row[2] if row else "?"


def _statements(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]


def connect(s: Settings) -> sqlite3.Connection:
    """This thread's connection to the store of `s.log_dir` (opened once per thread and process)."""
    # Fast path for the per-request callers (/healthz, routes): no path resolution, which
    # costs a realpath (an lstat per component). A relative log dir is keyed by the cwd too.
    log_dir = s.log_dir
    fast_key = (log_dir, os.getpid(), None if log_dir.is_absolute() else os.getcwd())
    fast: dict = getattr(_local, "fast", None) or {}
    conn = fast.get(fast_key)
    if conn is not None:
        return conn
    path = s.db_path.resolve() if s.db_path.parent.exists() else s.db_path.absolute()
    key = (str(path), os.getpid())
    conns: dict = getattr(_local, "conns", None) or {}
    _local.conns = conns
    conn = conns.get(key)
    if conn is None:
        conn = conns[key] = _open(path)
    fast[fast_key] = conn
    _local.fast = fast
    return conn


def close_all() -> None:
    """Close this thread's connections (tests, forked children)."""
    for conn in (getattr(_local, "conns", None) or {}).values():
        try:
            conn.close()
        except sqlite3.Error:
            pass
    _local.conns = {}
    _local.fast = {}


def ensure(conn: sqlite3.Connection, schema: Schema) -> None:
    """Apply `schema`'s pending migrations (once per connection; cheap afterwards)."""
    ensured: set = conn.ensured
    if schema.feature in ensured:
        return
    # Inside a caller's transaction the migration joins it and is undone if that rolls back:
    # remember the schema as ensured only when this call committed it.
    outer = conn.in_transaction
    if _feature_version(conn, schema) < len(schema.migrations):
        with transaction(conn):
            current = _feature_version(conn, schema)  # again under the write lock: another process may have migrated
            for script in schema.migrations[current:]:
                for stmt in _statements(script):
                    conn.execute(stmt)
            conn.execute(
                "INSERT INTO schema_versions(feature, version, updated_at) VALUES(?,?,?) "
                "ON CONFLICT(feature) DO UPDATE SET version=excluded.version, updated_at=excluded.updated_at",
                (schema.feature, len(schema.migrations), time.time()),
            )
    if not outer:
        ensured.add(schema.feature)


def _feature_version(conn: sqlite3.Connection, schema: Schema) -> int:
    """The migrations of `schema` already applied (0 for a new feature); SchemaTooNew past the code's."""
    row = conn.execute("SELECT version FROM schema_versions WHERE feature=?", (schema.feature,)).fetchone()
    version = row[0] if row else 0
    if version > len(schema.migrations):
        raise SchemaTooNew(
            f"{schema.feature} schema v{version} in {conn_path(conn)} is newer than this echoops "
            f"(v{len(schema.migrations)})"
        )
    return version


def db(s: Settings, *schemas: Schema) -> sqlite3.Connection:
    """Connection with `schemas` ensured: what a feature calls first."""
    conn = connect(s)
    for schema in schemas:
        ensure(conn, schema)
    return conn


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE ... COMMIT (ROLLBACK on error). Nested use joins the outer transaction."""
    if conn.in_transaction:
        yield conn
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def health(s: Settings) -> bool:
    """True when the store opens and answers a query."""
    try:
        return connect(s).execute("SELECT 1").fetchone()[0] == 1
    except (sqlite3.Error, OSError):
        return False
