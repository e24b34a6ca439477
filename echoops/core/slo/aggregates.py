"""SLO data layer: incremental ingest of request logs into per-minute aggregates, window queries.

Each source file matching SLO_SOURCES is read through its own `ndjson.Reader` cursor
(consumer "slo"); lines become per-minute rows (total, errors = status >= 500, slow =
latency_ms > SLO_LAT_P95_MS) plus a latency sketch per minute and per hour (the hour rows
are rollups so 24h/7d/30d windows merge at most ~24 hour sketches plus two edge hours of
minutes). Rows, hour rollups and the cursor are written in one transaction.

The hot loop is tuned: lines arrive as `Request` structs decoded in C (ndjson.Typed; a chunk
msgspec cannot take arrives as dicts, folded by `_fold`), minutes come from `clock.Stamps`
(`...Z` ISO timestamps checked piecewise, their minute cached; epoch seconds by a range
check), latency buckets from a cache keyed by the value; anything unusual (offsets, bad or
future values, statuses outside 0..999) takes the careful per-line path, `_careful`, which is
the definition: the fast paths only ever accept what it would accept, with the same result,
whatever lines came before (tests/test_fast_paths.py).

A backlog above ECHOOPS_INGEST_BULK_MB is folded in several processes (`ndjson.Reader.fold`,
core/bulk.py): each piece returns its minute rows and hour rollups packed as stored rows
(`_Part`), the parent merges them into the store with its own, in the one transaction that
moves the cursor.

Several hosts (ECHOOPS_INSTANCE) sharing a PostgreSQL store each ingest the logs written on
them: every minute and hour row is stored per host (`host`; '' on SQLite, the store of one
box), so hosts never wait on each other's rows, and the window queries merge the hosts in
the database (counts add up with SUM ... GROUP BY; the sketches of every host's rows in a
range merge as one host's would). The status over two hosts equals the status over the
union of their lines.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable
from functools import cache
from pathlib import Path
from typing import Any

from echoops.core import bulk, clock, native, ndjson, store
from echoops.core.config import Settings
from echoops.core.slo import sketch
from echoops.core.slo.types import RequestIngest

CONSUMER = "slo"
FLUSH_MINUTES = 240  # aggregates kept in memory before they are merged into the store
FLUSH_LINES = 500_000  # ... or lines (a reference each in a per-minute list: 4 MB)
_BCACHE_MAX = 300_000
_IN_CHUNK = 500
SLOW_FLAG = 1 << 12  # above every bucket key: marks a latency over SLO_LAT_P95_MS while folding
ERROR_FLAG = 1 << 13  # marks a request with an error status while folding
assert sketch.NUM_BUCKETS < SLOW_FLAG
# A request line's status: a number 0..999 (HTTP's three digits); 5xx and up are errors.
STATUS_MAX = 999
ERROR_STATUS = 500

SCHEMA = store.Schema(
    "slo",
    (
        """
        CREATE TABLE slo_minute (
            minute INTEGER PRIMARY KEY,
            total INTEGER NOT NULL,
            errors INTEGER NOT NULL,
            slow INTEGER NOT NULL
        );
        CREATE TABLE slo_minute_sketch (
            minute INTEGER PRIMARY KEY,
            sketch BLOB NOT NULL
        );
        CREATE TABLE slo_hour (
            hour INTEGER PRIMARY KEY,
            total INTEGER NOT NULL,
            errors INTEGER NOT NULL,
            slow INTEGER NOT NULL,
            sketch BLOB NOT NULL
        );
        CREATE TABLE slo_ticks (
            ts REAL PRIMARY KEY,
            state TEXT NOT NULL,
            p95_ms REAL,
            p99_ms REAL,
            error_rate REAL NOT NULL,
            burn_1h REAL NOT NULL,
            burn_24h REAL NOT NULL,
            remaining_budget_pct REAL NOT NULL
        );
        CREATE TABLE slo_meta (
            key TEXT PRIMARY KEY,
            value TEXT NOT NULL
        );
        """,
        # v2: history points replayed from stored aggregates (no tick ran then)
        "ALTER TABLE slo_ticks ADD COLUMN backfilled INTEGER NOT NULL DEFAULT 0;",
        # v3: minutes and hours per host (several hosts ingest into one PostgreSQL store);
        # the rows so far belong to host '' (an SQLite store is one host's: store.host)
        """
        CREATE TABLE slo_minute_v3 (
            minute INTEGER NOT NULL,
            total INTEGER NOT NULL,
            errors INTEGER NOT NULL,
            slow INTEGER NOT NULL,
            host TEXT NOT NULL DEFAULT '',
            PRIMARY KEY (minute, host)
        );
        INSERT INTO slo_minute_v3(minute, total, errors, slow, host)
        SELECT minute, total, errors, slow, '' FROM slo_minute;
        DROP TABLE slo_minute;
        ALTER TABLE slo_minute_v3 RENAME TO slo_minute;
        CREATE TABLE slo_minute_sketch_v3 (
            minute INTEGER NOT NULL,
            sketch BLOB NOT NULL,
            host TEXT NOT NULL DEFAULT '',
            PRIMARY KEY (minute, host)
        );
        INSERT INTO slo_minute_sketch_v3(minute, sketch, host) SELECT minute, sketch, '' FROM slo_minute_sketch;
        DROP TABLE slo_minute_sketch;
        ALTER TABLE slo_minute_sketch_v3 RENAME TO slo_minute_sketch;
        CREATE TABLE slo_hour_v3 (
            hour INTEGER NOT NULL,
            total INTEGER NOT NULL,
            errors INTEGER NOT NULL,
            slow INTEGER NOT NULL,
            sketch BLOB NOT NULL,
            host TEXT NOT NULL DEFAULT '',
            PRIMARY KEY (hour, host)
        );
        INSERT INTO slo_hour_v3(hour, total, errors, slow, sketch, host)
        SELECT hour, total, errors, slow, sketch, '' FROM slo_hour;
        DROP TABLE slo_hour;
        ALTER TABLE slo_hour_v3 RENAME TO slo_hour;
        """,
    ),
)


def db(s: Settings) -> store.Conn:
    """The store connection with the SLO tables ensured."""
    return store.db(s, SCHEMA)


def meta(conn: store.Conn, key: str) -> str | None:
    """A value of the SLO's small key/value table (`slo_meta`), None when absent."""
    row = conn.execute("SELECT value FROM slo_meta WHERE key=?", (key,)).fetchone()
    return row[0] if row else None


