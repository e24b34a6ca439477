"""The incident summary: the last N hours grouped by fingerprint, with each group's delivery states
and the deliveries that need a person (`failed` after their attempts, or `unconfirmed`).

The last-24h summary is also written to logs/incident_summary.json (atomic replace) by every
24h call, among them every `echoops page run`, so a file reader and the endpoint agree.
"""

from __future__ import annotations

from echoops.core import clock, config, files, store
from echoops.core.config import Settings
from echoops.core.errors import ValidationError
from echoops.core.pager.model import DELIVERY_STATES, SEVERITIES, STATES, SUMMARY_FILE, db
from echoops.core.pager.types import Attention, Summary, SummaryGroup, SummaryTotals

MAX_SUMMARY_HOURS = 24 * 31
ATTENTION_STATES = ("failed", "unconfirmed")
ATTENTION_DAYS = 7  # a failed delivery is listed this long (whatever `hours`), or until re-driven
ATTENTION_MAX = 50


def _iso(ts: float | None) -> str | None:
    return clock.iso(ts) if ts is not None else None


def attention(conn: store.Conn, now: float) -> list[Attention]:
    """Deliveries that need a person: `failed` after their attempts, or `unconfirmed`, newest first,
    those that ended in the last ATTENTION_DAYS (at most ATTENTION_MAX)."""
    rows = conn.execute(
        "SELECT o.incident_id, o.channel, o.kind, o.dest, o.state, o.attempts, o.last_status, o.last_error, "
        "o.updated_at, i.severity, i.source, i.msg FROM pager_outbox o JOIN pager_incidents i ON i.id = o.incident_id "
        "WHERE o.state IN ('failed','unconfirmed') AND o.kind IN ('page','escalate','resolved') "
        "AND o.updated_at >= ? AND o.updated_at <= ? ORDER BY o.updated_at DESC LIMIT ?",
        (now - ATTENTION_DAYS * 86400, now, ATTENTION_MAX),
    )
    return [
        {
            "id": r["incident_id"],
            "channel": r["channel"],
            "kind": r["kind"] if r["dest"] == "main" else f"{r['kind']}:{r['dest']}",
            "state": r["state"],
            "attempts": r["attempts"],
            "last_status": r["last_status"],
            "last_error": r["last_error"],
            "at": clock.iso(r["updated_at"]),
            "severity": r["severity"],
            "source": r["source"],
            "msg": r["msg"][:300],
        }
        for r in rows
    ]


