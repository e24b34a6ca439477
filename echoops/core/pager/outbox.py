"""The durable delivery outbox: claim a due delivery under a lease, attempt it, record the result.

One row per (incident, channel) in `pager_outbox`, state pending -> ok | failed (| skipped).
Several drainers (gunicorn workers' background threads, `echoops page run`) can run at once:
a row is claimed in a BEGIN IMMEDIATE transaction (claimed_by/claimed_until), so one
delivery is never attempted by two of them concurrently. The result of an attempt is
written to the store first, then to logs/incidents.ndjson: a process killed after a
successful send never sends again; one killed between enqueue and send leaves the row
pending (or claimed by a dead pid, which the next drainer on this host takes over).

Retries: a round is up to MAX_ATTEMPTS attempts with exponential backoff and jitter
(429 waits `retry_after`); a row whose round is used up, or that got a permanent refusal,
becomes `failed` and gets a new round later (5 min, doubling, at most hourly) until
PAGER_RETRY_HOURS after it was enqueued; after that it stays `failed`, visible.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import sqlite3
import threading
import time
from collections import Counter
from typing import Any

from echoops.core import clock, ndjson, store
from echoops.core.config import Settings
from echoops.core.pager import model
from echoops.core.pager.channels import Outcome, Page
from echoops.core.redact import redact

MAX_ATTEMPTS = 5
BACKOFF_BASE_S = 1.0
BACKOFF_CAP_S = 30.0
RETRY_AFTER_CAP_S = 300.0  # a longer flood wait is honoured across runs, not slept through
ROUND_DELAY_S = 300.0
ROUND_DELAY_CAP_S = 3600.0
HOST = socket.gethostname()


def owner_id() -> str:
    """Who holds a lease: host, pid and thread (a dead pid on this host frees its leases)."""
    return f"{HOST}:{os.getpid()}:{threading.get_ident()}"


def lease_s(s: Settings) -> float:
    """How long one attempt may take before another drainer may take the row over (s)."""
    return 60.0 + 6 * s.smtp_timeout_s


def backoff_s(attempt: int, rng: random.Random | None = None) -> float:
    """Wait after failed attempt `attempt` (1-based): 1, 2, 4, 8 s ... capped, +0-50% jitter."""
    base = min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2 ** (attempt - 1))
    return base * (1 + 0.5 * (rng or random).random())


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user
        pass
    return True


def _free_dead_leases(conn: sqlite3.Connection, now: float) -> None:
    """Release rows leased by processes on this host that no longer exist (killed mid-send)."""
    rows = conn.execute(
        "SELECT rowid, claimed_by FROM pager_outbox WHERE claimed_until > ? AND claimed_by LIKE ?",
        (now, HOST + ":%"),
    ).fetchall()
    dead = [r[0] for r in rows if not _pid_alive(int(r[1].rsplit(":", 2)[1]))]
    if dead:
        with store.transaction(conn):
            conn.executemany(
                "UPDATE pager_outbox SET claimed_by=NULL, claimed_until=NULL WHERE rowid=? AND claimed_until > ?",
                [(rowid, now) for rowid in dead],
            )


_DUE = (
    "state IN ('pending','failed') AND next_attempt_at IS NOT NULL AND next_attempt_at <= ? "
    "AND (claimed_until IS NULL OR claimed_until <= ?)"
)


def claim(conn: sqlite3.Connection, s: Settings, now: float, owner: str) -> sqlite3.Row | None:
    """Lease the most overdue delivery to `owner`, or None when nothing is due."""
    if conn.execute(f"SELECT 1 FROM pager_outbox WHERE {_DUE} LIMIT 1", (now, now)).fetchone() is None:
        return None  # the common case, without taking the write lock
    with store.transaction(conn):
        row = conn.execute(
            f"SELECT o.rowid AS rowid, o.*, i.severity, i.source, i.msg, i.fingerprint, i.count, i.first_seen "
            f"FROM pager_outbox o JOIN pager_incidents i ON i.id = o.incident_id WHERE {_DUE} "
            f"ORDER BY o.next_attempt_at LIMIT 1",
            (now, now),
        ).fetchone()
        if row is None:
            return None
        conn.execute(
            "UPDATE pager_outbox SET claimed_by=?, claimed_until=?, updated_at=? WHERE rowid=?",
            (owner, now + lease_s(s), now, row["rowid"]),
        )
    return row


def send_once(channel: str, page: Page, s: Settings) -> Outcome:
    """One attempt outside the outbox (`page test`): the last request's outcome."""
    outcomes = _send(channel, page, s)
    return outcomes[-1] if outcomes else Outcome(False, "no_request", True)