def set_meta(conn: store.Conn, key: str, value: str | None) -> None:
    """Set (or, with None, delete) a `slo_meta` value."""
    if value is None:
        conn.execute("DELETE FROM slo_meta WHERE key=?", (key,))
    else:
        conn.execute(
            "INSERT INTO slo_meta(key, value) VALUES(?,?) ON CONFLICT(key) DO UPDATE SET value=excluded.value",
            (key, value),
        )


def sources(s: Settings) -> list[Path]:
    """Everything in the log dir matching SLO_SOURCES, sorted by name (a directory or FIFO that
    matches is listed too: ingest reports it as an input error instead of skipping it silently)."""
    if not s.log_dir.is_dir():
        return []
    return sorted(s.log_dir.glob(s.slo_sources))


class _Agg:
    """In-memory aggregates of one ingest: minute -> the key of each of its lines (bucket key |
    SLOW_FLAG | ERROR_FLAG; appending is cheaper than counting per line, _compact counts)."""

    def __init__(self) -> None:
        self.per: dict[int, list[int]] = {}
        self.old = 0


@cache
def request_lines() -> ndjson.Typed:
    """The typed decoder of request lines: `ts` (ISO string or epoch number), `status` (int),
    `latency_ms` (number); other fields are skipped unread."""
    import msgspec  # lazy: 30 ms, only when there is input to read

    class Request(msgspec.Struct, gc=False):
        ts: str | float
        status: int
        latency_ms: float

    return ndjson.Typed(Request)


