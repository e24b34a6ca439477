"""What each outbox delivery says, built when it is sent (so it shows the incident as it is then).

- `page`: the incident, with Telegram buttons (Ack, Resolve, Silence 1h) and email links
  (acknowledge, resolve), when the pager's signing keys are set.
- `escalate`: the same, marked ESCALATED, to the configured chat/recipients (`dest` main) or
  to TELEGRAM_ESCALATE_CHAT_ID / SMTP_ESCALATE_TO (`dest` escalate).
- `resolved`: the RESOLVED notice with the original message, how long it lasted and the note,
  replying to (Telegram) or threaded under (email) the page it ends.
- `edit_ack`, `edit_resolve`, `edit_silence`: the Telegram message named by `dest`
  (`<kind>:<dest>` of the delivery that sent it) re-rendered with the incident's state line
  and the buttons that still make sense.
"""

from __future__ import annotations

from typing import Any

import orjson

from echoops.core import clock, store
from echoops.core.config import Settings
from echoops.core.errors import NotConfigured
from echoops.core.pager import buttons, links
from echoops.core.pager.channels import Page

EDIT_KINDS = ("edit_ack", "edit_resolve", "edit_silence")


def duration(seconds: float) -> str:
    """`3d 4h`, `2h 5m`, `7m`, `40s`: how long something lasted, for people."""
    s = max(int(seconds), 0)
    days, rest = divmod(s, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m"
    return f"{secs}s"


def _hm(ts: float) -> str:
    return clock.iso(ts)[11:16] + " UTC"


def status_line(inc: store.Row) -> str:
    """The incident's state for people: who acked/resolved/silenced it and when."""
    state = inc["state"]
    if state == "acked":
        return (
            f"Acknowledged by {inc['acked_by']} at {_hm(inc['acked_at'])} (repeats held until {_hm(inc['ack_until'])})"
        )
    if state == "resolved":
        took = duration(inc["resolved_at"] - (inc["opened_at"] or inc["first_seen"]))
        note = f": {inc['resolve_note']}" if inc["resolve_note"] else ""
        return f"Incident resolved by {inc['resolved_by']} at {_hm(inc['resolved_at'])} after {took}{note}"
    if state == "silenced":
        return f"Silenced ({inc['silence_id']})"
    return ""


def _actions(s: Settings, inc: store.Row, channel: str, chat: str | None, now: float) -> dict:
    """The buttons (Telegram) or links (email) that fit the incident's state; none without keys."""
    if inc["state"] == "resolved":
        return {}
    wanted = {"acked": ("resolve",), "silenced": ("ack", "resolve")}.get(inc["state"], ("ack", "resolve", "silence"))
    try:
        if channel == "telegram":
            return {"buttons": buttons.keyboard(s, inc["id"], chat or "", wanted)}
        return {"links": links.for_incident(s, inc["id"], now=now)}
    except NotConfigured:
        return {}  # `echoops config` warns: pages go out without buttons or links


def _source(conn: store.Conn, incident_id: str, dest: str) -> store.Row | None:
    """The delivery an edit edits (`dest` is `<kind>:<dest>` of it)."""
    kind, _, where = dest.partition(":")
    return conn.execute(
        "SELECT ref, dest FROM pager_outbox WHERE incident_id=? AND kind=? AND channel='telegram' AND dest=?",
        (incident_id, kind, where),
    ).fetchone()


def _reply_ref(conn: store.Conn, inc: store.Row, channel: str, dest: str) -> str | None:
    """What a RESOLVED notice replies to: the latest message of this episode delivered to the same place."""
    row = conn.execute(
        "SELECT o.incident_id, o.kind, o.ref FROM pager_outbox o JOIN pager_incidents i ON i.id = o.incident_id "
        "WHERE i.fingerprint=? AND i.opened_at IS ? AND o.channel=? AND o.dest=? AND o.kind IN ('page','escalate') "
        "AND o.state='ok' ORDER BY o.delivered_at DESC LIMIT 1",
        (inc["fingerprint"], inc["opened_at"], channel, dest),
    ).fetchone()
    if row is None:
        return None
    if channel == "telegram":
        return row["ref"]
    suffix = f"escalate.{dest}" if row["kind"] == "escalate" else "page"
    return f"<{row['incident_id']}.{suffix}@echoops>"


def targets(s: Settings, channel: str, dest: str) -> tuple[str, ...]:
    """Who a delivery goes to besides the configured chat/recipients: () for `main`, the escalation ones else."""
    if dest != "escalate":
        return ()
    if channel == "telegram":
        return (s.telegram_escalate_chat_id,) if s.telegram_escalate_chat_id else ()
    return s.smtp_escalate_to


def build(conn: store.Conn, s: Settings, row: store.Row, now: float) -> Page | None:
    """The Page for a claimed outbox row (joined with its incident), or None when there is
    nothing left to send (an edit whose message was never delivered)."""
    inc = conn.execute("SELECT * FROM pager_incidents WHERE id=?", (row["incident_id"],)).fetchone()
    kind, channel, dest = row["kind"], row["channel"], row["dest"]
    base = dict(
        incident_id=inc["id"],
        severity=inc["severity"],
        source=inc["source"],
        msg=inc["msg"],
        fingerprint=inc["fingerprint"],
        count=inc["count"],
        first_seen=inc["first_seen"],
        kind=kind,
        meta=_meta(inc["meta"]),
    )
    if kind in EDIT_KINDS:
        source = _source(conn, inc["id"], dest)
        if source is None or not source["ref"]:
            return None
        to = targets(s, channel, source["dest"])
        chat = to[0] if to else s.telegram_chat_id
        return Page(**base, to=to, ref=source["ref"], status=status_line(inc), **_actions(s, inc, channel, chat, now))
    to = targets(s, channel, dest)
    if kind == "resolved":
        return Page(**base, to=to, status=status_line(inc), ref=_reply_ref(conn, inc, channel, dest))
    status = ""
    if kind == "escalate":
        status = f"Not acknowledged {duration(now - inc['first_seen'])} after it was paged"
    chat = (to[0] if to else s.telegram_chat_id) if channel == "telegram" else None
    return Page(**base, to=to, status=status, **_actions(s, inc, channel, chat, now))


def _meta(text: str | None) -> dict[str, Any] | None:
    """The incident's stored `meta` (JSON text) for the channels; None when absent or unreadable."""
    try:
        meta = orjson.loads(text) if text else None
    except orjson.JSONDecodeError:
        return None
    return meta if isinstance(meta, dict) else None
