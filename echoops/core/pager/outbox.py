"""The durable delivery outbox: claim a due delivery under a lease, attempt it, record the result.

One row per (incident, channel) in `pager_outbox`, state pending -> ok | failed | unconfirmed
(or skipped from the start). Several drainers (gunicorn workers' background threads,
`echoops page run`, `page raise`) can run at once: a row is claimed in a transaction that
locks it (claimed_by/claimed_until), so one delivery is never attempted by two of them. On a
PostgreSQL store shared by several instances the claim is `SELECT ... FOR UPDATE SKIP
LOCKED`: two servers' drainers claim different rows side by side, never the same one.

Retries: at most MAX_ATTEMPTS (6) attempts per delivery, the first plus 5 retries after
BACKOFF_S (10 s, 1 min, 3 min, 10 min, 20 min, +0-10% jitter: 34 min in all; a Telegram 429
waits at least its `retry_after`). Errors that can never succeed (Telegram 400/401/403, an SMTP
5xx such as a refused login, a header that cannot be encoded) are not retried. Then the row is
`failed` for good: a notice goes out through the other configured channel, and `echoops page
retry` re-drives it by hand (a new series of 6).

Recording: the claim writes the attempt number (`sending_attempt`) before the network call,
and the result clears it, in the store first, then logs/incidents.ndjson. An attempt whose
result was never recorded (the sender died, or could not write: a full disk) is resolved when
its lease runs out, per channel (SEMANTICS): Telegram is at-most-once (a duplicate page is
worse than a late one: the row becomes `unconfirmed`, is not re-sent, and a notice goes out
through the other channel); email is at-least-once (it counts as a failed attempt and is
retried; receivers can dedup on the Message-ID, which names the incident).
"""

from __future__ import annotations

import random
import time
from typing import Any

from echoops.core import clock, ndjson, store
from echoops.core.config import Settings
from echoops.core.errors import EchoopsError, NotFound, ValidationError
from echoops.core.pager import incidents, model
from echoops.core.pager.channels import Outcome, Page
from echoops.core.pager.types import Raised
from echoops.core.redact import redact

MAX_ATTEMPTS = 6  # "retries with backoff up to 5 times": the first attempt and 5 retries
BACKOFF_S = (10.0, 60.0, 180.0, 600.0, 1200.0)  # wait after failed attempt 1..5
JITTER = 0.1  # up to +10% on each wait, so many failed deliveries do not retry in step
RETRY_AFTER_CAP_S = 3600.0  # a Telegram flood wait longer than this is junk
SEMANTICS = {"telegram": "at-most-once", "email": "at-least-once"}
LABEL = {"telegram": "Telegram", "email": "Email"}
NOTICE_FP = "pager:delivery_failed:"  # + channel: the notice that a channel's delivery failed
UNCONFIRMED = "unconfirmed"
# Deliveries a person must hear about when they fail (an edit of a sent message is cosmetic).
WATCHED_KINDS = ("page", "escalate", "resolved")


def semantics(channel: str, kind: str = "page") -> str:
    """At-most-once for a Telegram message (a duplicate page is worse than a late one), at-least-once
    for email and for edits (editing a message to what it already shows changes nothing)."""
    return "at-least-once" if kind.startswith("edit_") else SEMANTICS[channel]


class NothingToRetry(EchoopsError):
    """No failed delivery matched `page retry` (exit 1, HTTP 409)."""

    code = "nothing_to_retry"
    status = 409
    exit_code = 1


owner_id = model.lease_owner  # who holds a lease: host, pid and thread


def lease_s(s: Settings) -> float:
    """How long one attempt may take before its row counts as abandoned (s)."""
    return 60.0 + 6 * s.smtp_timeout_s


def backoff_s(attempt: int, rng: random.Random | None = None) -> float:
    """Wait after failed attempt `attempt` (1..5) of a series: BACKOFF_S plus 0-10% jitter."""
    base = BACKOFF_S[min(attempt, len(BACKOFF_S)) - 1]
    return base * (1 + JITTER * (rng or random).random())