def _send(channel: str, page: Page, s: Settings) -> list[Outcome]:
    try:
        if channel == "telegram":
            from echoops.core.pager.channels import telegram  # lazy: httpx, ~40 ms; only a sender pays it

            return telegram.send(page, s)
        from echoops.core.pager.channels import email  # lazy: smtplib+ssl, ~12 ms; only a sender pays it

        return email.send(page, s)
    except Exception as exc:  # a bug in a channel must not wedge the outbox
        return [Outcome(False, type(exc).__name__, True, detail=redact(exc, s))]


def _next_state(row: sqlite3.Row, outcome: Outcome, round_attempts: int, rounds: int, s: Settings, now: float):
    """(state, next_attempt_at, rounds) after `outcome`."""
    if outcome.ok:
        return "ok", None, rounds
    if outcome.retry and round_attempts < MAX_ATTEMPTS:
        wait = backoff_s(round_attempts)
        if outcome.retry_after is not None:
            wait = min(max(outcome.retry_after, 0.0), RETRY_AFTER_CAP_S) + random.random() * 0.25
        return "pending", now + wait, rounds
    rounds += 1
    delay = min(ROUND_DELAY_CAP_S, ROUND_DELAY_S * 2 ** (rounds - 1))
    deadline = row["created_at"] + s.pager_retry_hours * 3600
    return "failed", (now + delay if now + delay <= deadline else None), rounds


def attempt(conn: sqlite3.Connection, row: sqlite3.Row, s: Settings, now: float) -> dict[str, Any]:
    """Deliver one claimed row once (one attempt), record the result, log each request."""
    page = Page(
        row["incident_id"],
        row["severity"],
        row["source"],
        row["msg"],
        row["fingerprint"],
        row["count"],
        row["first_seen"],
    )
    # A new round after `failed` starts counting its attempts again.
    round_attempts = 0 if row["state"] == "failed" else row["round_attempts"]
    started = time.monotonic()
    outcomes = _send(row["channel"], page, s) or [Outcome(False, "no_request", True)]
    now += time.monotonic() - started  # backoff and records count from the answer, not the claim
    final = outcomes[-1]
    round_attempts += len(outcomes)
    state, next_at, rounds = _next_state(row, final, round_attempts, row["rounds"], s, now)
    with store.transaction(conn):  # the store first: a crash after this never re-sends
        conn.execute(
            "UPDATE pager_outbox SET state=?, attempts=attempts+?, round_attempts=?, rounds=?, next_attempt_at=?, "
            "last_status=?, last_error=?, delivered_at=?, claimed_by=NULL, claimed_until=NULL, updated_at=? "
            "WHERE rowid=?",
            (
                state,
                len(outcomes),
                0 if state != "pending" else round_attempts,
                rounds,
                next_at,
                str(final.status),
                None if final.ok else final.detail[:500],
                now if final.ok else None,
                now,
                row["rowid"],
            ),
        )
    path = s.log_path(model.INCIDENTS_LOG)
    first = row["attempts"] + 1
    for n, outcome in enumerate(outcomes, start=first):
        fields: dict[str, Any] = {
            "sev": row["severity"],
            "channel": row["channel"],
            "id": row["incident_id"],
            "attempt": n,
            "status": outcome.status,
            "ok": outcome.ok,
        }
        if not outcome.ok:
            fields["error"] = outcome.detail[:300]
        ndjson.append(path, "page", now=now, **fields)
    if state != "pending":
        ndjson.append(
            path,
            "delivery",
            now=now,
            id=row["incident_id"],
            channel=row["channel"],
            state=state,
            attempts=row["attempts"] + len(outcomes),
            retry_at=clock.iso(next_at) if next_at else None,
        )
    return {"state": state, "status": final.status, "next_attempt_at": next_at}


