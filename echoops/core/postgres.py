"""The PostgreSQL store backend (`ECHOOPS_DB_URL=postgresql://...`): psycopg 3 and psycopg_pool.

`Connection` is what `store.connect` hands a thread when the URL is set: it takes the same
calls as the SQLite connection (`execute`, `executemany`, `in_transaction`; rows indexable
by position and by column name) and rewrites each statement through `dialect.to_postgres`.

Connections come from one pool per process and URL (psycopg_pool, max ECHOOPS_DB_POOL_MAX):
a statement outside a transaction borrows one for that statement (autocommit), a transaction
keeps one from BEGIN to COMMIT. Each connection has a statement timeout (ECHOOPS_DB_TIMEOUT_MS,
which bounds lock waits too, as SQLite's busy timeout does), an idle-in-transaction timeout and
TCP keepalives, so a client that vanished mid-transaction (SIGKILL, network loss) has its
locks dropped by the server. TLS and every other libpq option travel in the URL
(`?sslmode=verify-full&sslrootcert=...`) or the usual PG* environment variables.

Types as SQLite gives them back: NUMERIC results (PostgreSQL's SUM of BIGINT) load as int (or
float with a fraction), Python booleans are sent as 0/1, BYTEA loads as bytes.

The URL is a secret: it is never printed; `label` names the server without credentials.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any
from urllib.parse import urlsplit

import psycopg
from psycopg import errors as pg_errors
from psycopg.adapt import Dumper, Loader
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import ConnectionPool, PoolTimeout

from echoops.core.dialect import to_postgres

ERRORS: tuple[type[Exception], ...] = (psycopg.Error, PoolTimeout)
_INT8 = psycopg.adapters.types["int8"].oid


class _BoolAsInt(Dumper):
    """Python bool as 0/1, as SQLite stores it (columns are integers; `? = 1` tests it)."""

    oid = _INT8

    def dump(self, obj: bool) -> bytes:
        return b"1" if obj else b"0"


class _Numeric(Loader):
    """NUMERIC (what SUM over BIGINT returns) as int when whole, else float, as SQLite answers."""

    def load(self, data: Any) -> int | float:
        text = bytes(data)
        if text.lstrip(b"-").isdigit():
            return int(text)
        return float(text)


class Row(tuple):
    """A result row: by position like a tuple, by column name like sqlite3.Row; `keys()`."""

    _index: dict[str, int] = {}

    def __getitem__(self, key: Any) -> Any:
        if key.__class__ is str:
            return tuple.__getitem__(self, self._index[key])
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        return list(self._index)


_row_classes: dict[tuple[str, ...], type[Row]] = {}


def _row_class(names: tuple[str, ...]) -> type[Row]:
    cls = _row_classes.get(names)
    if cls is None:
        cls = _row_classes[names] = type("Row", (Row,), {"_index": {n: i for i, n in enumerate(names)}})
    return cls


def _row_factory(cursor: Any) -> Any:
    desc = cursor.description
    if desc is None:
        return tuple
    cls = _row_class(tuple(c.name for c in desc))
    return cls


class Result:
    """A statement's rows, fetched whole before its connection went back to the pool."""

    def __init__(self, rows: list[Any], rowcount: int):
        self._rows = rows
        self._pos = 0
        self.rowcount = rowcount
        self.lastrowid = None

    def fetchone(self) -> Any:
        if self._pos >= len(self._rows):
            return None
        self._pos += 1
        return self._rows[self._pos - 1]

    def fetchall(self) -> list[Any]:
        rows = self._rows[self._pos :]
        self._pos = len(self._rows)
        return rows

    def __iter__(self) -> Iterator[Any]:
        return iter(self.fetchall())


def lock_key(name: str) -> int:
    """A 64-bit advisory-lock key for `name` (the same in every process)."""
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big", signed=True)


def label(url: str) -> str:
    """The server and database of `url` without user or password (for messages)."""
    parts = urlsplit(url)
    host = parts.hostname or "localhost"
    port = f":{parts.port}" if parts.port else ""
    return f"postgresql://{host}{port}{parts.path or '/'}"


_pools: dict[tuple[str, int], ConnectionPool] = {}
_pools_lock = threading.Lock()


