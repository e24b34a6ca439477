"""The state store: one interface, two backends. Unset `ECHOOPS_DB_URL`: SQLite, `echoops.db` in
the log dir (WAL, busy timeout). `ECHOOPS_DB_URL=postgresql://...`: every table in PostgreSQL
(`postgres.py`: psycopg 3, a connection pool). Features call `db`/`connect`, `ensure`,
`transaction`, `queued_transaction` and `conn.execute(...)` with the SQL of `dialect.py`;
none of them knows which backend is in use.

Transactions (`transaction`): SQLite's BEGIN IMMEDIATE takes the database's write lock, so
a transaction's reads and writes never interleave with another writer's. PostgreSQL gets
the same guarantee from a store-wide advisory lock taken with BEGIN (`STORE_LOCK`, held to
COMMIT), so every read-check-write that is safe on SQLite is safe across instances.
`transaction(conn, lock=None)` skips that lock: the statements serialise through the row
locks they take (`SELECT ... FOR UPDATE SKIP LOCKED` for the pager outbox's claims), and
`lock="<name>"` serialises only with the transactions of that name (one host's SLO ingest).
On SQLite every form is BEGIN IMMEDIATE.

`PRAGMA user_version` holds the version of the store's own meta schema (cursors and the
feature version table). Each feature owns its tables and declares them as a Schema: an
ordered list of migration scripts; `schema_versions` records how many have run. Migrations
run inside BEGIN IMMEDIATE, so the scheduler and several gunicorn workers opening a new
database at once apply each step exactly once.

A long-lived connection (a gunicorn worker's) notices when `echoops.db` is deleted or replaced
under it and reopens the file at its path; a write whose file went away before COMMIT is rolled
back and fails with StoreUnavailable (HTTP 503) rather than "succeeding" into an unlinked file.
A connection that hit a read-only, full-disk or I/O error is reopened on its next use, so a
file that was briefly read-only does not leave a worker read-only until restart.
"""

from __future__ import annotations

import errno
import fcntl
import os
import sqlite3
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, cast

from echoops.core.config import Settings
from echoops.core.dialect import for_sqlite
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
        "offset" INTEGER NOT NULL,
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
    # v3: cursors per host and source (several hosts ingest their own files into one PostgreSQL
    # store). Existing cursors belong to host '' (an SQLite store is one host's: see `host`).
    """
    CREATE TABLE cursors_v3 (
        host TEXT NOT NULL DEFAULT '',
        consumer TEXT NOT NULL,
        source TEXT NOT NULL,
        inode INTEGER NOT NULL,
        "offset" INTEGER NOT NULL,
        size INTEGER NOT NULL,
        lines INTEGER NOT NULL DEFAULT 0,
        bad INTEGER NOT NULL DEFAULT 0,
        updated_at REAL NOT NULL,
        head BLOB NOT NULL DEFAULT x'',
        PRIMARY KEY (host, consumer, source)
    );
    INSERT INTO cursors_v3(host, consumer, source, inode, "offset", size, lines, bad, updated_at, head)
    SELECT '', consumer, source, inode, "offset", size, lines, bad, updated_at, head FROM cursors;
    DROP TABLE cursors;
    ALTER TABLE cursors_v3 RENAME TO cursors;
    """,
]
META_VERSION = len(_META)
STORE_LOCK = "echoops:store"  # PostgreSQL: the advisory lock every default transaction takes


class Cursor(Protocol):
    """What `execute` returns: rows (by position and by column name), `rowcount`."""

    rowcount: int

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Conn(Protocol):
    """A store connection, either backend: what features are handed and call."""

    @property
    def in_transaction(self) -> bool: ...

    def execute(self, sql: str, parameters: Any = ..., /) -> Any: ...

    def executemany(self, sql: str, parameters: Any, /) -> Any: ...


Row = Any  # sqlite3.Row or postgres.Row: row[0], row["name"], row.keys()
# Exceptions a store call can raise besides StoreUnavailable (extended by the PostgreSQL
# backend when it is loaded); `except store.Error` is evaluated when an error is raised.
Error: tuple[type[Exception], ...] = (sqlite3.Error,)


def errors(*extra: type[BaseException]) -> tuple[type[BaseException], ...]:
    """`store.Error` and `extra`, for an `except` that also catches other failures."""
    return (*Error, *extra)


BUSY_TIMEOUT_MS = 15000


class StoreUnavailable(EchoopsError):
    """The store cannot take a write (disk full, read-only, I/O error, file gone): retry later."""

    code = "store_unavailable"
    status = 503
    exit_code = 1