def _expire_dead_leases(conn: store.Conn, now: float) -> None:
    """Leases held by processes on this host that no longer exist run out now (killed mid-send)."""
    rows = conn.execute(
        f"SELECT {_KEY_COLUMNS}, claimed_by FROM pager_outbox WHERE claimed_until > ? AND claimed_by LIKE ?",
        (now, model.HOST + ":%"),
    ).fetchall()
    dead = [tuple(r[:4]) for r in rows if model.dead_owner(r[4])]
    if dead:
        with store.transaction(conn):
            conn.executemany(
                f"UPDATE pager_outbox SET claimed_until=? WHERE {_KEY} AND claimed_until > ?",
                [(now, *key, now) for key in dead],
            )


# A delivery is one row per (incident, kind, channel, dest): its primary key.
_KEY_COLUMNS = "incident_id, kind, channel, dest"
_KEY = "incident_id=? AND kind=? AND channel=? AND dest=?"


def _key(row: store.Row) -> tuple[str, str, str, str]:
    return (row["incident_id"], row["kind"], row["channel"], row["dest"])


_SELECT = (
    "SELECT o.*, i.severity, i.source, i.msg, i.fingerprint, i.count, i.first_seen, i.meta "
    "FROM pager_outbox o JOIN pager_incidents i ON i.id = o.incident_id"
)
_DUE = (
    "o.state='pending' AND o.next_attempt_at IS NOT NULL AND o.next_attempt_at <= ? "
    "AND (o.claimed_until IS NULL OR o.claimed_until <= ?) AND o.sending_attempt IS NULL"
)


Claimed = tuple[Any, Page | None]  # (the outbox row joined with its incident, the page to send)


def claim(conn: store.Conn, s: Settings, now: float, owner: str, *, incident_id: str | None = None) -> Claimed | None:
    """Lease the most overdue delivery (of `incident_id`, when given) to `owner`, record the
    attempt about to be made and build its page, in one transaction: once the attempt is marked
    in flight nothing but the send stands between it and the request (a store failure while
    building rolls the claim back, rather than leaving an attempt that was never made to end
    `unconfirmed`). None when nothing is due. The page is None for an edit of a message that was
    never delivered."""
    from echoops.core.pager import messages  # lazy: signing and the button/link builders, ~6 ms; only a sender pays

    where, args = _DUE, list[object]([now, now])
    if incident_id is not None:
        where, args = where + " AND o.incident_id=?", [*args, incident_id]
    if conn.execute(f"SELECT 1 FROM pager_outbox o WHERE {where} LIMIT 1", args).fetchone() is None:
        return None  # the common case, without taking the write lock
    # Row locks only (no store-wide lock): concurrent claimers skip each other's rows.
    with store.transaction(conn, lock=None):
        row = conn.execute(
            f"{_SELECT} WHERE {where} ORDER BY o.next_attempt_at LIMIT 1 FOR UPDATE OF o SKIP LOCKED", args
        ).fetchone()
        if row is None:
            return None
        claimed = conn.execute(
            "UPDATE pager_outbox SET claimed_by=?, claimed_until=?, sending_attempt=?, sending_at=?, updated_at=? "
            f"WHERE {_KEY} AND sending_attempt IS NULL",
            (owner, now + lease_s(s), row["attempts"] + 1, now, now, *_key(row)),
        ).rowcount
        if not claimed:  # another drainer's attempt is in flight (never expected under the lock)
            return None
        page = messages.build(conn, s, row, now)
    return row, page


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


