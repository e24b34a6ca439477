"""Storing incidents: group by fingerprint per repeat window, enqueue deliveries, publish events.

An incident row groups every occurrence of one fingerprint inside one repeat window
(PAGER_REPEAT_MIN, default 60 min, anchored at the row's first occurrence). The first
CRITICAL occurrence opens a row and enqueues one outbox delivery per channel; later ones
inside the window only bump `count`/`last_seen` (deduped). Callers validate first (the
inbox); the outbox uses this module too, for the notice that a delivery failed.
"""

from __future__ import annotations

import secrets
import sqlite3
from collections.abc import Iterable
from typing import Any

import orjson

from echoops.core import ndjson, store
from echoops.core.config import Settings
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


def store_incidents(
    conn: sqlite3.Connection,
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
    for severity, msg, source, meta, fp, count in items:
        row = conn.execute(
            "SELECT id, paged, count, severity FROM pager_incidents WHERE fingerprint=? AND first_seen>? "
            "ORDER BY first_seen DESC LIMIT 1",
            (fp, now - window),
        ).fetchone()
        pages = severity in PAGED_SEVERITIES
        enqueued_to: dict[str, str] = {}
        if row is not None and (row["paged"] or not pages):
            # The row keeps the worst severity it has seen (an ERROR after a WARNING escalates).
            worst = min(severity, row["severity"], key=SEVERITIES.index)
            conn.execute(
                "UPDATE pager_incidents SET count=count+?, last_seen=max(last_seen, ?), severity=? WHERE id=?",
                (count, now, worst, row["id"]),
            )
            incident_id, deduped, total = row["id"], True, row["count"] + count
        else:
            incident_id, deduped, total = new_id(now), False, count
            conn.execute(
                "INSERT INTO pager_incidents(id, fingerprint, severity, source, msg, meta, first_seen, "
                "last_seen, count, paged) VALUES(?,?,?,?,?,?,?,?,?,?)",
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
                ),
            )
            if pages:
                enqueued_to = _enqueue(conn, incident_id, {c: enabled[c] for c in routes}, now)
                enqueued = enqueued or "pending" in enqueued_to.values()
        results.append({"id": incident_id, "fingerprint": fp, "deduped": deduped, "channels": enqueued_to})
        events.append(
            {
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
            }
        )
    return results, events, enqueued


def _enqueue(conn: sqlite3.Connection, incident_id: str, enabled: dict[str, bool], now: float) -> dict[str, str]:
    """One outbox row per channel of `enabled`: `pending` (due now) or, without its settings, `skipped`."""
    channels = {channel: "pending" if ok else "skipped" for channel, ok in enabled.items()}
    conn.executemany(
        "INSERT INTO pager_outbox(incident_id, channel, state, next_attempt_at, last_status, created_at, "
        "updated_at) VALUES(?,?,?,?,?,?,?)",
        [
            (
                incident_id,
                channel,
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


def publish(s: Settings, events: list[dict[str, Any]], enqueued: bool, *, now: float) -> None:
    """After the commit: one `incident` line per stored incident, then wake local drainers."""
    path = s.log_path(INCIDENTS_LOG)
    for event in events:
        ndjson.append(path, "incident", now=now, **event)
    if enqueued:
        for listener in list(ENQUEUE_LISTENERS):
            listener()
