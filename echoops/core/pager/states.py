"""Incident states: open -> acked -> resolved, and silenced. Every change is an event in
logs/incidents.ndjson (`incident_ack`, `incident_resolve`, `incident_ack_expired`) with who and why.

A fingerprint's rows since its last resolve are one **episode** (they share `opened_at`): an
ack, a resolve or a silence applies to the whole episode, so "ack" means "I'm on this problem",
whichever of its hourly pages was pressed. The state of a fingerprint is the state of its
latest row.

- **Ack** holds repeat pages and escalation until the incident is resolved or
  PAGER_ACK_HOURS pass (then the upkeep re-opens it: `incident_ack_expired`); a raise meanwhile
  is counted into the acked incident, not paged. Pending page retries are cancelled.
- **Resolve** is final for the episode: pending pages are cancelled, one RESOLVED notice goes to
  each channel (and escalation target) that delivered a page of it, and the next raise of the
  fingerprint opens and pages a new incident. `auto_resolve` is the same for features that know
  a problem is over (the SLO back to green, the deploy gate cleared, a cost cap raised, an
  Alertmanager "resolved" alert), and does nothing when nothing is open.
- Telegram messages of the episode are edited to show who acked/resolved/silenced it (`edit_*`
  deliveries through the outbox, see messages.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from echoops.core import clock, config, ndjson, store
from echoops.core.config import Settings
from echoops.core.errors import NotFound, ValidationError
from echoops.core.pager import incidents, outbox, silences
from echoops.core.pager.model import CHANNELS, ENQUEUE_LISTENERS, INCIDENTS_LOG, MAX_FINGERPRINT_CHARS, PAGE_KINDS, db
from echoops.core.pager.types import IncidentAction

MAX_NOTE_CHARS = 500
EDITS_PER_ACTION = 10  # Telegram messages edited per action (the newest of the episode)


def _iso(ts: float | None) -> str | None:
    return clock.iso(ts) if ts is not None else None


def _key(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValidationError("give an incident id (inc_...) or a fingerprint", field="id")
    key = value.strip()
    if len(key) > MAX_FINGERPRINT_CHARS:
        raise ValidationError(f"id must be at most {MAX_FINGERPRINT_CHARS} characters", field="id")
    return key


def episode(conn: store.Conn, id_or_fingerprint: str) -> list[store.Row]:
    """The rows of the episode an incident id names (or a fingerprint's latest episode), oldest
    first; NotFound when neither matches."""
    row = conn.execute("SELECT fingerprint, opened_at FROM pager_incidents WHERE id=?", (id_or_fingerprint,)).fetchone()
    if row is None:
        row = conn.execute(
            "SELECT fingerprint, opened_at FROM pager_incidents WHERE fingerprint=? ORDER BY first_seen DESC LIMIT 1",
            (id_or_fingerprint,),
        ).fetchone()
    if row is None:
        raise NotFound(f"no incident or fingerprint {id_or_fingerprint[:80]!r}")
    return conn.execute(
        "SELECT * FROM pager_incidents WHERE fingerprint=? AND opened_at IS ? ORDER BY first_seen",
        (row["fingerprint"], row["opened_at"]),
    ).fetchall()


def _action(row: store.Row, changed: bool, ids: list[str], notices: dict[str, str] | None = None) -> IncidentAction:
    return {
        "id": row["id"],
        "fingerprint": row["fingerprint"],
        "state": row["state"],
        "changed": changed,
        "ids": ids,
        "acked_by": row["acked_by"],
        "acked_at": _iso(row["acked_at"]),
        "ack_until": _iso(row["ack_until"]),
        "resolved_by": row["resolved_by"],
        "resolved_at": _iso(row["resolved_at"]),
        "note": row["resolve_note"],
        "notices": notices or {},
    }


def _reload(conn: store.Conn, incident_id: str) -> store.Row:
    return conn.execute("SELECT * FROM pager_incidents WHERE id=?", (incident_id,)).fetchone()


def _cancel_pending_pages(conn: store.Conn, ids: list[str], now: float) -> None:
    """Pages and escalations of `ids` still waiting for an attempt will not wake anyone now."""
    conn.executemany(
        "UPDATE pager_outbox SET state='cancelled', next_attempt_at=NULL, last_status='cancelled', updated_at=? "
        f"WHERE incident_id=? AND kind IN ({','.join('?' * len(PAGE_KINDS))}) AND state='pending' "
        "AND sending_attempt IS NULL",
        [(now, i, *PAGE_KINDS) for i in ids],
    )


def enqueue_edits(conn: store.Conn, ids: list[str], kind: str, now: float) -> int:
    """An `edit_*` delivery for each Telegram message this episode sent (newest first, at most
    EDITS_PER_ACTION); an edit already queued is re-armed. Returns how many were queued."""
    marks = ",".join("?" * len(ids))
    sent = conn.execute(
        f"SELECT incident_id, kind, dest FROM pager_outbox WHERE incident_id IN ({marks}) AND channel='telegram' "
        "AND kind IN ('page','escalate') AND state='ok' AND ref IS NOT NULL ORDER BY delivered_at DESC LIMIT ?",
        (*ids, EDITS_PER_ACTION),
    ).fetchall()
    for r in sent:
        conn.execute(
            "INSERT INTO pager_outbox(incident_id, kind, channel, dest, state, next_attempt_at, created_at, "
            "updated_at) VALUES(?,?,'telegram',?,'pending',?,?,?) ON CONFLICT(incident_id, kind, channel, dest) "
            "DO UPDATE SET state='pending', next_attempt_at=excluded.next_attempt_at, round_attempts=0, "
            "updated_at=excluded.updated_at WHERE pager_outbox.sending_attempt IS NULL",
            (r["incident_id"], kind, f"{r['kind']}:{r['dest']}", now, now, now),
        )
    return len(sent)


def publish(s: Settings, events: list[tuple[str, dict[str, Any]]], wake: bool, now: float) -> None:
    path = s.log_path(INCIDENTS_LOG)
    for name, fields in events:
        ndjson.append(path, name, now=now, **fields)
    if wake:
        for listener in list(ENQUEUE_LISTENERS):
            listener()


# --- ack ----------------------------------------------------------------------------------


def ack_rows(
    conn: store.Conn, s: Settings, rows: list[store.Row], by: str, now: float
) -> tuple[IncidentAction, list[tuple[str, dict[str, Any]]], bool]:
    """Inside a transaction: ack the episode `rows`; (result, events to publish, anything queued)."""
    latest = rows[-1]
    if latest["state"] == "resolved" or (latest["state"] == "acked" and (latest["ack_until"] or 0) > now):
        return _action(latest, False, []), [], False  # a repeat: already acked, or over
    ids = [r["id"] for r in rows if r["state"] != "resolved"]
    until = now + s.pager_ack_hours * 3600
    conn.executemany(
        "UPDATE pager_incidents SET state='acked', acked_by=?, acked_at=?, ack_until=? WHERE id=?",
        [(by, now, until, i) for i in ids],
    )
    _cancel_pending_pages(conn, ids, now)
    edits = enqueue_edits(conn, ids, "edit_ack", now)
    row = _reload(conn, latest["id"])
    event = {"id": row["id"], "ids": ids, "fingerprint": row["fingerprint"], "by": by, "ack_until": clock.iso(until)}
    return _action(row, True, ids), [("incident_ack", event)], edits > 0


def ack(
    id_or_fingerprint: object,
    *,
    by: object = None,
    s: Settings | None = None,
    now: float | None = None,
    send: bool = False,
) -> IncidentAction:
    """Acknowledge an incident (by id or fingerprint): "I'm on it". Repeats of it are counted,
    not paged, and it is not escalated, until it is resolved or PAGER_ACK_HOURS pass.

    Idempotent: acking an acked (or resolved) incident changes nothing (`changed: false`).
    NotFound for an unknown id/fingerprint; ValidationError (field `id`/`by`) for bad input.
    `send=True` (the CLI) also makes the first attempt of the Telegram edits now.
    """
    s = s or config.settings()
    key, who = _key(id_or_fingerprint), silences.who(by, "api")
    t = clock.now_s(now)
    conn = db(s)
    with store.transaction(conn):
        result, events, wake = ack_rows(conn, s, episode(conn, key), who, t)
    publish(s, events, wake, t)
    if send and wake:
        _send_now(s, result["ids"], t)
    return result


def _send_now(s: Settings, ids: list[str], now: float) -> None:
    """First attempts of what an action queued, now (the CLI; the server's drain would within seconds)."""
    for incident_id in ids:
        outbox.attempt_now(s, incident_id, now=now)


# --- resolve ------------------------------------------------------------------------------


def resolve_rows(
    conn: store.Conn, s: Settings, rows: list[store.Row], by: str, note: str | None, now: float
) -> tuple[IncidentAction, list[tuple[str, dict[str, Any]]], bool]:
    """Inside a transaction: resolve the episode `rows`; (result, events to publish, anything queued)."""
    latest = rows[-1]
    if latest["state"] == "resolved":
        return _action(latest, False, []), [], False
    ids = [r["id"] for r in rows]
    conn.executemany(
        "UPDATE pager_incidents SET state='resolved', resolved_by=?, resolved_at=?, resolve_note=? WHERE id=?",
        [(by, now, note, i) for i in ids],
    )
    _cancel_pending_pages(conn, ids, now)
    marks = ",".join("?" * len(ids))
    # One RESOLVED notice per place that got a page of this episode (the configured chat or
    # recipients, and the escalation ones), on the latest incident.
    places = conn.execute(
        f"SELECT DISTINCT channel, dest FROM pager_outbox WHERE incident_id IN ({marks}) AND state='ok' "
        "AND kind IN ('page','escalate') ORDER BY channel, dest",
        ids,
    ).fetchall()
    enabled = incidents.configured_channels(s)
    notices: dict[str, str] = {}
    for p in sorted(places, key=lambda p: (CHANNELS.index(p["channel"]), p["dest"])):
        state = incidents.enqueue(
            conn, latest["id"], {p["channel"]: enabled[p["channel"]]}, now, kind="resolved", dest=p["dest"]
        )
        notices[p["channel"] if p["dest"] == "main" else f"{p['channel']}:{p['dest']}"] = state[p["channel"]]
    edits = enqueue_edits(conn, ids, "edit_resolve", now)
    row = _reload(conn, latest["id"])
    began = row["opened_at"] if row["opened_at"] is not None else rows[0]["first_seen"]
    event = {
        "id": row["id"],
        "ids": ids,
        "fingerprint": row["fingerprint"],
        "by": by,
        "note": note,
        "duration_s": round(now - began, 3),
        "notices": notices,
    }
    return _action(row, True, ids, notices), [("incident_resolve", event)], edits > 0 or "pending" in notices.values()


def _note(note: object) -> str | None:
    if note is None or note == "":
        return None
    if not isinstance(note, str):
        raise ValidationError("note must be a string", field="note")
    text = note.strip()
    if len(text) > MAX_NOTE_CHARS:
        raise ValidationError(f"note must be at most {MAX_NOTE_CHARS} characters", field="note")
    return text or None


def resolve(
    id_or_fingerprint: object,
    *,
    by: object = None,
    note: object = None,
    s: Settings | None = None,
    now: float | None = None,
    send: bool = False,
) -> IncidentAction:
    """Resolve an incident (by id or fingerprint): "it's fixed". Sends one RESOLVED notice (the
    original message, how long it lasted, `note`) to each channel that delivered its page, and
    re-opens the fingerprint: its next raise is a new incident, paged at once.

    The one core call for every way an incident ends: `echoops page resolve`, `POST
    /api/incidents/resolve`, the Telegram button, the email link, and the automatic resolves
    (use `auto_resolve` when it is fine that nothing is open). Idempotent (`changed: false`
    when already resolved); NotFound for an unknown id/fingerprint. `send=True` (the CLI) also
    makes the first attempt of the notices and edits now (retries are the outbox's).
    """
    s = s or config.settings()
    key, who, text = _key(id_or_fingerprint), silences.who(by, "api"), _note(note)
    t = clock.now_s(now)
    conn = db(s)
    with store.transaction(conn):
        result, events, wake = resolve_rows(conn, s, episode(conn, key), who, text, t)
    publish(s, events, wake, t)
    if send and wake:
        _send_now(s, result["ids"], t)
    return result


def auto_resolve(
    fingerprint: str, *, by: str, note: str | None = None, s: Settings | None = None, now: float | None = None
) -> IncidentAction | None:
    """resolve(fingerprint) when its latest incident is not resolved yet, else nothing (None):
    for features that see a problem end (`by` names them, e.g. "auto:slo")."""
    s = s or config.settings()
    conn = db(s)
    latest = conn.execute(
        "SELECT state FROM pager_incidents WHERE fingerprint=? ORDER BY first_seen DESC LIMIT 1", (fingerprint,)
    ).fetchone()
    if latest is None or latest["state"] == "resolved":
        return None
    result = resolve(fingerprint, by=by, note=note, s=s, now=now)
    return result if result["changed"] else None


# --- upkeep -------------------------------------------------------------------------------


def expire_acks(conn: store.Conn, s: Settings, now: float) -> int:
    """Re-open acked incidents whose ack ran out (`incident_ack_expired`): their next raise pages
    again. Called by the drain's upkeep; returns how many episodes re-opened."""
    due = conn.execute(
        "SELECT fingerprint, opened_at, max(ack_until) AS until, group_concat(id) AS ids FROM pager_incidents "
        "WHERE state='acked' AND ack_until <= ? GROUP BY fingerprint, opened_at",
        (now,),
    ).fetchall()
    done = 0
    for r in due:
        with store.transaction(conn):
            changed = conn.execute(
                "UPDATE pager_incidents SET state='open' WHERE fingerprint=? AND opened_at IS ? AND state='acked' "
                "AND ack_until <= ?",
                (r["fingerprint"], r["opened_at"], now),
            ).rowcount
        if changed:
            done += 1
            ndjson.append(
                s.log_path(INCIDENTS_LOG),
                "incident_ack_expired",
                now=now,
                ids=r["ids"].split(","),
                fingerprint=r["fingerprint"],
                ack_until=clock.iso(r["until"]),
            )
    return done


# --- request bodies (POST /api/incidents/ack, /resolve) ----------------------------------

ACK_FIELDS = ("id", "fingerprint", "by")
RESOLVE_FIELDS = ("id", "fingerprint", "by", "note")


def _target(body: Mapping[str, object], allowed: tuple[str, ...]) -> str:
    """The id or fingerprint a request body names (exactly one of them); unknown fields refused."""
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        raise ValidationError(f"unknown field {unknown[0]!r} (allowed: {', '.join(allowed)})", field=unknown[0])
    given = [name for name in ("id", "fingerprint") if body.get(name) not in (None, "")]
    if len(given) != 1:
        raise ValidationError("give exactly one of id and fingerprint", field="id")
    value = body[given[0]]
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(f"{given[0]} must be a non-empty string", field=given[0])
    return _key(value)


def ack_request(body: Mapping[str, object], *, s: Settings | None = None, now: float | None = None) -> IncidentAction:
    """ack() from a request body `{id | fingerprint, by?}` (`POST /api/incidents/ack`)."""
    return ack(_target(body, ACK_FIELDS), by=body.get("by"), s=s, now=now)


def resolve_request(
    body: Mapping[str, object], *, s: Settings | None = None, now: float | None = None
) -> IncidentAction:
    """resolve() from a request body `{id | fingerprint, note?, by?}` (`POST /api/incidents/resolve`)."""
    return resolve(_target(body, RESOLVE_FIELDS), by=body.get("by"), note=body.get("note"), s=s, now=now)