def drain(
    s: Settings,
    *,
    now: float | None = None,
    budget_s: float = 60.0,
    stop: threading.Event | None = None,
    wake: threading.Event | None = None,
) -> dict[str, int]:
    """Attempt every due delivery; wait for short backoffs while within `budget_s` seconds.

    `now` shifts the clock (tests): time still advances in real seconds from it. `wake`
    cuts a backoff wait short (a new enqueue in this process goes out at once).
    Returns counts of attempts by resulting state.
    """
    conn = model.db(s)
    start_wall, start_mono = clock.now_s(now), time.monotonic()

    def current() -> float:
        return start_wall + (time.monotonic() - start_mono)

    owner = owner_id()
    counts: Counter[str] = Counter()
    _free_dead_leases(conn, current())
    while not (stop is not None and stop.is_set()):
        t = current()
        row = claim(conn, s, t, owner)
        if row is not None:
            counts[attempt(conn, row, s, t)["state"]] += 1
            continue
        nxt = conn.execute(
            "SELECT min(next_attempt_at) FROM pager_outbox WHERE state='pending' AND next_attempt_at IS NOT NULL "
            "AND (claimed_until IS NULL OR claimed_until <= ?)",
            (t,),
        ).fetchone()[0]
        remaining = budget_s - (time.monotonic() - start_mono)
        if nxt is None or nxt - t > remaining:
            break
        wait = max(0.05, min(nxt - t, remaining))
        if wake is not None:
            wake.wait(wait)
            wake.clear()
        elif stop is not None:
            stop.wait(wait)
        else:
            time.sleep(wait)
    return dict(counts)


# --- the server's background drainer --------------------------------------------------------

POLL_S = 2.0  # enqueues from other processes (CLI, scheduler) are picked up within this
_log = logging.getLogger("echoops.pager")


class BackgroundDrain:
    """A daemon thread that drains the outbox when woken (an enqueue in this process) or
    every POLL_S seconds, so a CRITICAL is delivered within seconds without the scheduler."""

    def __init__(self, s: Settings):
        self.s = s
        self.wake = threading.Event()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="echoops-pager-drain", daemon=True)

    def start(self) -> BackgroundDrain:
        model.ENQUEUE_LISTENERS.append(self.wake.set)
        self.thread.start()
        return self

    def close(self, timeout: float = 5.0) -> None:
        self.stop.set()
        self.wake.set()
        if self.wake.set in model.ENQUEUE_LISTENERS:
            model.ENQUEUE_LISTENERS.remove(self.wake.set)
        self.thread.join(timeout)

    def _loop(self) -> None:
        while not self.stop.is_set():
            self.wake.wait(POLL_S)
            self.wake.clear()
            if self.stop.is_set():
                break
            try:
                drain(self.s, budget_s=30.0, stop=self.stop, wake=self.wake)
            except Exception as exc:  # keep draining after a store hiccup; never leak a secret
                _log.warning("pager drain failed: %s", redact(f"{type(exc).__name__}: {exc}", self.s))
                self.stop.wait(POLL_S)


def start_background_drain(s: Settings) -> BackgroundDrain:
    """Start this process's drainer (gunicorn POST_FORK hook: one per worker)."""
    return BackgroundDrain(s).start()
