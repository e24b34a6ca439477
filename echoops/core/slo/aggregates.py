"""SLO data layer: incremental ingest of request logs into per-minute aggregates, window queries.

Each source file matching SLO_SOURCES is read through its own `ndjson.Reader` cursor
(consumer "slo"); lines become per-minute rows (total, errors = status >= 500, slow =
latency_ms > SLO_LAT_P95_MS) plus a latency sketch per minute and per hour (the hour rows
are rollups so 24h/7d/30d windows merge at most ~24 hour sketches plus two edge hours of
minutes). Rows, hour rollups and the cursor are written in one transaction.

The hot loop is tuned: minutes come from `clock.Stamps` (`...Z` ISO timestamps checked
piecewise, their minute cached), latency buckets from a cache keyed by the value; anything
unusual (epoch numbers, offsets, bad or future values, statuses outside 0..999) takes the
careful per-line path, `_careful`, which is the definition: the fast path only ever accepts
what it would accept, with the same result, whatever lines came before
(tests/test_fast_paths.py).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from echoops.core import clock, ndjson, store
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
    SLOW_FLAG | ERROR_FLAG; appending is cheaper than counting per line, _flush counts)."""

    def __init__(self) -> None:
        self.per: dict[int, list[int]] = {}
        self.old = 0


def _careful(o: dict, agg: _Agg, stamps: clock.Stamps, target: float, oldest: int, reader: ndjson.Reader) -> None:
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


def _fold(batch: list[dict], agg: _Agg, stamps: clock.Stamps, bcache: dict, target: float, oldest: int, reader) -> None:
    """Add one batch of parsed lines to `agg` (the hot loop: ~0.3 us a line; nothing mutates until
    every check of the line has passed, so a line that fails goes whole to the careful path).

    `bcache` maps a latency value to its bucket key, plus SLOW_FLAG when it is over the target,
    so a line is one list append (slow and error counts are split out at flush). Stamps
    (clock.Stamps): the rest after the seconds is checked on every line, the seconds and the
    minute only when the line is not in the last line's second (`lo <= ts < hi`)."""
    per = agg.per
    bget = bcache.get
    minutes = stamps.minutes
    seconds_ok, rests, digits_z = clock.SECONDS, clock.RESTS, clock.digits_z
    after_seconds, next_digit = clock.AFTER_SECONDS, clock.NEXT_DIGIT
    top = STATUS_MAX
    error_status, error_flag = ERROR_STATUS, ERROR_FLAG
    add: Callable[[int], None] = list[int]().append
    lo = hi = ""  # no string is >= "" and < "": the first line looks its second up
    cur_q = None
    for o in batch:
        try:
            ts = o["ts"]
            lat = o["latency_ms"]
            st = o["status"]
            # bools and floats take the careful path (True == 1 would hit the caches)
            if st.__class__ is not int or lat.__class__ is bool or st < 0:
                raise TypeError
            if ts[after_seconds] not in rests and not digits_z(ts[after_seconds]):
                raise TypeError
            k = bget(lat)
            if k is None:
                k = bcache[lat] = _key(lat, target)
            if st >= error_status:
                if st > top:
                    raise TypeError
                k |= error_flag
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
                    cur_q = q
                lo, hi = p, p[:18] + next_digit[p[18]]  # clock.second_bounds
        except (KeyError, TypeError, ValueError, IndexError):
            _careful(o, agg, stamps, target, oldest, reader)
            lo = hi = ""  # the careful path may have added the minute this record named
            cur_q = None
            continue
        add(k)


def _key(lat: object, target: float) -> int:
    """Bucket key of a latency, plus SLOW_FLAG when it is over the target (ValueError when junk)."""
    k = sketch.bucket_of(lat)
    return k | SLOW_FLAG if lat > target else k  # type: ignore[operator]


def _rows_in(conn: store.Conn, sql: str, keys: list[int]) -> dict[int, store.Row]:
    out: dict[int, store.Row] = {}
    for i in range(0, len(keys), _IN_CHUNK):
        part = keys[i : i + _IN_CHUNK]
        marks = ",".join("?" * len(part))
        for row in conn.execute(sql.format(marks=marks), part):
            out[row[0]] = row
    return out


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


def _locked(conn: store.Conn, table: str, key: str, keys: list[int], sql: str) -> dict[int, store.Row]:
    """The stored rows of `keys`, each locked until the transaction ends: hosts sharing a
    PostgreSQL store merge into the same minutes (their ingests run side by side). A key
    without a row gets an empty one first, so there is a row to lock; keys are locked in
    ascending order (two flushes never wait on each other in a cycle). SQLite: the
    transaction's write lock covers it all (dialect.for_sqlite drops FOR UPDATE)."""
    cols, values = (
        ("total, errors, slow, sketch", "0, 0, 0, x''") if table == "slo_hour" else ("total, errors, slow", "0, 0, 0")
    )
    conn.executemany(
        f"INSERT INTO {table}({key}, {cols}) VALUES(?, {values}) ON CONFLICT DO NOTHING", [(k,) for k in keys]
    )
    return _rows_in(conn, sql, keys)


