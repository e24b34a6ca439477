"""Incident inbox: the one way incidents enter echoops (validation, fingerprint, dedup, outbox).

An incident row groups every occurrence of one fingerprint inside one repeat window
(PAGER_REPEAT_MIN, default 60 min, anchored at the row's first occurrence). The first
CRITICAL occurrence opens a row and enqueues one outbox delivery per channel; later ones
inside the window only bump `count`/`last_seen` (deduped). Delivery lives in outbox.py.
"""

from __future__ import annotations

import secrets
import sqlite3
from typing import Any

import orjson

from echoops.core import clock, config, ndjson, parsers, store
from echoops.core.config import Settings
from echoops.core.errors import ValidationError
from echoops.core.pager import outbox
from echoops.core.pager.fingerprint import fingerprint as make_fingerprint
from echoops.core.pager.model import (
    CHANNELS,
    ENQUEUE_LISTENERS,
    INCIDENTS_LOG,
    MAX_FINGERPRINT_CHARS,
    MAX_META_BYTES,
    MAX_MSG_BYTES,
    MAX_SOURCE_CHARS,
    PAGED_SEVERITIES,
    SEND_BUDGET_S,
    SEVERITIES,
    db,
)

# --- validation ---------------------------------------------------------------------------


def _no_controls(value: str, field: str, *, multiline: bool = False) -> None:
    found = parsers.control_char(value, multiline=multiline)
    if found is not None:
        kind = "control characters other than tab and newlines" if multiline else "control characters or line breaks"
        raise ValidationError(f"{field} must not contain {kind} ({found})", field=field)


def validate(
    severity: object, msg: object, source: object, meta: object = None, fingerprint: object = None
) -> tuple[str, str, str, dict | None, str | None]:
    """Checked (severity upper-cased, msg, source, meta, fingerprint); ValidationError names the field.

    `source` and `fingerprint` are one line each (they reach email headers, subjects and
    terminals): no control character, no line break (parsers.CONTROL_CHARS). `msg` may span
    lines (tab, LF, CR, U+2028/U+2029) but holds no other control character; the one-line
    headline of a page collapses its whitespace.
    """
    if not isinstance(severity, str) or severity.strip().upper() not in SEVERITIES:
        raise ValidationError(f"severity must be one of {', '.join(SEVERITIES)}", field="severity")
    if not isinstance(msg, str) or not msg.strip():
        raise ValidationError("msg must be a non-empty string", field="msg")
    if len(msg.encode("utf-8", "surrogatepass")) > MAX_MSG_BYTES:
        raise ValidationError(f"msg must be at most {MAX_MSG_BYTES} bytes", field="msg")
    _no_controls(msg, "msg", multiline=True)
    if not isinstance(source, str) or not source.strip():
        raise ValidationError("source must be a non-empty string", field="source")
    if len(source.strip()) > MAX_SOURCE_CHARS:
        raise ValidationError(f"source must be at most {MAX_SOURCE_CHARS} characters", field="source")
    _no_controls(source, "source")
    if meta is not None:
        if not isinstance(meta, dict):
            raise ValidationError("meta must be a JSON object", field="meta")
        try:
            size = len(orjson.dumps(meta))
        except TypeError:
            raise ValidationError("meta must be a JSON object", field="meta") from None
        if size > MAX_META_BYTES:
            raise ValidationError(f"meta must be at most {MAX_META_BYTES} bytes as JSON", field="meta")
    if fingerprint is not None:
        if not isinstance(fingerprint, str) or not fingerprint.strip():
            raise ValidationError("fingerprint must be a non-empty string", field="fingerprint")
        if len(fingerprint.strip()) > MAX_FINGERPRINT_CHARS:
            raise ValidationError(
                f"fingerprint must be at most {MAX_FINGERPRINT_CHARS} characters", field="fingerprint"
            )
        _no_controls(fingerprint, "fingerprint")
        fingerprint = fingerprint.strip()
    return severity.strip().upper(), msg, source.strip(), meta, fingerprint


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


# --- raising --------------------------------------------------------------------------------


def raise_incident(
    severity: str,
    msg: str,
    source: str,
    meta: dict | None = None,
    fingerprint: str | None = None,
    *,
    now: float | None = None,
    s: Settings | None = None,
    send: bool = False,
) -> dict[str, Any]:
    """Record an incident; page CRITICAL ones at most once per fingerprint per PAGER_REPEAT_MIN.

    Returns `{"id", "fingerprint", "deduped", "channels"}`: `channels` maps each channel to
    the state this call enqueued (`pending` or `skipped`); empty when nothing was paged.
    `send=True` (the CLI's `page raise`) also drains the outbox now, up to SEND_BUDGET_S
    seconds, and adds `deliveries`: the state of each of this incident's deliveries afterwards.
    """
    s = s or config.settings()
    severity, msg, source, meta, fingerprint = validate(severity, msg, source, meta, fingerprint)
    fp = fingerprint or make_fingerprint(source, msg)
    result = record(s, [(severity, msg, source, meta, fp, 1)], now=clock.now_s(now))[0]
    if send:
        result["deliveries"] = _send_now(s, result, now=now)
    return result


def _send_now(s: Settings, result: dict[str, Any], *, now: float | None) -> dict[str, str]:
    if "pending" in result["channels"].values():
        outbox.drain(s, now=now, budget_s=SEND_BUDGET_S)
    rows = db(s).execute("SELECT channel, state FROM pager_outbox WHERE incident_id=?", (result["id"],))
    return {r["channel"]: r["state"] for r in rows}


def record(
    s: Settings, items: list[tuple[str, str, str, dict | None, str, int]], *, now: float
) -> list[dict[str, Any]]:
    """Store validated incidents `(severity, msg, source, meta, fingerprint, count)` in one
    transaction, enqueue their pages, then append one `incident` event each."""
    conn = db(s)
    with store.transaction(conn):
        results, events, enqueued = store_incidents(conn, s, items, now=now)
    publish(s, events, enqueued, now=now)
    return results


def store_incidents(
    conn: sqlite3.Connection, s: Settings, items: list[tuple[str, str, str, dict | None, str, int]], *, now: float
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], bool]:
    """The in-transaction half of record(): (results, events to publish, anything enqueued)."""
    window = s.pager_repeat_min * 60
    enabled = configured_channels(s)
    results: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    enqueued = False
    for severity, msg, source, meta, fp, count in items:
        row = conn.execute(
            "SELECT id, paged, count, severity FROM pager_incidents WHERE fingerprint=? AND first_seen>? "
            "ORDER BY first_seen DESC LIMIT 1",
            (fp, now - window),
        ).fetchone()
        pages = severity in PAGED_SEVERITIES
        channels: dict[str, str] = {}
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
                channels = _enqueue(conn, incident_id, enabled, now)
                enqueued = enqueued or "pending" in channels.values()
        results.append({"id": incident_id, "fingerprint": fp, "deduped": deduped, "channels": channels})
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
                "channels": channels,
            }
        )
    return results, events, enqueued


def _enqueue(conn: sqlite3.Connection, incident_id: str, enabled: dict[str, bool], now: float) -> dict[str, str]:
    """One outbox row per channel: `pending` (due now) or, without its settings, `skipped`."""
    channels = {channel: "pending" if enabled[channel] else "skipped" for channel in CHANNELS}
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