def pool(url: str, *, max_size: int, timeout_ms: int) -> ConnectionPool:
    """This process's pool for `url` (a forked child makes its own: sockets are not shared)."""
    key = (url, os.getpid())
    found = _pools.get(key)
    if found is not None:
        return found
    with _pools_lock:
        found = _pools.get(key)
        if found is None:
            found = _pools[key] = _new_pool(url, max_size, timeout_ms)
    return found


# libpq options of every connection (the URL's own options, TLS ones included, come on top)
_CONNECT_KWARGS: dict[str, Any] = {
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
    "application_name": "echoops",
}


def _options(url: str, **defaults: Any) -> dict[str, Any]:
    """echoops' connection options, minus those the URL sets itself (the URL wins: an operator's
    `connect_timeout`, `application_name` or keepalive settings pass through)."""
    given = conninfo_to_dict(url)
    return {k: v for k, v in {**_CONNECT_KWARGS, **defaults}.items() if k not in given}


def _new_pool(url: str, max_size: int, timeout_ms: int) -> ConnectionPool:
    idle_tx_ms = max(2 * timeout_ms, 30_000)

    def configure(conn: psycopg.Connection) -> None:
        conn.adapters.register_dumper(bool, _BoolAsInt)
        conn.adapters.register_loader("numeric", _Numeric)
        conn.row_factory = _row_factory
        # The server drops a vanished client (and the locks it held) within about 30 s.
        conn.execute(
            f"SET statement_timeout = {int(timeout_ms)}; "
            f"SET idle_in_transaction_session_timeout = {int(idle_tx_ms)}; "
            "SET tcp_keepalives_idle = 10; SET tcp_keepalives_interval = 5; SET tcp_keepalives_count = 3"
        )

    kwargs: dict[str, Any] = {**_options(url, connect_timeout=max(1, timeout_ms // 1000)), "autocommit": True}
    return ConnectionPool(
        url,
        min_size=1,
        max_size=max_size,
        kwargs=kwargs,
        configure=configure,
        # A pooled connection the server dropped (a restart, a failover, an idle timeout) is
        # replaced before use, for one round trip: a write never lands on a dead socket.
        check=ConnectionPool.check_connection,
        timeout=timeout_ms / 1000,
        open=True,
        name="echoops",
    )


def close_pools() -> None:
    """Close this process's pools (tests; a process about to exit)."""
    with _pools_lock:
        for (_, pid), p in list(_pools.items()):
            if pid == os.getpid():
                p.close()
        _pools.clear()


# Errors that mean "the server or the connection is unusable now", not "your SQL is wrong".
_UNAVAILABLE = (
    psycopg.OperationalError,
    psycopg.InterfaceError,
    pg_errors.DiskFull,
    pg_errors.ReadOnlySqlTransaction,
    pg_errors.InsufficientResources,
    PoolTimeout,
)


def is_unavailable(exc: BaseException) -> bool:
    """True when `exc` means the database cannot take the work now (down, unreachable, timed out, full)."""
    return isinstance(exc, _UNAVAILABLE)


def describe(exc: BaseException) -> str:
    """A one-line reason for an unavailable database (libpq never prints a password)."""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return f"{first} ({type(exc).__name__})"


class Connection:
    """One thread's handle on the pool: see the module doc."""

    backend = "postgres"

    def __init__(self, url: str, *, max_size: int, timeout_ms: int, host: str, on_failure: Callable[[], None]):
        self.url = url
        self._on_failure = on_failure
        self.path = label(url)
        self.host = host
        self.ident = None
        self.broken = False
        self.ensured: set[str] = _ensured.setdefault((url, os.getpid()), set())
        self._pool = pool(url, max_size=max_size, timeout_ms=timeout_ms)
        self._tx: psycopg.Connection | None = None

    @property
    def in_transaction(self) -> bool:
        return self._tx is not None

    # --- statements ---------------------------------------------------------------------

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> Result:
        query = to_postgres(sql)
        args = tuple(params) if params is not None else ()
        if self._tx is not None:
            return self._run(self._tx, query, args)
        for attempt in (1, 2):
            conn = self._getconn()
            try:
                return self._run(conn, query, args)
            except psycopg.OperationalError:
                # A pooled connection the server closed (a restart): a read is retried once
                # on a fresh one; a write may have happened, so it is not.
                if attempt == 2 or not (conn.closed or conn.broken) or not query.lstrip()[:6].upper() == "SELECT":
                    raise
            finally:
                self._pool.putconn(conn)
        raise AssertionError("unreachable")  # pragma: no cover

    def executemany(self, sql: str, seq: Iterable[Sequence[Any]]) -> Result:
        query = to_postgres(sql)
        rows = [tuple(p) for p in seq]
        if self._tx is not None:
            return self._run_many(self._tx, query, rows)
        conn = self._getconn()
        try:
            with conn.transaction():  # autocommit SQLite runs executemany as one implicit transaction
                return self._run_many(conn, query, rows)
        finally:
            self._pool.putconn(conn)

    def _run(self, conn: psycopg.Connection, query: str, args: tuple) -> Result:
        try:
            cur = conn.execute(query, args)
            rows = cur.fetchall() if cur.description is not None else []
            return Result(rows, cur.rowcount)
        except psycopg.Error as exc:
            self._failed(exc)
            raise

    def _run_many(self, conn: psycopg.Connection, query: str, rows: list[tuple]) -> Result:
        if not rows:
            return Result([], 0)
        try:
            cur = conn.cursor()
            cur.executemany(query, rows)
            return Result([], cur.rowcount)
        except psycopg.Error as exc:
            self._failed(exc)
            raise

    def _failed(self, exc: BaseException) -> None:
        if is_unavailable(exc):
            self.broken = True
            self._on_failure()

    def _getconn(self) -> psycopg.Connection:
        """A pooled connection; when none comes within the timeout, why: the pool only says it
        waited, so one direct connection attempt names the cause (refused, TLS required,
        authentication failed), raised in its place. A pool merely busy stays PoolTimeout."""
        try:
            return self._pool.getconn()
        except PoolTimeout as exc:
            self._failed(exc)
            try:
                psycopg.connect(self.url, **_options(self.url, connect_timeout=2)).close()
            except psycopg.OperationalError as cause:
                raise cause.with_traceback(None) from None
            raise

    # --- transactions -------------------------------------------------------------------

    def begin(self, lock: str | None, *, shared: bool = False) -> None:
        """BEGIN on a connection kept until commit/rollback; with `lock`, take that advisory
        lock for the transaction (exclusive, or `shared`) in the same round trip."""
        statement = "BEGIN"
        if lock is not None:
            fn = "pg_advisory_xact_lock_shared" if shared else "pg_advisory_xact_lock"
            statement = f"BEGIN; SELECT {fn}({lock_key(lock)})"
        for attempt in (1, 2):
            conn = self._getconn()
            try:
                conn.execute(statement)
            except psycopg.OperationalError as exc:
                # Nothing was written yet: a connection the server closed is replaced once.
                self._pool.putconn(conn)
                if attempt == 2 or not (conn.closed or conn.broken):
                    self._failed(exc)
                    raise
                continue
            except BaseException:
                self._discard(conn)
                raise
            self._tx = conn
            return

    def commit(self) -> None:
        conn, self._tx = self._tx, None
        if conn is None:
            return
        try:
            conn.execute("COMMIT")
        except psycopg.Error as exc:
            self._failed(exc)
            self._discard(conn)
            raise
        self._pool.putconn(conn)

    def rollback(self) -> None:
        conn, self._tx = self._tx, None
        if conn is None:
            return
        try:
            if not conn.closed:
                conn.execute("ROLLBACK")
        except psycopg.Error:
            self._discard(conn)
            return
        self._pool.putconn(conn)

    def _discard(self, conn: psycopg.Connection) -> None:
        try:
            conn.close()
        finally:
            self._pool.putconn(conn)

    def close(self) -> None:
        """Give back a connection held mid-transaction (rolled back); the pool stays."""
        if self._tx is not None:
            self.rollback()


_ensured: dict[tuple[str, int], set[str]] = {}  # schemas ensured, per process and URL


def ensured_reset() -> None:
    """Forget which schemas were ensured (tests drop and recreate databases)."""
    _ensured.clear()