# SQLite primary result codes that mean "the store is unusable right now", not "your query is wrong".
_UNAVAILABLE_CODES = {
    3: "SQLITE_PERM",
    5: "SQLITE_BUSY",
    8: "SQLITE_READONLY",
    10: "SQLITE_IOERR",
    11: "SQLITE_CORRUPT",
    13: "SQLITE_FULL",
    14: "SQLITE_CANTOPEN",
    26: "SQLITE_NOTADB",
}
_UNAVAILABLE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO}


def unavailable(exc: BaseException) -> StoreUnavailable | None:
    """The StoreUnavailable that `exc` amounts to (a full disk, a read-only file...), or None.

    For the surfaces' error mapping: a query error or a bug stays what it is (None).
    """
    if isinstance(exc, StoreUnavailable):
        return exc
    if type(exc).__module__.startswith(("psycopg", "psycopg_pool")):
        from echoops.core import postgres  # lazy: psycopg is loaded only with ECHOOPS_DB_URL (it raised this)

        if not postgres.is_unavailable(exc):
            return None
        return StoreUnavailable(f"the database is unavailable: {postgres.describe(exc)}")
    if isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorcode", None)
        if code is None or (code & 0xFF) not in _UNAVAILABLE_CODES:
            return None
        return StoreUnavailable(f"the store is unavailable: {exc} ({_UNAVAILABLE_CODES[code & 0xFF]})")
    if isinstance(exc, OSError) and exc.errno in _UNAVAILABLE_ERRNOS:
        where = f" ({Path(exc.filename).name})" if exc.filename else ""
        return StoreUnavailable(f"the store is unavailable: {exc.strerror or os.strerror(exc.errno)}{where}")
    return None


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
    """sqlite3 connection that remembers which feature schemas it has ensured, which file it
    opened (`path`, `ident` = st_dev, st_ino) and whether it hit a store failure (`broken`)."""

    ensured: set[str]
    path: str
    ident: tuple[int, int] | None
    wal_ident: tuple[int, int] | None
    broken: bool
    checked_at = -1.0  # time.monotonic() of the last check that the file is still ours
    stamp_memo: tuple[float, tuple | None] | None = None  # (time.monotonic(), change_stamp)

    backend = "sqlite"
    host = ""  # an SQLite store is one host's: its cursors and rows need no host key

    def execute(self, sql, *args):
        self.stamp_memo = None  # whatever this statement does, the next stamp is read afresh
        if "FOR " in sql:  # a row-locking SELECT: the write lock covers it (dialect.for_sqlite)
            sql = for_sqlite(sql)
        try:
            return super().execute(sql, *args)
        except sqlite3.Error as exc:
            self._failed(exc)
            raise

    def executemany(self, *args):
        self.stamp_memo = None
        try:
            return super().executemany(*args)
        except sqlite3.Error as exc:
            self._failed(exc)
            raise

    def _failed(self, exc: sqlite3.Error) -> None:
        # A connection opened while the file was read-only stays read-only (SQLite falls back
        # to O_RDONLY): reopen on next use. Closing now would break the caller's ROLLBACK.
        if unavailable(exc) is not None:
            self.broken = True
            note_failure()


failures = 0  # store failures seen in this process (the health probe re-checks when it moves)


def note_failure() -> None:
    """Count a store failure (a connection's, or one a surface mapped to StoreUnavailable)."""
    global failures
    failures += 1