def _next_state(outcome: Outcome, series_attempts: int, now: float) -> tuple[str, float | None]:
    """(state, next_attempt_at) after attempt number `series_attempts` of the series ended in `outcome`."""
    if outcome.ok:
        return "ok", None
    if outcome.status == UNCONFIRMED and not outcome.retry:
        return "unconfirmed", None
    if outcome.retry and series_attempts < MAX_ATTEMPTS:
        wait = backoff_s(series_attempts)
        if outcome.retry_after is not None:
            wait = max(wait, min(max(outcome.retry_after, 0.0), RETRY_AFTER_CAP_S))
        return "pending", now + wait
    return "failed", None


def attempt(conn: store.Conn, claimed: Claimed, s: Settings, now: float, owner: str) -> dict[str, Any]:
    """Deliver one claimed row once, record the result (store first), log each request, and send
    the notice when the delivery ends failed. A failure to record propagates: the attempt stays
    marked as in flight and is resolved when its lease runs out."""
    row, page = claimed
    started = time.monotonic()
    if page is None:  # an edit of a message that was never delivered: nothing to do
        outcomes = [Outcome(False, "nothing_to_edit", False, detail="the message to edit was never delivered")]
    else:
        outcomes = _send(row["channel"], page, s) or [Outcome(False, "no_request", True)]
    now += time.monotonic() - started  # backoff and records count from the answer, not the claim
    final = outcomes[-1]
    number = row["attempts"] + 1
    series = row["round_attempts"] + 1
    state, next_at = _next_state(final, series, now)
    with store.transaction(conn):  # the store first: a crash after this never re-sends
        recorded = conn.execute(
            "UPDATE pager_outbox SET state=?, attempts=?, round_attempts=?, next_attempt_at=?, last_status=?, "
            "last_error=?, delivered_at=?, sending_attempt=NULL, sending_at=NULL, claimed_by=NULL, claimed_until=NULL, "
            f"updated_at=?, ref=coalesce(?, ref) WHERE {_KEY} AND claimed_by=? AND sending_attempt=?",
            (
                state,
                number,
                series,
                next_at,
                str(final.status),
                None if final.ok else final.detail[:500],
                now if final.ok else None,
                now,
                final.ref,
                *_key(row),
                owner,
                number,
            ),
        ).rowcount
    _log_attempt(s, row, number, outcomes, now, lease_lost=not recorded)
    if recorded:
        _finish(s, row, state, number, series, final, now)
    return {"state": state if recorded else "lease_lost", "status": final.status, "next_attempt_at": next_at}


def _log_attempt(
    s: Settings, row: store.Row, number: int, outcomes: list[Outcome], now: float, *, lease_lost: bool = False
) -> None:
    """One `page` event per request of attempt `number` (two when Telegram refused the markup)."""
    path = s.log_path(model.INCIDENTS_LOG)
    for i, outcome in enumerate(outcomes, start=1):
        fields: dict[str, Any] = {
            "sev": row["severity"],
            "channel": row["channel"],
            "id": row["incident_id"],
            "attempt": number,
            "status": outcome.status,
            "ok": outcome.ok,
        }
        if row["kind"] != "page" or row["dest"] != "main":
            fields.update(kind=row["kind"], dest=row["dest"])
        if len(outcomes) > 1:
            fields["request"] = i
        if not outcome.ok:
            fields["error"] = outcome.detail[:300]
        if lease_lost:
            fields["lease_lost"] = True  # the lease ran out first; another drainer resolved the row
        ndjson.append(path, "page", now=now, **fields)


def _finish(
    s: Settings,
    row: store.Row,
    state: str,
    number: int,
    series: int,
    final: Outcome,
    now: float,
) -> None:
    if state == "pending":
        return
    fields: dict[str, Any] = (
        {} if row["kind"] == "page" and row["dest"] == "main" else {"kind": row["kind"], "dest": row["dest"]}
    )
    ndjson.append(
        s.log_path(model.INCIDENTS_LOG),
        "delivery",
        now=now,
        id=row["incident_id"],
        channel=row["channel"],
        state=state,
        attempts=number,
        semantics=semantics(row["channel"], row["kind"]),
        **fields,
    )
    if state in ("failed", UNCONFIRMED) and row["kind"] in model.PAGE_KINDS:
        notify(s, row, state, series, final.detail, now)