# The merged values replace the stored ones (read under the rows' locks, above).
_UPSERT_MINUTE = (
    "INSERT INTO slo_minute(minute, total, errors, slow) VALUES(?,?,?,?) ON CONFLICT(minute) DO UPDATE SET "
    "total=excluded.total, errors=excluded.errors, slow=excluded.slow"
)
_UPSERT_SKETCH = (
    "INSERT INTO slo_minute_sketch(minute, sketch) VALUES(?,?) ON CONFLICT(minute) DO UPDATE SET sketch=excluded.sketch"
)
_UPSERT_HOUR = (
    "INSERT INTO slo_hour(hour, total, errors, slow, sketch) VALUES(?,?,?,?,?) ON CONFLICT(hour) DO UPDATE SET "
    "total=excluded.total, errors=excluded.errors, slow=excluded.slow, sketch=excluded.sketch"
)


def _flush(conn: store.Conn, agg: _Agg) -> int:
    """Merge the in-memory aggregates into minute and hour rows (counts add, sketches merge,
    into what any host stored before); returns minutes touched."""
    if not agg.per:
        return 0
    minutes = sorted(agg.per)
    old = _locked(
        conn,
        "slo_minute",
        "minute",
        minutes,
        "SELECT m.minute, m.total, m.errors, m.slow, s.sketch FROM slo_minute m "
        "LEFT JOIN slo_minute_sketch s ON s.minute = m.minute WHERE m.minute IN ({marks}) "
        "ORDER BY m.minute FOR UPDATE OF m",
    )
    minute_rows = []
    sketch_rows = []
    hours: dict[int, list] = {}
    for m in minutes:
        flagged = Counter(agg.per[m])
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
        total = sum(delta.values())
        h = hours.get(m // 60)
        if h is None:
            h = hours[m // 60] = [0, 0, 0, {}]
        h[0] += total
        h[1] += errors
        h[2] += slow
        sketch.add_counts(h[3], delta)
        total, errors, slow, blob = _with_stored(old.get(m), total, errors, slow, delta)
        minute_rows.append((m, total, errors, slow))
        sketch_rows.append((m, blob))
    conn.executemany(_UPSERT_MINUTE, minute_rows)
    conn.executemany(_UPSERT_SKETCH, sketch_rows)
    hour_keys = sorted(hours)
    old_h = _locked(
        conn,
        "slo_hour",
        "hour",
        hour_keys,
        "SELECT hour, total, errors, slow, sketch FROM slo_hour WHERE hour IN ({marks}) ORDER BY hour FOR UPDATE",
    )
    hour_rows = [(hk, *_with_stored(old_h.get(hk), *hours[hk])) for hk in hour_keys]
    conn.executemany(_UPSERT_HOUR, hour_rows)
    touched = len(minutes)
    agg.per.clear()
    return touched


def last_minute(now: float) -> int:
    """The last minute a window ending at `now` covers: windows are [now - W, now), so an
    instant on a minute boundary closes the minute before it."""
    return math.ceil(now / 60) - 1


def retention_minute(s: Settings, now: float) -> int:
    """Oldest minute kept: SLO_WINDOW_DAYS + 1 day before `now`."""
    return int(now // 60) - (s.slo_window_days + 1) * 1440


def ingest(s: Settings, *, now: float) -> RequestIngest:
    """Read new request lines from every source into minute aggregates; returns counts.

    `{"lines", "bad", "bad_reasons", "too_old", "minutes_touched", "sources", "events", "errors"}`.
    A source that cannot be read (permission, not a regular file, a dangling symlink) is
    skipped and named in `errors` (`{"source", "error", "detail"}`); the others are read.
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
    for path in sources(s):
        report["sources"].append(path.name)
        try:
            if not ndjson.pending(conn, path, CONSUMER, listed=True):
                continue
            agg = _Agg()
            stamps = clock.Stamps(now)
            bcache: dict[Any, int] = {}
            touched = 0
            held = 0
            # One ingest per host at a time (its cursors); hosts sharing a PostgreSQL store
            # ingest side by side and meet only on the minute rows (_locked).
            with store.transaction(conn, lock=f"ingest:{CONSUMER}:{store.host(conn)}"):
                reader = ndjson.Reader(conn, path, CONSUMER)
                for batch in reader.batches():
                    _fold(batch, agg, stamps, bcache, target, oldest, reader)
                    held += len(batch)
                    if len(agg.per) > FLUSH_MINUTES or held > FLUSH_LINES:
                        touched += _flush(conn, agg)
                        held = 0
                    if len(bcache) > _BCACHE_MAX:
                        bcache.clear()
                touched += _flush(conn, agg)
                reader.commit(now)
        except ndjson.InputError as exc:  # rolled back: this source is read again next tick
            report["errors"].append(exc.as_dict())
            continue
        report["minutes_touched"] += touched
        report["lines"] += reader.lines
        report["too_old"] += agg.old
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
                "SELECT hour, total, errors, slow FROM slo_hour WHERE hour BETWEEN ? AND ?", (lo // 60, hi // 60)
            )
        }
        # the last 6 hours and a bit, minute by minute: every short window and the tail edge
        self.tail_lo = max(lo, hi - 420)
        self.minutes = {
            r[0]: (r[1], r[2], r[3])
            for r in conn.execute(
                "SELECT minute, total, errors, slow FROM slo_minute WHERE minute BETWEEN ? AND ?", (self.tail_lo, hi)
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