def _ident(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


# Checks a connection (one thread's) made this recently stand for new ones: the per-request
# readers (the auth hook, the status route) ask twice within one request, and each stat hands
# the GIL to another thread of the worker.
RECHECK_S = 0.001


def _usable(conn: sqlite3.Connection) -> bool:
    """False when `conn` hit a store failure or its file was deleted or replaced since it opened
    (looked at once per RECHECK_S; a write re-checks before it commits)."""
    c = cast(Connection, conn)
    if getattr(c, "broken", False):
        return False
    now = time.monotonic()
    if now - c.checked_at < RECHECK_S:
        return True
    if _ident(c.path) != c.ident:
        return False
    c.checked_at = now
    return True


def _open(path: Path, stale_wal: tuple[int, int] | None = None) -> sqlite3.Connection:
    """Open `path`; `stale_wal` is the `-wal` a closed connection to a replaced file used."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if stale_wal is not None or not path.exists():
        _drop_stale_sidecars(path, stale_wal)
    conn = sqlite3.connect(
        path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=True, factory=Connection
    )
    conn.ensured = set()
    conn.broken = False
    conn.path = str(path)
    conn.ident = _ident(conn.path)
    conn.wal_ident = None
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
    # The WAL keeps its inode while any connection is open (nobody can checkpoint-and-delete it),
    # so this identifies the WAL of *this* file when the file is later replaced under us.
    conn.wal_ident = _ident(conn.path + "-wal")
    conn.broken = False  # a "locked" retried away while switching to WAL is not a failure
    return conn


def _drop_stale_sidecars(path: Path, stale_wal: tuple[int, int] | None) -> None:
    """Remove a `-wal`/`-shm` that belong to a database file that is gone, before opening `path`.

    SQLite replays whatever `-wal` sits next to a file, and shares the `-shm` index with every
    process that has it mapped: a deleted file's WAL laid over a new file corrupts it. They are
    stale when `path` does not exist, or when `path` was replaced and the `-wal` is still the
    very file our connection to the old one used (`stale_wal`); a `-wal` another process made
    for the new file is kept. Under a lock on the directory, re-checked inside, so processes
    reopening at once never delete each other's fresh files.
    """
    try:
        fd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        missing = not path.exists()
        if missing or (stale_wal is not None and _ident(f"{path}-wal") == stale_wal):
            for suffix in ("-wal", "-shm"):
                try:
                    os.unlink(f"{path}{suffix}")
                except FileNotFoundError:
                    pass
        if missing:  # create it while holding the lock: the next opener sees it and deletes nothing
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o644))
    except OSError:
        pass  # the open that follows reports the real problem
    finally:
        os.close(fd)


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


def conn_path(conn: Conn) -> str:
    """The file (or database server, without credentials) behind a connection (for messages)."""
    if getattr(conn, "backend", "sqlite") != "sqlite":
        return cast(str, getattr(conn, "path", "?"))
    row = conn.execute("PRAGMA database_list").fetchone()
    return row[2] if row else "?"


def _statements(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]


# A `-wal` whose mtime is this old gets a newer one from any later commit, even on a file
# system that keeps whole seconds (file times tick coarsely; 2 s covers 1 s granularity).
QUIET_S = 2.0


def change_stamp(conn: Conn) -> tuple | None:
    """A stamp of everything committed to the store, read without a query: two equal stamps
    mean nothing was committed between them, by any process. Per-request readers keep what they
    read beside the stamp taken *before* reading it and read again only when it moves.

    SQLite in WAL mode: every commit writes the `-wal` file, so its identity, size and mtime
    are the stamp, trusted only once the mtime is QUIET_S old (a commit after that moves it).
    None when it cannot tell: PostgreSQL, no `-wal` yet, a commit in the last QUIET_S, a clock
    that went back; read the store then. A stamp this connection took within RECHECK_S, with no
    statement run on it since, stands for a new one (one request asks twice)."""
    if getattr(conn, "backend", "sqlite") != "sqlite":
        return None
    c = cast(Connection, conn)
    now = time.monotonic()
    memo = c.stamp_memo  # taken within RECHECK_S, and no statement ran on `c` since
    if memo is not None and now - memo[0] < RECHECK_S:
        return memo[1]
    try:
        st = os.stat(c.path + "-wal")
    except OSError:
        stamp = None
    else:
        # a recent commit, or a clock that went back: not trusted
        quiet = time.time() - st.st_mtime >= QUIET_S
        stamp = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns) if quiet else None
    c.stamp_memo = (now, stamp)
    return stamp


def host(conn: Conn) -> str:
    """The host key of this connection's cursors and per-host rows: ECHOOPS_INSTANCE on a shared
    (PostgreSQL) store, '' on SQLite (the store is the host's own, whatever its name becomes)."""
    return cast(str, getattr(conn, "host", ""))


def shared(conn: Conn) -> bool:
    """True when several hosts may use this store at once (PostgreSQL)."""
    return getattr(conn, "backend", "sqlite") != "sqlite"


def holds_data(s: Settings) -> bool:
    """True when the store may hold data: always with ECHOOPS_DB_URL (the database is the
    store), else when the log dir holds anything but dotfiles (the checkout's `logs/.gitkeep`):
    its echoops.db, an NDJSON input or output, a hand-made deploy_gate.flag, receipts/...
    Read-only commands create nothing in a log dir that does not (or does not exist)."""
    if s.db_url:
        return True
    try:
        return any(not entry.name.startswith(".") for entry in s.log_dir.iterdir())
    except OSError:  # no such dir, or unreadable
        return False


def connect(s: Settings) -> Any:
    """This thread's connection to the store (`s.db_url`'s database, else `s.log_dir`'s file;
    opened once per thread and process)."""
    if s.db_url:
        return _connect_postgres(s, s.db_url)
    # Fast path for the per-request callers (/healthz, routes): no path resolution, which
    # costs a realpath (an lstat per component). A relative log dir is keyed by the cwd too.
    log_dir = s.log_dir
    fast_key = (log_dir, os.getpid(), None if log_dir.is_absolute() else os.getcwd())
    fast: dict = getattr(_local, "fast", None) or {}
    conn = fast.get(fast_key)
    if conn is not None and _usable(conn):
        return conn
    path = s.db_path.resolve() if s.db_path.parent.exists() else s.db_path.absolute()
    key = (str(path), os.getpid())
    conns: dict = getattr(_local, "conns", None) or {}
    _local.conns = conns
    conn = conns.get(key)
    stale_wal = None
    if conn is not None and not _usable(conn):
        if _ident(conn.path) != conn.ident:
            stale_wal = conn.wal_ident
        _discard(conn)
        conn = None
    if conn is None:
        conn = conns[key] = _open(path, stale_wal)
    fast[fast_key] = conn
    _local.fast = fast
    return conn


def _connect_postgres(s: Settings, url: str) -> Any:
    key = (url, os.getpid(), s.instance)
    pg: dict = getattr(_local, "pg", None) or {}
    _local.pg = pg
    conn = pg.get(key)
    if conn is None:
        from echoops.core import postgres  # lazy: psycopg and its pool (~60 ms) only with ECHOOPS_DB_URL

        global Error
        Error = (sqlite3.Error, *postgres.ERRORS)
        conn = postgres.Connection(
            url, max_size=s.db_pool_max, timeout_ms=s.db_timeout_ms, host=s.instance, on_failure=note_failure
        )
        try:
            _migrate_meta_postgres(conn)
        except BaseException:
            conn.close()
            raise
        pg[key] = conn
    return conn


def _migrate_meta_postgres(conn: Any) -> None:
    """The store's own tables on PostgreSQL: `_META`, its version kept as feature '_store'."""
    if "_store" in conn.ensured:
        return
    with transaction(conn):  # the store lock: two instances starting together migrate once
        conn.execute(_META[0].split(";")[0])  # schema_versions (IF NOT EXISTS)
        row = conn.execute("SELECT version FROM schema_versions WHERE feature='_store'").fetchone()
        version = row[0] if row else 0
        if version > META_VERSION:
            raise SchemaTooNew(f"{conn.path} has store schema v{version}; this echoops knows v{META_VERSION}")
        for script in _META[version:]:
            for stmt in _statements(script):
                conn.execute(stmt)
        if version < META_VERSION:
            conn.execute(
                "INSERT INTO schema_versions(feature, version, updated_at) VALUES('_store',?,?) "
                "ON CONFLICT(feature) DO UPDATE SET version=excluded.version, updated_at=excluded.updated_at",
                (META_VERSION, time.time()),
            )
    conn.ensured.add("_store")


def _discard(conn: sqlite3.Connection) -> None:
    """Forget and close one of this thread's connections (its file is gone, or it failed)."""
    for cache in (getattr(_local, "conns", None) or {}, getattr(_local, "fast", None) or {}):
        for k in [k for k, v in cache.items() if v is conn]:
            del cache[k]
    try:
        conn.close()
    except sqlite3.Error:
        pass


def close_all() -> None:
    """Close this thread's connections (tests, forked children)."""
    for conn in (getattr(_local, "conns", None) or {}).values():
        try:
            conn.close()
        except sqlite3.Error:
            pass
    _local.conns = {}
    _local.fast = {}
    for pg in (getattr(_local, "pg", None) or {}).values():
        pg.close()
    _local.pg = {}
    postgres = sys.modules.get("echoops.core.postgres")
    if postgres is not None:  # the next connection checks its schemas again (as a new SQLite one does)
        postgres.ensured_reset()


def ensure(conn: Conn, schema: Schema) -> None:
    """Apply `schema`'s pending migrations (once per connection; cheap afterwards)."""
    ensured: set[str] = conn.ensured  # type: ignore[attr-defined]  # every connection is a store.Connection
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


def _feature_version(conn: Conn, schema: Schema) -> int:
    """The migrations of `schema` already applied (0 for a new feature); SchemaTooNew past the code's."""
    row = conn.execute("SELECT version FROM schema_versions WHERE feature=?", (schema.feature,)).fetchone()
    version = row[0] if row else 0
    if version > len(schema.migrations):
        raise SchemaTooNew(
            f"{schema.feature} schema v{version} in {conn_path(conn)} is newer than this echoops "
            f"(v{len(schema.migrations)})"
        )
    return version


def db(s: Settings, *schemas: Schema) -> Any:
    """Connection with `schemas` ensured: what a feature calls first."""
    conn = connect(s)
    for schema in schemas:
        ensure(conn, schema)
    return conn


_queues = threading.local()  # this thread's queue descriptors: {(lock file, pid): fd}


def _queue_fd(conn: sqlite3.Connection, queue: str) -> int | None:
    """This thread's descriptor of `<db>.<queue>-lock` (its own open file description, so threads
    queue too), or None when it cannot be opened (the database's lock still serialises)."""
    path = f"{getattr(conn, 'path', '')}.{queue}-lock"
    fds: dict[tuple[str, int], int] = getattr(_queues, "fds", None) or {}
    _queues.fds = fds
    key = (path, os.getpid())
    fd = fds.get(key)
    if fd is None:
        try:
            fd = fds[key] = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError:
            return None
    return fd


@contextmanager
def queued_transaction(conn: Any, queue: str) -> Iterator[Any]:
    """`transaction`, entered in turn with every other caller of the same `queue`: an flock on
    `<db>.<queue>-lock` first. The kernel hands that lock to the next waiter as soon as it is
    free, where SQLite's busy handler sleeps 1, 2, 5, 10 ms and more between tries: many
    processes writing the same rows at a high rate (per-call cost reservations) queue instead
    of sleeping. Only a queue: the database's write lock is what serialises. PostgreSQL: the
    store lock's waiters already queue in the server, in order: a plain `transaction`."""
    if getattr(conn, "backend", "sqlite") != "sqlite":
        with transaction(conn):
            yield conn
        return
    fd = _queue_fd(conn, queue)
    if fd is not None:
        fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        with transaction(conn):
            yield conn
    finally:
        if fd is not None:
            fcntl.flock(fd, fcntl.LOCK_UN)


def begin(conn: Any, *, lock: str | None = STORE_LOCK) -> None:
    """Start a transaction that `commit`/`rollback` ends (for a writer whose transaction spans
    a loop, as the portal import's); `transaction` is the context-manager form."""
    if getattr(conn, "backend", "sqlite") != "sqlite":
        conn.begin(lock)
    else:
        conn.execute("BEGIN IMMEDIATE")


def commit(conn: Any) -> None:
    """Commit the transaction `begin` started."""
    if getattr(conn, "backend", "sqlite") != "sqlite":
        conn.commit()
    else:
        conn.execute("COMMIT")


def rollback(conn: Any) -> None:
    """Roll back the transaction `begin` started (nothing when none is open)."""
    if getattr(conn, "backend", "sqlite") != "sqlite":
        conn.rollback()
    elif conn.in_transaction:
        conn.execute("ROLLBACK")


@contextmanager
def bulk_cache(conn: Any, kib: int) -> Iterator[None]:
    """A `kib` KiB page cache on this connection for one bulk load (SQLite; PostgreSQL sizes
    its own buffers)."""
    if getattr(conn, "backend", "sqlite") != "sqlite":
        yield
        return
    old = conn.execute("PRAGMA cache_size").fetchone()[0]
    conn.execute(f"PRAGMA cache_size=-{int(kib)}")
    try:
        yield
    finally:
        conn.execute(f"PRAGMA cache_size={old}")


@contextmanager
def transaction(conn: Any, *, lock: str | None = STORE_LOCK) -> Iterator[Any]:
    """BEGIN IMMEDIATE ... COMMIT (ROLLBACK on error). Nested use joins the outer transaction.

    PostgreSQL: BEGIN with the advisory lock `lock` held to the end (the default, STORE_LOCK,
    makes it exclusive like SQLite's write lock; None: only the row locks its statements take)."""
    if conn.in_transaction:
        yield conn
        return
    if getattr(conn, "backend", "sqlite") != "sqlite":
        conn.begin(lock)
        try:
            yield conn
        except BaseException:
            conn.rollback()
            raise
        conn.commit()
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
        c = cast(Connection, conn)
        if getattr(c, "ident", None) is not None and _ident(c.path) != c.ident:
            c.broken = True
            raise StoreUnavailable(
                f"the store is unavailable: {Path(c.path).name} was deleted or replaced during the write; "
                "nothing was stored (retry)"
            )
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