def notify(s: Settings, row: store.Row, state: str, series: int, error: str, now: float) -> Raised | None:
    """Tell the other configured channel(s) that `row`'s delivery ended `failed` or `unconfirmed`:
    a CRITICAL incident routed only there, deduped per failing channel (one notice an hour while
    a channel stays down). A notice's own failure sends no further notice."""
    channel = row["channel"]
    enabled = incidents.configured_channels(s)
    others = [c for c in model.CHANNELS if c != channel and enabled[c]]
    if row["fingerprint"].startswith(NOTICE_FP) or not others:
        return None  # no other channel: the failure shows in summaries and on the dashboard
    headline = " ".join(f"{row['severity']} {row['source']}: {row['msg']}".split())[:200]
    if state == UNCONFIRMED:
        what = (
            f"is unconfirmed: attempt {row['sending_attempt']}'s result was never recorded, so it was not sent "
            f"again ({semantics(channel)}); check the chat, then `echoops page retry {row['incident_id']}` if missing"
        )
    else:
        plural = "" if series == 1 else "s"
        what = f"failed after {series} attempt{plural}: {error[:300] or 'no detail'}"
    msg = f"{LABEL[channel]} delivery of {headline} {what} (incident {row['incident_id']})"
    meta = {"incident": row["incident_id"], "channel": channel, "state": state}
    item = ("CRITICAL", msg, "pager", meta, NOTICE_FP + channel, 1)
    try:
        return incidents.record(s, [item], now=now, channels=others)[0]
    except store.errors(OSError):
        return None  # the failure itself is recorded and shown; a notice is best effort


def resolve_unrecorded(conn: store.Conn, s: Settings, now: float) -> list[str]:
    """Resolve attempts whose lease ran out without a recorded result, per SEMANTICS; returns
    the state each resolved row ended in."""
    _expire_dead_leases(conn, now)
    rows = conn.execute(f"{_SELECT} WHERE o.sending_attempt IS NOT NULL AND o.claimed_until <= ?", (now,)).fetchall()
    done: list[str] = []
    for row in rows:
        channel = row["channel"]
        retry = semantics(channel, row["kind"]) == "at-least-once"
        number = row["sending_attempt"]
        detail = f"attempt {number}: the result was never recorded (the sender died or could not write it)"
        outcome = Outcome(False, UNCONFIRMED, retry, detail=detail)
        series = row["round_attempts"] + 1
        state, next_at = _next_state(outcome, series, now)
        with store.transaction(conn):
            changed = conn.execute(
                "UPDATE pager_outbox SET state=?, attempts=?, round_attempts=?, next_attempt_at=?, last_status=?, "
                "last_error=?, sending_attempt=NULL, sending_at=NULL, claimed_by=NULL, claimed_until=NULL, "
                f"updated_at=? WHERE {_KEY} AND sending_attempt=? AND claimed_until <= ?",
                (state, number, series, next_at, UNCONFIRMED, detail, now, *_key(row), number, now),
            ).rowcount
        if not changed:
            continue  # another drainer resolved it first
        done.append(state)
        _log_attempt(s, row, number, [outcome], now)
        _finish(s, row, state, number, series, outcome, now)
    return done


def attempt_now(s: Settings, incident_id: str, *, now: float | None = None) -> dict[str, str]:
    """One attempt of each of `incident_id`'s due deliveries, now; no waiting for a backoff
    (`page raise`, `page retry`). Returns {channel: state after the attempt}."""
    conn = model.db(s)
    t = clock.now_s(now)
    owner = owner_id()
    out: dict[str, str] = {}
    while (claimed := claim(conn, s, t, owner, incident_id=incident_id)) is not None:
        out[claimed[0]["channel"]] = attempt(conn, claimed, s, t, owner)["state"]
    return out


