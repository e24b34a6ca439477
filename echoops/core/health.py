"""The store's health: a real write to a one-row table, and the free space of the log dir.

What `/healthz` answers with. A full disk, a read-only file or a deleted database shows as
unhealthy, not only an unreadable one.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from echoops import __version__
from echoops.core import clock, store
from echoops.core.config import Settings
from echoops.core.errors import EchoopsError

SCHEMA = store.Schema(
    "health",
    (
        """
        CREATE TABLE health_probe (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            pid INTEGER NOT NULL,
            probed_at REAL NOT NULL
        );
        """,
    ),
)

MIN_FREE_BYTES = 64 * 1024  # less than this free in the log dir counts as a full disk

# (log dir, time.monotonic(), store.failures) of the last good probe write in this process
_last_good: tuple[Path, float, int] | None = None


def probe(s: Settings, *, max_age_s: float = 0.0) -> str | None:
    """Write one row to the health table: None when the store took the write, else why not.

    A write can still fit in pages SQLite already holds on a full disk, so the free space of
    the log dir is checked too, every time. `max_age_s`: a successful write from this process
    at most that old stands for a new one (a flood of probes costs one write a second, not one
    each); a failure is always checked again, and so is a success once any store failure was
    seen in the process since.
    """
    global _last_good
    full = _disk_full(s)
    if full is not None:
        _last_good = None
        return full
    last = _last_good
    if (
        max_age_s > 0
        and last is not None
        and last[0] == s.log_dir
        and last[2] == store.failures
        and time.monotonic() - last[1] < max_age_s
    ):
        return None
    try:
        conn = store.db(s, SCHEMA)
        with store.transaction(conn):
            conn.execute(
                "INSERT INTO health_probe(id, pid, probed_at) VALUES (1, ?, ?) "
                "ON CONFLICT(id) DO UPDATE SET pid=excluded.pid, probed_at=excluded.probed_at",
                (os.getpid(), time.time()),
            )
    except store.errors(OSError, EchoopsError) as exc:
        _last_good = None
        found = store.unavailable(exc)
        return found.detail if found is not None else f"the store failed: {type(exc).__name__}: {exc}"
    _last_good = (s.log_dir, time.monotonic(), store.failures)
    return None


def _disk_full(s: Settings) -> str | None:
    """Why the log dir's file system counts as full, or None (also when it cannot be asked:
    the write says what is wrong then)."""
    try:
        st = os.statvfs(s.log_dir)
    except OSError:
        return None
    free = st.f_bavail * st.f_frsize
    if free < MIN_FREE_BYTES:
        return f"the store is unavailable: No space left on device ({free} bytes free)"
    return None


def healthy(s: Settings) -> bool:
    """True when the store takes a write now (see `probe` for the reason when not)."""
    return probe(s) is None


# (log dir, database, instance), time.monotonic(), store.failures, the leader's lease end (epoch
# s, None without one) and the body of the last healthy report in this process
_last_report: tuple[tuple, float, int, float | None, dict[str, Any]] | None = None


def report(s: Settings, *, max_age_s: float = 0.0, now: float | None = None) -> dict[str, Any]:
    """GET /healthz's body: `ok` when the log dir is writable and the store takes a write
    (`probe`), with `detail` saying why not, else who leads the schedule (`instance`, `leader`,
    `is_leader`; left out when the store cannot say).

    `max_age_s`: a healthy report from this process at most that old stands for a new one, as
    the probe's write does (a flood of probes reads the log dir and the lease once a second),
    unless the file system is full now, a store failure was seen since, or the lease it names
    has ended (by `now`, default the clock). An unhealthy report is never reused."""
    global _last_report
    now = clock.now_s(now)
    key = (s.log_dir, s.db_url, s.instance)
    last = _last_report
    if (
        max_age_s > 0
        and last is not None
        and last[0] == key
        and last[2] == store.failures
        and time.monotonic() - last[1] < max_age_s
        and (last[3] is None or last[3] > now)
        and _disk_full(s) is None
    ):
        return dict(last[4])
    _last_report = None
    log_dir_ok = s.log_dir.is_dir() and os.access(s.log_dir, os.W_OK)
    problem = probe(s, max_age_s=max_age_s) if log_dir_ok else f"log dir {s.log_dir} is not a writable directory"
    body: dict[str, Any] = {
        "ok": problem is None,
        "version": __version__,
        "log_dir_writable": log_dir_ok,
        "db_ok": problem is None,
    }
    if problem is not None:
        body["detail"] = problem
        return body
    from echoops.core import scheduler  # lazy: the scheduler package only for this read

    made = time.monotonic()
    try:
        body.update(scheduler.leadership(s=s, now=now))
    except store.errors(OSError):
        return body  # healthy, but not kept: the next probe asks the store again
    leader = body.get("leader")
    until = clock.parse_ts(leader["until"]) if leader else None
    _last_report = (key, made, store.failures, until, dict(body))
    return body