def _careful(o: dict, agg: _Agg, stamps: clock.Stamps, target: float, oldest: int, reader: Any) -> None:
    """The per-line path with full validation (the definition of a good line); fills the stamp caches."""
    if "ts" not in o or "status" not in o or "latency_ms" not in o:
        reader.count_bad("missing_field")
        return
    ts = stamps.careful(o["ts"])
    if ts.__class__ is str:
        reader.count_bad(ts)  # "bad_ts" or "future"
        return
    status = o["status"]
    if status.__class__ is bool or not isinstance(status, (int, float)) or not (0 <= status <= STATUS_MAX):
        reader.count_bad("bad_status")
        return
    try:
        key = _key(o["latency_ms"], target)
    except ValueError:
        reader.count_bad("bad_latency")
        return
    minute = int(ts // 60)  # type: ignore[operator]
    if minute < oldest:
        agg.old += 1
        return
    keys = agg.per.get(minute)
    if keys is None:
        keys = agg.per[minute] = []
    keys.append(key | (ERROR_FLAG if status >= ERROR_STATUS else 0))


def _fold(batch: list, agg: _Agg, stamps: clock.Stamps, bcache: dict, target: float, oldest: int, reader) -> None:
    """Add one batch of parsed lines (dicts, or `request_lines()` structs) to `agg` (the hot loop:
    ~0.3 us a line; nothing mutates until every check of the line has passed, so a line that
    fails goes whole to the careful path).

    `bcache` maps a latency value to its bucket key, plus SLOW_FLAG when it is over the target,
    so a line is one list append (slow and error counts are split out at flush). Stamps
    (clock.Stamps): the rest after the seconds is checked on every line, the seconds and the
    minute only when the line is not in the last line's second (`lo <= ts < hi`); an epoch
    number is checked against the range `line_ts` accepts and its minute taken at once."""
    if batch and batch[0].__class__ is not dict:
        return _fold_typed(batch, agg, stamps, bcache, target, oldest, reader)
    per = agg.per
    bget = bcache.get
    minutes = stamps.minutes
    seconds_ok, rests, digits_z = clock.SECONDS, clock.RESTS, clock.digits_z
    after_seconds, next_digit = clock.AFTER_SECONDS, clock.NEXT_DIGIT
    epoch_lo, epoch_hi = stamps.epoch_range
    top = STATUS_MAX
    error_status, error_flag = ERROR_STATUS, ERROR_FLAG
    add: Callable[[int], None] = list[int]().append
    lo = hi = ""  # no string is >= "" and < "": the first line looks its second up
    cur_q = None
    cur_m = -1
    for o in batch:
        try:
            ts = o["ts"]
            lat = o["latency_ms"]
            st = o["status"]
            # bools and floats take the careful path (True == 1 would hit the caches)
            if st.__class__ is not int or lat.__class__ is bool or st < 0:
                raise TypeError
            k = bget(lat)
            if k is None:
                k = bcache[lat] = _key(lat, target)
            if st >= error_status:
                if st > top:
                    raise TypeError
                k |= error_flag
            if ts.__class__ is str:
                if ts[after_seconds] not in rests and not digits_z(ts[after_seconds]):
                    raise TypeError
                if not lo <= ts < hi:  # last: a minute is only added for a line that counts
                    p = ts[:19]
                    if p[16:] not in seconds_ok:
                        raise TypeError
                    q = p[:16]
                    if q != cur_q:
                        m = minutes[q]
                        if m < oldest:
                            raise TypeError
                        keys = per.get(m)
                        if keys is None:
                            keys = per[m] = []
                        add = keys.append
                        cur_q, cur_m = q, m
                    lo, hi = p, p[:18] + next_digit[p[18]]  # clock.second_bounds
            elif ts.__class__ is int or ts.__class__ is float:
                if not epoch_lo <= ts <= epoch_hi:
                    raise TypeError
                m = int(ts // 60)
                if m != cur_m:
                    if m < oldest:
                        raise TypeError
                    keys = per.get(m)
                    if keys is None:
                        keys = per[m] = []
                    add = keys.append
                    cur_m, cur_q = m, None
                    lo = hi = ""
            else:
                raise TypeError
        except (KeyError, TypeError, ValueError, IndexError):
            _careful(o, agg, stamps, target, oldest, reader)
            lo = hi = ""  # the careful path may have added the minute this record named
            cur_q = None
            cur_m = -1
            continue
        add(k)


def _fold_typed(batch: list, agg: _Agg, stamps: clock.Stamps, bcache: dict, target: float, oldest: int, reader) -> None:
    """`_fold` for `request_lines()` structs: the types are checked already (status an int,
    latency a float, ts a string or a float), the ranges and the stamp here. Its compiled twin
    (`native.fold_requests`, 4-5x faster) runs instead when it is built."""
    if native.fold_requests is not None:

        def careful(ts: Any, st: Any, lat: Any) -> None:
            _careful({"ts": ts, "status": st, "latency_ms": lat}, agg, stamps, target, oldest, reader)

        native.fold_requests(
            batch, agg.per, bcache, stamps.minutes, oldest, *stamps.epoch_range,
            lambda lat: _key(lat, target), careful, (STATUS_MAX, ERROR_STATUS, ERROR_FLAG),
        )  # fmt: skip
        return
    return _fold_typed_py(batch, agg, stamps, bcache, target, oldest, reader)


def _fold_typed_py(batch: list, agg: _Agg, stamps: clock.Stamps, bcache: dict, target: float, oldest: int, reader):
    """`_fold_typed` in Python: the definition `native.fold_requests` is held equal to."""
    per = agg.per
    bget = bcache.get
    minutes = stamps.minutes
    seconds_ok, rests, digits_z = clock.SECONDS, clock.RESTS, clock.digits_z
    after_seconds, next_digit = clock.AFTER_SECONDS, clock.NEXT_DIGIT
    epoch_lo, epoch_hi = stamps.epoch_range
    top = STATUS_MAX
    error_status, error_flag = ERROR_STATUS, ERROR_FLAG
    add: Callable[[int], None] = list[int]().append
    lo = hi = ""
    cur_q = None
    cur_m = -1
    for o in batch:
        ts = o.ts
        lat = o.latency_ms
        st = o.status
        try:
            if st < 0:
                raise TypeError
            k = bget(lat)
            if k is None:
                k = bcache[lat] = _key(lat, target)
            if st >= error_status:
                if st > top:
                    raise TypeError
                k |= error_flag
            if ts.__class__ is str:
                if ts[after_seconds] not in rests and not digits_z(ts[after_seconds]):
                    raise TypeError
                if not lo <= ts < hi:
                    p = ts[:19]
                    if p[16:] not in seconds_ok:
                        raise TypeError
                    q = p[:16]
                    if q != cur_q:
                        m = minutes[q]
                        if m < oldest:
                            raise TypeError
                        keys = per.get(m)
                        if keys is None:
                            keys = per[m] = []
                        add = keys.append
                        cur_q, cur_m = q, m
                    lo, hi = p, p[:18] + next_digit[p[18]]
            else:
                if not epoch_lo <= ts <= epoch_hi:
                    raise TypeError
                m = int(ts // 60)
                if m != cur_m:
                    if m < oldest:
                        raise TypeError
                    keys = per.get(m)
                    if keys is None:
                        keys = per[m] = []
                    add = keys.append
                    cur_m, cur_q = m, None
                    lo = hi = ""
        except (KeyError, TypeError, ValueError, IndexError):
            _careful({"ts": ts, "status": st, "latency_ms": lat}, agg, stamps, target, oldest, reader)
            lo = hi = ""
            cur_q = None
            cur_m = -1
            continue
        add(k)


def _key(lat: object, target: float) -> int:
    """Bucket key of a latency, plus SLOW_FLAG when it is over the target (ValueError when junk)."""
    k = sketch.bucket_of(lat)
    return k | SLOW_FLAG if lat > target else k  # type: ignore[operator]


def _rows_in(conn: store.Conn, sql: str, keys: list[int]) -> dict[int, store.Row]:
    """This host's stored rows of `keys` (`sql` has `host=?` and `IN ({marks})`)."""
    out: dict[int, store.Row] = {}
    host = store.host(conn)
    for i in range(0, len(keys), _IN_CHUNK):
        part = keys[i : i + _IN_CHUNK]
        marks = ",".join("?" * len(part))
        for row in conn.execute(sql.format(marks=marks), (host, *part)):
            out[row[0]] = row
    return out


# This host's rows (one host's ingests run one at a time: the advisory lock of `ingest`).
_OLD_MINUTES = (
    "SELECT m.minute, m.total, m.errors, m.slow, s.sketch FROM slo_minute m "
    "LEFT JOIN slo_minute_sketch s ON s.minute = m.minute AND s.host = m.host "
    "WHERE m.host=? AND m.minute IN ({marks})"
)
_OLD_HOURS = "SELECT hour, total, errors, slow, sketch FROM slo_hour WHERE host=? AND hour IN ({marks})"
_UPSERT_MINUTE = (
    "INSERT INTO slo_minute(minute, total, errors, slow, host) VALUES(?,?,?,?,?) ON CONFLICT(minute, host) "
    "DO UPDATE SET total=excluded.total, errors=excluded.errors, slow=excluded.slow"
)
_UPSERT_SKETCH = (
    "INSERT INTO slo_minute_sketch(minute, sketch, host) VALUES(?,?,?) ON CONFLICT(minute, host) "
    "DO UPDATE SET sketch=excluded.sketch"
)
_UPSERT_HOUR = (
    "INSERT INTO slo_hour(hour, total, errors, slow, sketch, host) VALUES(?,?,?,?,?,?) ON CONFLICT(hour, host) "
    "DO UPDATE SET total=excluded.total, errors=excluded.errors, slow=excluded.slow, sketch=excluded.sketch"
)


def _with_stored(
    row: store.Row | None, total: int, errors: int, slow: int, counts: dict[int, int]
) -> tuple[int, int, int, bytes]:
    """(total, errors, slow, encoded sketch): new counts added to a stored `(key, total, errors, slow, sketch)`
    row when there is one (the minute and the hour rollup merge the same way)."""
    if row is not None:
        merged = sketch.to_dict(row[4])
        sketch.add_counts(merged, counts)
        counts = merged
        total += row[1]
        errors += row[2]
        slow += row[3]
    return total, errors, slow, sketch.encode(counts)


# A minute's aggregate while merging: [total, errors, slow, {bucket: count}].
Minute = list


def _compact(agg: _Agg) -> dict[int, Minute]:
    """The in-memory key lists counted into minute aggregates (and emptied)."""
    out: dict[int, Minute] = {}
    for m, keys in agg.per.items():
        flagged = Counter(keys)
        delta: dict[int, int] = {}
        slow = errors = 0
        for k, c in flagged.items():
            if k & ERROR_FLAG:
                errors += c
                k ^= ERROR_FLAG
            if k & SLOW_FLAG:
                slow += c
                k ^= SLOW_FLAG
            delta[k] = delta.get(k, 0) + c
        out[m] = [sum(delta.values()), errors, slow, delta]
    agg.per.clear()
    return out


Row = tuple[int, int, int, bytes]  # (total, errors, slow, encoded sketch), as stored


class _Part:
    """What a bulk piece sends back: its minute rows and their hour rollups, sketches encoded
    (a few MB for millions of lines), so the parent only writes them (`_store_rows`)."""

    def __init__(self) -> None:
        self.minutes: dict[int, Row] = {}
        self.hours: dict[int, list] = {}  # hour -> [total, errors, slow, {bucket: count}] while folding

    def add(self, minutes: dict[int, Minute]) -> None:
        for m, (t, e, sl, counts) in minutes.items():
            h = self.hours.get(m // 60)
            if h is None:
                h = self.hours[m // 60] = [0, 0, 0, {}]
            h[0] += t
            h[1] += e
            h[2] += sl
            sketch.add_counts(h[3], counts)
            known = self.minutes.get(m)  # a minute split by a flush: merged here
            self.minutes[m] = _with_stored((m, *known) if known else None, t, e, sl, counts)

    def packed(self) -> tuple[dict[int, Row], dict[int, Row]]:
        return self.minutes, {h: (t, e, sl, sketch.encode(c)) for h, (t, e, sl, c) in self.hours.items()}


def _merged_rows(old: dict[int, store.Row], rows: dict[int, Row]) -> list[tuple]:
    """`rows` added to the stored rows of the same keys: (key, total, errors, slow, sketch)."""
    out = []
    for key in sorted(rows):
        t, e, sl, blob = rows[key]
        stored = old.get(key)
        if stored is not None:
            t, e, sl, blob = _with_stored(stored, t, e, sl, sketch.to_dict(blob))
        out.append((key, t, e, sl, blob))
    return out


def _store_rows(conn: store.Conn, minutes: dict[int, Row], hours: dict[int, Row]) -> int:
    """Merge a bulk piece's packed minute and hour rows into the store; returns the minutes touched."""
    if not minutes:
        return 0
    host = store.host(conn)
    merged = _merged_rows(_rows_in(conn, _OLD_MINUTES, sorted(minutes)), minutes)
    conn.executemany(_UPSERT_MINUTE, [(*r[:4], host) for r in merged])
    conn.executemany(_UPSERT_SKETCH, [(r[0], r[4], host) for r in merged])
    conn.executemany(_UPSERT_HOUR, [(*r, host) for r in _merged_rows(_rows_in(conn, _OLD_HOURS, sorted(hours)), hours)])
    return len(minutes)


def _store(conn: store.Conn, minutes: dict[int, Minute]) -> int:
    """Merge minute aggregates into the minute and hour rows (what is stored plus what is new);
    returns the minutes touched."""
    if not minutes:
        return 0
    order = sorted(minutes)
    host = store.host(conn)
    old = _rows_in(conn, _OLD_MINUTES, order)
    minute_rows = []
    sketch_rows = []
    hours: dict[int, list] = {}
    for m in order:
        total, errors, slow, delta = minutes[m]
        h = hours.get(m // 60)
        if h is None:
            h = hours[m // 60] = [0, 0, 0, {}]
        h[0] += total
        h[1] += errors
        h[2] += slow
        sketch.add_counts(h[3], delta)
        total, errors, slow, blob = _with_stored(old.get(m), total, errors, slow, delta)
        minute_rows.append((m, total, errors, slow, host))
        sketch_rows.append((m, blob, host))
    conn.executemany(_UPSERT_MINUTE, minute_rows)
    conn.executemany(_UPSERT_SKETCH, sketch_rows)
    hour_keys = sorted(hours)
    old_h = _rows_in(conn, _OLD_HOURS, hour_keys)
    hour_rows = [(hk, *_with_stored(old_h.get(hk), *hours[hk]), host) for hk in hour_keys]
    conn.executemany(_UPSERT_HOUR, hour_rows)
    return len(order)


def _flush(conn: store.Conn, agg: _Agg) -> int:
    """Merge the in-memory aggregates into minute and hour rows; returns minutes touched."""
    return _store(conn, _compact(agg))


def last_minute(now: float) -> int:
    """The last minute a window ending at `now` covers: windows are [now - W, now), so an
    instant on a minute boundary closes the minute before it."""
    return math.ceil(now / 60) - 1


def retention_minute(s: Settings, now: float) -> int:
    """Oldest minute kept: SLO_WINDOW_DAYS + 1 day before `now`."""
    return int(now // 60) - (s.slo_window_days + 1) * 1440


def _fold_scan(scan: Any, conn: store.Conn, now: float, target: float, oldest: int) -> tuple:
    """Fold the lines of one reader or bulk piece: (packed minute and hour rows for the parent to
    store, when `scan.remote`, else None; lines too old; minutes touched in the store here)."""
    agg = _Agg()
    stamps = clock.Stamps(now)
    bcache: dict[Any, int] = {}
    part = _Part()
    touched = held = 0

    def flush() -> int:
        if scan.remote:
            part.add(_compact(agg))
            return 0
        return _flush(conn, agg)

    for batch in scan.batches():
        _fold(batch, agg, stamps, bcache, target, oldest, scan)
        held += len(batch)
        if len(agg.per) > FLUSH_MINUTES or held > FLUSH_LINES:
            touched += flush()
            held = 0
        if len(bcache) > _BCACHE_MAX:
            bcache.clear()
    touched += flush()
    return (part.packed() if scan.remote else None), agg.old, touched


def ingest(s: Settings, *, now: float) -> RequestIngest:
    """Read new request lines from every source into minute aggregates; returns counts.

    `{"lines", "bad", "bad_reasons", "too_old", "minutes_touched", "sources", "events", "errors"}`.
    A source that cannot be read (permission, not a regular file, a dangling symlink) is
    skipped and named in `errors` (`{"source", "error", "detail"}`); the others are read.
    More than ECHOOPS_INGEST_BULK_MB of new lines in a source are folded in
    ECHOOPS_INGEST_PROCESSES processes (every CPU by default).
    """
    conn = db(s)
    target = float(s.slo_lat_p95_ms)
    oldest = retention_minute(s, now)
    report: RequestIngest = {
        "lines": 0,
        "bad": 0,
        "bad_reasons": {},
        "too_old": 0,
        "minutes_touched": 0,
        "sources": [],
        "events": [],
        "errors": [],
    }
    procs = bulk.processes(s.ingest_processes)
    for path in sources(s):
        report["sources"].append(path.name)
        try:
            if not ndjson.pending(conn, path, CONSUMER, listed=True):
                continue
            too_old = touched = 0
            # One ingest per host at a time (its cursors and its rows): on PostgreSQL the lock
            # of this host's ingest only, so other hosts' ingests and every other write go on.
            with store.transaction(conn, lock=f"ingest:{CONSUMER}:{store.host(conn)}"):
                reader = ndjson.Reader(conn, path, CONSUMER, typed=request_lines())
                parts = reader.fold(
                    lambda scan: _fold_scan(scan, conn, now, target, oldest),
                    bulk_bytes=s.ingest_bulk_bytes,
                    processes=procs,
                )
                for packed, old, done in parts:
                    too_old += old
                    touched += done
                    if packed is not None:
                        touched += _store_rows(conn, *packed)
                reader.commit(now)
        except ndjson.InputError as exc:  # rolled back: this source is read again next tick
            report["errors"].append(exc.as_dict())
            continue
        report["minutes_touched"] += touched
        report["lines"] += reader.lines
        report["too_old"] += too_old
        for reason, n in reader.bad.items():
            report["bad_reasons"][reason] = report["bad_reasons"].get(reason, 0) + n
            report["bad"] += n
        report["events"].extend(f"{path.name}: {e}" for e in reader.events)
    return report


def prune(conn: store.Conn, s: Settings, *, now: float) -> None:
    """Delete minutes older than SLO_WINDOW_DAYS + 1 day (and ticks older than 8 days)."""
    oldest = retention_minute(s, now)
    with store.transaction(conn):
        conn.execute("DELETE FROM slo_minute WHERE minute < ?", (oldest,))
        conn.execute("DELETE FROM slo_minute_sketch WHERE minute < ?", (oldest,))
        conn.execute("DELETE FROM slo_hour WHERE hour < ?", (oldest // 60,))
        conn.execute("DELETE FROM slo_ticks WHERE ts < ?", (now - 8 * 86400,))


# --- windows ----------------------------------------------------------------------------


class Windows:
    """Sums and merged sketches over minute ranges [lo, hi] (inclusive), read once per tick.

    Full hours come from `slo_hour`, the partial hours at either edge from `slo_minute`.
    """

    def __init__(self, conn: store.Conn, lo: int, hi: int):
        self.conn = conn
        self.lo, self.hi = lo, hi
        self.hours = {
            r[0]: (r[1], r[2], r[3])
            for r in conn.execute(
                "SELECT hour, sum(total), sum(errors), sum(slow) FROM slo_hour WHERE hour BETWEEN ? AND ? "
                "GROUP BY hour",
                (lo // 60, hi // 60),
            )
        }
        # the last 6 hours and a bit, minute by minute: every short window and the tail edge
        self.tail_lo = max(lo, hi - 420)
        self.minutes = {
            r[0]: (r[1], r[2], r[3])
            for r in conn.execute(
                "SELECT minute, sum(total), sum(errors), sum(slow) FROM slo_minute WHERE minute BETWEEN ? AND ? "
                "GROUP BY minute",
                (self.tail_lo, hi),
            )
        }

    def _split(self, lo: int, hi: int) -> tuple[list[tuple[int, int]], range]:
        """Minute ranges at the edges and the full hours in between."""
        first_full = -(-lo // 60)
        last_full = (hi + 1) // 60 - 1
        if first_full > last_full:
            return [(lo, hi)], range(0)
        edges = []
        if lo < first_full * 60:
            edges.append((lo, first_full * 60 - 1))
        if (last_full + 1) * 60 <= hi:
            edges.append(((last_full + 1) * 60, hi))
        return edges, range(first_full, last_full + 1)

    def _minute_sums(self, lo: int, hi: int) -> tuple[int, int, int]:
        if lo >= self.tail_lo:
            get = self.minutes.get
            rows: Iterable = (v for v in map(get, range(lo, hi + 1)) if v is not None)
        else:
            rows = self.conn.execute(
                "SELECT total, errors, slow FROM slo_minute WHERE minute BETWEEN ? AND ?", (lo, hi)
            )
        t = e = sl = 0
        for a, b, c in rows:
            t += a
            e += b
            sl += c
        return t, e, sl

    def sums(self, lo: int, hi: int) -> tuple[int, int, int]:
        """(requests, errors, slow) over minutes lo..hi; zeros for an empty range."""
        if lo > hi:
            return 0, 0, 0
        edges, hours = self._split(lo, hi)
        t = e = sl = 0
        for a, b in edges:
            x, y, z = self._minute_sums(a, b)
            t += x
            e += y
            sl += z
        get = self.hours.get
        for h in hours:
            v = get(h)
            if v is not None:
                t += v[0]
                e += v[1]
                sl += v[2]
        return t, e, sl

    def merged(self, lo: int, hi: int) -> list[int]:
        """Dense sketch of minutes lo..hi (hour rollups for full hours)."""
        acc = sketch.dense()
        if lo > hi:
            return acc
        edges, hours = self._split(lo, hi)
        for a, b in edges:
            for (blob,) in self.conn.execute(
                "SELECT sketch FROM slo_minute_sketch WHERE minute BETWEEN ? AND ?", (a, b)
            ):
                sketch.merge_into(acc, blob)
        if len(hours):
            for (blob,) in self.conn.execute(
                "SELECT sketch FROM slo_hour WHERE hour BETWEEN ? AND ?", (hours.start, hours.stop - 1)
            ):
                sketch.merge_into(acc, blob)
        return acc