def label(channel: str, kind: str, dest: str) -> str:
    """How a delivery is named in outputs: its channel for a page, else `channel:kind[:escalate]`."""
    if kind == "page" and dest == "main":
        return channel
    return f"{channel}:{kind}" + ("" if dest == "main" else f":{dest}")


def delivery_states(s: Settings, incident_id: str, *, all_kinds: bool = False) -> dict[str, dict[str, Any]]:
    """`{"deliveries": {channel: state}, "attempts": {channel: {attempts, last_status, last_error, retry_at}}}`
    of the incident's page (`all_kinds`: every delivery but edits, named by `label`)."""
    where = "kind IN ('page','escalate','resolved')" if all_kinds else "kind='page' AND dest='main'"
    rows = model.db(s).execute(
        "SELECT channel, kind, dest, state, attempts, last_status, last_error, next_attempt_at FROM pager_outbox "
        f"WHERE incident_id=? AND {where} "
        "ORDER BY created_at, CASE channel WHEN 'telegram' THEN 0 ELSE 1 END, kind, dest",
        (incident_id,),
    )
    deliveries: dict[str, str] = {}
    attempts: dict[str, dict[str, Any]] = {}
    for r in rows:
        name = label(r["channel"], r["kind"], r["dest"])
        deliveries[name] = r["state"]
        attempts[name] = {
            "attempts": r["attempts"],
            "last_status": r["last_status"],
            "last_error": r["last_error"],
            "retry_at": clock.iso(r["next_attempt_at"]) if r["state"] == "pending" and r["next_attempt_at"] else None,
        }
    return {"deliveries": deliveries, "attempts": attempts}


def redrive(
    s: Settings,
    incident_id: str | None = None,
    *,
    all_failed: bool = False,
    channel: str | None = None,
    now: float,
) -> list[tuple[str, str]]:
    """Put failed (and, by id, unconfirmed) deliveries back in the queue for a new series of
    MAX_ATTEMPTS, due now; logs `delivery_retry`. Returns [(incident_id, label)] (see `label`)."""
    if (incident_id is None) == (not all_failed):
        raise ValidationError("give an incident id or --all-failed (not both)", field="id")
    if channel is not None and channel not in model.CHANNELS:
        raise ValidationError(f"channel must be one of {', '.join(model.CHANNELS)}", field="channel")
    conn = model.db(s)
    where, args = "state='failed' AND kind IN ('page','escalate','resolved')", []
    if incident_id is not None:
        if conn.execute("SELECT 1 FROM pager_incidents WHERE id=?", (incident_id,)).fetchone() is None:
            raise NotFound(f"no incident {incident_id!r}")
        where, args = (
            "state IN ('failed','unconfirmed') AND kind IN ('page','escalate','resolved') AND incident_id=?",
            [incident_id],
        )
    if channel is not None:
        where, args = where + " AND channel=?", [*args, channel]
    with store.transaction(conn):
        rows = conn.execute(f"SELECT {_KEY_COLUMNS}, state FROM pager_outbox WHERE {where}", args).fetchall()
        conn.executemany(
            "UPDATE pager_outbox SET state='pending', round_attempts=0, redrives=redrives+1, next_attempt_at=?, "
            f"updated_at=? WHERE {_KEY}",
            [(now, now, *_key(r)) for r in rows],
        )
    if not rows:
        what = f"incident {incident_id}" if incident_id else "any incident"
        raise NothingToRetry(f"no failed delivery of {what}{f' on {channel}' if channel else ''} to retry")
    path = s.log_path(model.INCIDENTS_LOG)
    for r in rows:
        extra = {} if r["kind"] == "page" and r["dest"] == "main" else {"kind": r["kind"], "dest": r["dest"]}
        ndjson.append(
            path, "delivery_retry", now=now, id=r["incident_id"], channel=r["channel"], was=r["state"], **extra
        )
    return [(r["incident_id"], label(r["channel"], r["kind"], r["dest"])) for r in rows]
