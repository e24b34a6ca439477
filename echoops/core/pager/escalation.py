"""Escalation: a CRITICAL nobody acknowledged within PAGER_ESCALATE_MIN (default 15; 0 = off) is
paged again, once per episode, marked ESCALATED: to every configured channel, and to
TELEGRAM_ESCALATE_CHAT_ID and SMTP_ESCALATE_TO when set. The drain runs it (the server's thread
every few seconds, and `echoops page run`), driven by its `now`, so `page run --now` simulates it.

Not escalated: acked, silenced or resolved incidents, anything an active silence matches now,
the pager's own notices (fingerprints `pager:...`), and pages older than a day (an upgrade or a
long outage of the drain does not wake everyone for yesterday's news).
"""

from __future__ import annotations

from echoops.core import ndjson, store
from echoops.core.config import Settings
from echoops.core.pager import incidents, silences
from echoops.core.pager.model import INCIDENTS_LOG

MAX_AGE_S = 24 * 3600


def targets(s: Settings) -> dict[str, dict[str, bool]]:
    """dest -> channel -> configured, for an escalation: the main chat/recipients, then the escalation ones."""
    enabled = incidents.configured_channels(s)
    extra = {
        "telegram": bool(s.telegram_bot_token and s.telegram_escalate_chat_id),
        "email": bool(s.smtp_host and s.smtp_from and s.smtp_escalate_to),
    }
    out = {"main": enabled}
    if any(extra.values()):
        out["escalate"] = {c: ok for c, ok in extra.items() if ok}
    return out


def escalate_due(conn: store.Conn, s: Settings, now: float) -> int:
    """Escalate every incident that is due at `now`; returns how many were escalated."""
    if s.pager_escalate_min <= 0:
        return 0
    due = conn.execute(
        "SELECT id, fingerprint, opened_at, severity, source, msg, first_seen FROM pager_incidents "
        "WHERE state='open' AND paged=1 AND severity='CRITICAL' AND escalated_at IS NULL AND acked_at IS NULL "
        "AND first_seen <= ? AND first_seen >= ? AND fingerprint NOT LIKE 'pager:%' ORDER BY first_seen",
        (now - s.pager_escalate_min * 60, now - MAX_AGE_S),
    ).fetchall()
    done = 0
    for row in due:
        if silences.matching(conn, row["severity"], row["source"], row["msg"], row["fingerprint"], now):
            continue  # quiet on purpose; the silence may end before the incident does
        channels: dict[str, str] = {}
        with store.transaction(conn):
            # The whole episode counts as escalated, so its later hourly rows are not escalated again.
            changed = conn.execute(
                "UPDATE pager_incidents SET escalated_at=? WHERE fingerprint=? AND opened_at IS ? "
                "AND escalated_at IS NULL AND state='open'",
                (now, row["fingerprint"], row["opened_at"]),
            ).rowcount
            if not changed:
                continue  # another drainer escalated it first, or it was acked meanwhile
            for dest, enabled in targets(s).items():
                for channel, state in incidents.enqueue(
                    conn, row["id"], enabled, now, kind="escalate", dest=dest
                ).items():
                    channels[channel if dest == "main" else f"{channel}:{dest}"] = state
        done += 1
        ndjson.append(
            s.log_path(INCIDENTS_LOG),
            "incident_escalate",
            now=now,
            id=row["id"],
            fingerprint=row["fingerprint"],
            after_s=round(now - row["first_seen"], 3),
            channels=channels,
        )
    return done