def summarize(*, hours: float | str = 24, s: Settings | None = None, now: float | None = None) -> Summary:
    """Incidents seen in the last `hours` grouped by fingerprint, newest first: counts, pages, the
    delivery state of each group's latest page per channel and how many of its deliveries failed or
    are unconfirmed; plus `attention`, every delivery that needs a person (see `attention()`).
    The 24h summary is also written to logs/incident_summary.json."""
    s = s or config.settings()
    try:
        hours = config.check_number(hours, hi=MAX_SUMMARY_HOURS, lo_open=True)
    except ValueError as exc:
        raise ValidationError(f"hours: {exc}", field="hours") from None
    t = clock.now_s(now)
    since = t - hours * 3600
    conn = db(s)
    rows = conn.execute(
        "SELECT id, fingerprint, severity, source, msg, first_seen, last_seen, count, paged, state, acked_by, "
        "acked_at, ack_until, resolved_at, resolved_by, resolve_note, silence_id, escalated_at "
        "FROM pager_incidents WHERE last_seen >= ? AND first_seen <= ? ORDER BY first_seen",
        (since, t),
    ).fetchall()
    totals: SummaryTotals = {
        "groups": 0,
        "incidents": 0,
        "pages": 0,
        "pages_raised": 0,
        "by_severity": {name: 0 for name in SEVERITIES},
        "deliveries": {state: 0 for state in DELIVERY_STATES},
        "by_state": {state: 0 for state in STATES},
    }
    latest_paged: dict[str, str] = {}
    raised_at: dict[str, float] = {}  # a page's incident id -> when it was raised
    accepted: set[str] = set()  # pages some channel took (delivery state ok)
    group_of: dict[str, str] = {}
    groups: dict[str, SummaryGroup] = {}
    last_seen: dict[str, float] = {}  # epoch s per group (the group holds it as ISO text)
    for r in rows:
        fp = r["fingerprint"]
        g = groups.get(fp)
        if g is None:
            g = groups[fp] = {
                "fingerprint": fp,
                "severity": r["severity"],
                "source": r["source"],
                "msg": r["msg"],
                "count": 0,
                "first_seen": clock.iso(r["first_seen"]),  # rows come oldest first
                "last_seen": "",
                "paged": False,
                "pages": 0,
                "pages_raised": 0,
                "latest_id": r["id"],
                "deliveries": {},
                "failed_deliveries": 0,
                "state": "open",
                "paged_at": None,
                "acked_by": None,
                "acked_at": None,
                "ack_until": None,
                "resolved_at": None,
                "resolved_by": None,
                "note": None,
                "silence": None,
                "escalated_at": None,
            }
        g["count"] += r["count"]
        # The group's state is its latest incident's (rows come oldest first).
        g["state"] = "open" if r["state"] == "acked" and (r["ack_until"] or 0) <= t else r["state"]
        g["acked_by"], g["acked_at"], g["ack_until"] = r["acked_by"], _iso(r["acked_at"]), _iso(r["ack_until"])
        g["resolved_at"], g["resolved_by"], g["note"] = _iso(r["resolved_at"]), r["resolved_by"], r["resolve_note"]
        g["silence"], g["escalated_at"] = r["silence_id"], _iso(r["escalated_at"])
        last_seen[fp] = max(last_seen.get(fp, r["last_seen"]), r["last_seen"])
        g["msg"], g["latest_id"] = r["msg"], r["id"]
        g["severity"] = min(g["severity"], r["severity"], key=SEVERITIES.index)  # the worst (most severe first)
        totals["by_severity"][r["severity"]] += r["count"]
        if r["paged"]:
            g["pages_raised"] += 1
            latest_paged[r["fingerprint"]] = r["id"]
            group_of[r["id"]] = r["fingerprint"]
            raised_at[r["id"]] = r["first_seen"]
    # Every delivery of every page in the window counts in the totals (an older page of a
    # group can still be failing); a group shows the states of its latest page.
    for d in conn.execute(
        "SELECT o.incident_id, o.channel, o.state FROM pager_outbox o JOIN pager_incidents i ON i.id = o.incident_id "
        "WHERE i.last_seen >= ? AND i.first_seen <= ? AND o.kind='page' AND o.dest='main'",
        (since, t),
    ):
        fp = group_of.get(d["incident_id"])
        if fp is None:
            continue
        totals["deliveries"][d["state"]] = totals["deliveries"].get(d["state"], 0) + 1
        if d["state"] in ATTENTION_STATES:
            groups[fp]["failed_deliveries"] += 1
        if d["state"] == "ok":
            accepted.add(d["incident_id"])
        if latest_paged[fp] == d["incident_id"]:
            groups[fp]["deliveries"][d["channel"]] = d["state"]
    # Paged means a channel took the page: a page every channel skipped (none configured), or
    # one still pending or failed, told nobody yet.
    for incident_id in sorted(accepted, key=raised_at.__getitem__):
        g = groups[group_of[incident_id]]
        g["paged"] = True
        g["pages"] += 1
        g["paged_at"] = clock.iso(raised_at[incident_id])
    for fp, g in groups.items():
        totals["groups"] += 1
        totals["incidents"] += g["count"]
        totals["pages"] += g["pages"]
        totals["pages_raised"] += g["pages_raised"]
        totals["by_state"][g["state"]] += 1
        g["last_seen"] = clock.iso(last_seen[fp])
    ordered = sorted(groups.values(), key=lambda g: g["last_seen"], reverse=True)
    body: Summary = {
        "generated_at": clock.iso(t),
        "hours": hours,
        "groups": ordered,
        "totals": totals,
        "attention": attention(conn, t),
    }
    if hours == 24:
        files.write_json(s.log_path(SUMMARY_FILE), body)
    return body
