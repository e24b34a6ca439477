"""Storing incidents: group by fingerprint per repeat window, enqueue deliveries, publish events.

An incident row groups every occurrence of one fingerprint inside one repeat window
(PAGER_REPEAT_MIN, default 60 min, anchored at the row's first occurrence). The first
CRITICAL occurrence opens a row and enqueues one outbox delivery per channel; later ones
inside the window only bump `count`/`last_seen` (deduped). An acked fingerprint counts into
its acked incident until the ack runs out (not paged), one that matches a silence is stored
`silenced` (not paged), and a resolved one opens a new incident at its next occurrence.
Callers validate first (the inbox); the outbox uses this module too, for the notice that a
delivery failed.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from typing import Any

import orjson

from echoops.core import ndjson, store
from echoops.core.config import Settings
from echoops.core.pager import silences
from echoops.core.pager.model import CHANNELS, ENQUEUE_LISTENERS, INCIDENTS_LOG, PAGED_SEVERITIES, SEVERITIES, db
from echoops.core.pager.types import Raised

Item = tuple[str, str, str, "dict | None", str, int]  # (severity, msg, source, meta, fingerprint, count)


def configured_channels(s: Settings) -> dict[str, bool]:
    """Which channels have the settings they need (a channel without them is `skipped`)."""
    return {
        "telegram": bool(s.telegram_bot_token and s.telegram_chat_id),
        "email": bool(s.smtp_host and s.smtp_from and s.smtp_to),
    }


def new_id(now: float) -> str:
    """A new incident id: `inc_` + hex milliseconds + 10 random hex digits."""
    # Sortable by time, unique across processes without coordination.
    return f"inc_{int(now * 1000):012x}{secrets.token_hex(5)}"


def record(s: Settings, items: list[Item], *, now: float, channels: Iterable[str] | None = None) -> list[Raised]:
    """Store validated incidents `(severity, msg, source, meta, fingerprint, count)` in one
    transaction, enqueue their pages (on `channels` only, when given), then append one
    `incident` event each."""
    conn = db(s)
    with store.transaction(conn):
        results, events, enqueued = store_incidents(conn, s, items, now=now, channels=channels)
    publish(s, events, enqueued, now=now)
    return results


def _target(latest: store.Row | None, now: float, window: float, pages: bool, silence: str | None) -> store.Row | None:
    """The incident row a new occurrence counts into, or None when it opens a new one.

    An acked fingerprint counts into its acked incident until the ack runs out, however long
    that is (not paged); a silenced one into its silenced incident of this repeat window; an
    open one into the incident of this repeat window (when that one was paged, or this
    occurrence would not page either). A resolved incident is never counted into.
    """
    if latest is None or latest["state"] == "resolved":
        return None
    if latest["state"] == "acked" and (latest["ack_until"] or 0) > now:
        return latest
    fresh = latest["first_seen"] > now - window
    if silence is not None:
        return latest if fresh and latest["state"] == "silenced" else None
    if latest["state"] in ("open", "acked") and fresh and (latest["paged"] or not pages):
        return latest
    return None


def store_incidents(
    conn: store.Conn,
    s: Settings,
    items: list[Item],
    *,
    now: float,
    channels: Iterable[str] | None = None,
) -> tuple[list[Raised], list[dict[str, Any]], bool]:
    """The in-transaction half of record(): (results, events to publish, anything enqueued)."""
    window = s.pager_repeat_min * 60
    enabled = configured_channels(s)
    routes = CHANNELS if channels is None else tuple(c for c in CHANNELS if c in set(channels))
    results: list[Raised] = []
    events: list[dict[str, Any]] = []
    enqueued = False
    in_force = silences.active(conn, now)  # once per batch: a log flood is many items
    for severity, msg, source, meta, fp, count in items:
        latest = conn.execute(
            "SELECT id, paged, count, severity, state, ack_until, first_seen, opened_at, escalated_at, silence_id "
            "FROM pager_incidents WHERE fingerprint=? ORDER BY first_seen DESC LIMIT 1",
            (fp,),
        ).fetchone()
        silence = next((sid for sid, m in in_force if silences.matches(m, severity, source, msg, fp)), None)
        row = _target(latest, now, window, severity in PAGED_SEVERITIES, silence)
        pages = severity in PAGED_SEVERITIES and silence is None
        enqueued_to: dict[str, str] = {}
        if row is not None:
            # The row keeps the worst severity it has seen (an ERROR after a WARNING escalates).
            worst = min(severity, row["severity"], key=SEVERITIES.index)
            conn.execute(
                "UPDATE pager_incidents SET count=count+?, "
                "last_seen=CASE WHEN last_seen > ? THEN last_seen ELSE ? END, severity=? WHERE id=?",
                (count, now, now, worst, row["id"]),
            )
            incident_id, deduped, total = row["id"], True, row["count"] + count
            state, silence = row["state"], row["silence_id"] if row["state"] == "silenced" else None
            if state == "acked" and (row["ack_until"] or 0) <= now:
                state = "open"  # the ack ran out; the drain's upkeep records it
        else:
            incident_id, deduped, total = new_id(now), False, count
            state = "silenced" if silence is not None else "open"
            # Rows since the fingerprint's last resolve are one episode: same start, one escalation.
            same_episode = latest is not None and latest["state"] != "resolved"
            conn.execute(
                "INSERT INTO pager_incidents(id, fingerprint, severity, source, msg, meta, first_seen, last_seen, "
                "count, paged, state, opened_at, silence_id, escalated_at) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    incident_id,
                    fp,
                    severity,
                    source,
                    msg,
                    orjson.dumps(meta).decode() if meta is not None else None,
                    now,
                    now,
                    count,
                    int(pages),
                    state,
                    latest["opened_at"] if same_episode and latest is not None else now,
                    silence,
                    latest["escalated_at"] if same_episode and latest is not None else None,
                ),
            )
            if pages:
                enqueued_to = _enqueue(conn, incident_id, {c: enabled[c] for c in routes}, now)
                enqueued = enqueued or "pending" in enqueued_to.values()
        result: Raised = {
            "id": incident_id,
            "fingerprint": fp,
            "deduped": deduped,
            "channels": enqueued_to,
            "state": state,
        }
        if silence is not None:
            result["silence"] = silence
        results.append(result)
        event = {
            "id": incident_id,
            "fingerprint": fp,
            "severity": severity,
            "source": source,
            "msg": msg,
            "meta": meta,
            "occurrences": count,
            "count": total,
            "deduped": deduped,
            "channels": enqueued_to,
            "state": state,
        }
        if silence is not None:
            event["silence"] = silence
        events.append(event)
    return results, events, enqueued


def _enqueue(
    conn: store.Conn,
    incident_id: str,
    enabled: dict[str, bool],
    now: float,
    *,
    kind: str = "page",
    dest: str = "main",
) -> dict[str, str]:
    """One outbox row of `kind` per channel of `enabled`: `pending` (due now) or, without its
    settings, `skipped`."""
    channels = {channel: "pending" if ok else "skipped" for channel, ok in enabled.items()}
    conn.executemany(
        "INSERT INTO pager_outbox(incident_id, kind, channel, dest, state, next_attempt_at, last_status, created_at, "
        "updated_at) VALUES(?,?,?,?,?,?,?,?,?) ON CONFLICT DO NOTHING",
        [
            (
                incident_id,
                kind,
                channel,
                dest,
                state,
                now if state == "pending" else None,
                None if state == "pending" else "not_configured",
                now,
                now,
            )
            for channel, state in channels.items()
        ],
    )
    return channels


enqueue = _enqueue  # the outbox's one insert, for escalations and notices (states, escalation)


def publish(s: Settings, events: list[dict[str, Any]], enqueued: bool, *, now: float) -> None:
    """After the commit: one `incident` line per stored incident, then wake local drainers."""
    path = s.log_path(INCIDENTS_LOG)
    for event in events:
        ndjson.append(path, "incident", now=now, **event)
    if enqueued:
        for listener in list(ENQUEUE_LISTENERS):
            listener()
