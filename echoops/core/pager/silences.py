"""Silences: "quiet, we're migrating the database". A silence has matchers, a reason, who set it
and an end; while it lasts, an incident that matches all its matchers is recorded with state
`silenced` and not paged (nor escalated). It ends by itself at `ends_at` (a `silence_expire`
event, written by the next drain) or when removed (`silence_expire` with `why: "removed"`).

Matchers (Alertmanager's label matchers, on the fields an echoops incident has): `source`,
`severity` (case-insensitive equality), `fingerprint` (exact) and `msg~` (the message contains
the text, case-insensitive). At most one matcher per key; all must match.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any

import orjson

from echoops.core import clock, config, ndjson, store
from echoops.core.config import Settings
from echoops.core.errors import NotFound, ValidationError
from echoops.core.pager.model import INCIDENTS_LOG, MAX_FINGERPRINT_CHARS, MAX_SOURCE_CHARS, SEVERITIES, db
from echoops.core.pager.types import Silence, Silences

KEYS = ("source", "severity", "fingerprint", "msg~")
MAX_MATCH_CHARS = {"source": MAX_SOURCE_CHARS, "severity": 10, "fingerprint": MAX_FINGERPRINT_CHARS, "msg~": 200}
MIN_FOR_S = 60.0
MAX_FOR_S = 30 * 86400.0
MAX_REASON_CHARS = 500
MAX_BY_CHARS = 80
ENDED_SHOWN_S = 7 * 86400  # `silences --all` lists silences that ended this recently
# Incidents a new silence takes over (open ones seen this recently): their repeats and escalation stop.
TAKE_OVER_S = 24 * 3600


def _text(value: object, field: str, max_chars: int, *, required: bool = True) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(f"{field} must be a non-empty string", field=field)
    text = " ".join(value.split())
    if len(text) > max_chars:
        raise ValidationError(f"{field} must be at most {max_chars} characters", field=field)
    return text


def who(by: object, default: str) -> str:
    """`by` checked (<= 80 characters, one line), or `default` when not given."""
    return _text(by, "by", MAX_BY_CHARS, required=False) or default


def parse_matchers(match: object) -> dict[str, str]:
    """`{key: value}` from a JSON object, or from `key=value` strings (`msg~=text` or `msg~text`).

    ValidationError (field `match`) for an unknown key, a repeated key, an empty value or none at all.
    """
    pairs: list[tuple[str, object]] = []
    if isinstance(match, Mapping):
        pairs = list(match.items())
    elif isinstance(match, (list, tuple)):
        for item in match:
            if not isinstance(item, str):
                raise ValidationError("each matcher must be a 'key=value' string", field="match")
            if item.startswith("msg~"):
                pairs.append(("msg~", item[4:].removeprefix("=")))
            elif "=" in item:
                name, _, text = item.partition("=")
                pairs.append((name.strip(), text))
            else:
                raise ValidationError(f"matcher {item[:40]!r} is not key=value", field="match")
    else:
        raise ValidationError('match must be an object such as {"source": "maint"}', field="match")
    out: dict[str, str] = {}
    for key, value in pairs:
        if key not in KEYS:
            raise ValidationError(f"unknown matcher key {str(key)[:40]!r} (use {', '.join(KEYS)})", field="match")
        if key in out:
            raise ValidationError(f"matcher key {key!r} given twice", field="match")
        if not isinstance(value, str) or not value.strip():
            raise ValidationError(f"matcher {key!r} needs a non-empty value", field="match")
        value = value.strip()
        if len(value) > MAX_MATCH_CHARS[key]:
            raise ValidationError(f"matcher {key!r} must be at most {MAX_MATCH_CHARS[key]} characters", field="match")
        if key == "severity":
            value = value.upper()
            if value not in SEVERITIES:
                raise ValidationError(f"severity must be one of {', '.join(SEVERITIES)}", field="match")
        out[key] = value
    if not out:
        raise ValidationError("a silence needs at least one matcher", field="match")
    return out


def matches(matchers: Mapping[str, str], severity: str, source: str, msg: str, fingerprint: str) -> bool:
    """True when the incident fields meet every matcher."""
    for key, value in matchers.items():
        if key == "source" and source.strip().lower() != value.lower():
            return False
        if key == "severity" and severity.upper() != value:
            return False
        if key == "fingerprint" and fingerprint != value:
            return False
        if key == "msg~" and value.lower() not in msg.lower():
            return False
    return True


def active(conn: store.Conn, now: float) -> list[tuple[str, dict[str, str]]]:
    """(id, matchers) of every silence in force at `now`, oldest first."""
    rows = conn.execute(
        "SELECT id, matchers FROM pager_silences WHERE ended_at IS NULL AND ends_at > ? ORDER BY created_at",
        (now,),
    )
    return [(r["id"], orjson.loads(r["matchers"])) for r in rows]


def active_id(conn: store.Conn, silence_id: str | None, now: float) -> bool:
    """Whether silence `silence_id` is in force at `now`."""
    if not silence_id:
        return False
    row = conn.execute(
        "SELECT 1 FROM pager_silences WHERE id=? AND ended_at IS NULL AND ends_at > ?", (silence_id, now)
    ).fetchone()
    return row is not None


def matching(conn: store.Conn, severity: str, source: str, msg: str, fingerprint: str, now: float) -> str | None:
    """The id of the first silence in force that the incident matches, or None."""
    for sid, matchers in active(conn, now):
        if matches(matchers, severity, source, msg, fingerprint):
            return sid
    return None


def _public(row: store.Row, now: float, matched: int = 0) -> Silence:
    ended = row["ended_at"]
    state = "active" if ended is None and row["ends_at"] > now else ("removed" if row["ended_by"] else "expired")
    return {
        "id": row["id"],
        "match": orjson.loads(row["matchers"]),
        "reason": row["reason"],
        "created_by": row["created_by"],
        "created_at": clock.iso(row["created_at"]),
        "ends_at": clock.iso(row["ends_at"]),
        "state": state,
        "left_s": max(0, int(row["ends_at"] - now)) if state == "active" else 0,
        "ended_at": clock.iso(ended) if ended is not None else None,
        "ended_by": row["ended_by"],
        "matched": matched,
    }


def _matched(conn: store.Conn, sid: str) -> int:
    """How many occurrences the silence kept quiet (the counts of the incidents it silenced)."""
    return int(
        conn.execute("SELECT coalesce(sum(count), 0) FROM pager_incidents WHERE silence_id=?", (sid,)).fetchone()[0]
    )


def add(
    match: object,
    for_s: object,
    reason: object,
    *,
    by: object = None,
    s: Settings | None = None,
    now: float | None = None,
) -> Silence:
    """Silence incidents matching `match` for `for_s` seconds (1 min to 30 days), because `reason`.

    Open incidents of the last 24 h that match are taken over (state `silenced`: no more
    repeats or escalation). Appends `silence_add`. Returns the silence with its time left.
    """
    s = s or config.settings()
    matchers = parse_matchers(match)
    try:
        duration = config.check_number(for_s, lo=MIN_FOR_S, hi=MAX_FOR_S)
    except ValueError as exc:
        raise ValidationError(f"for: {exc} (seconds; 1 minute to 30 days)", field="for") from None
    text = _text(reason, "reason", MAX_REASON_CHARS) or ""
    author = who(by, "api")
    t = clock.now_s(now)
    conn = db(s)
    with store.transaction(conn):
        silence, event = insert(conn, matchers, duration, text, author, t)
    ndjson.append(s.log_path(INCIDENTS_LOG), "silence_add", now=t, **event)
    return silence


def insert(
    conn: store.Conn, matchers: dict[str, str], duration: float, reason: str, by: str, now: float
) -> tuple[Silence, dict[str, Any]]:
    """Inside a transaction: store a checked silence and take over the open incidents it
    matches; (the silence, the `silence_add` event's fields)."""
    sid = f"sil_{int(now * 1000):012x}{secrets.token_hex(3)}"
    conn.execute(
        "INSERT INTO pager_silences(id, matchers, reason, created_by, created_at, ends_at) VALUES(?,?,?,?,?,?)",
        (sid, orjson.dumps(matchers).decode(), reason, by, now, now + duration),
    )
    taken = take_over(conn, sid, matchers, now)
    row = conn.execute("SELECT * FROM pager_silences WHERE id=?", (sid,)).fetchone()
    event = {
        "id": sid,
        "match": matchers,
        "reason": reason,
        "by": by,
        "ends_at": clock.iso(now + duration),
        "silenced": taken,
    }
    return _public(row, now), event


def take_over(conn: store.Conn, sid: str, matchers: Mapping[str, str], now: float) -> list[str]:
    """Inside a transaction: mark the open incidents of the last 24 h that `matchers` match as
    silenced by `sid`; returns their ids."""
    rows = conn.execute(
        "SELECT id, severity, source, msg, fingerprint FROM pager_incidents WHERE state='open' AND last_seen >= ?",
        (now - TAKE_OVER_S,),
    ).fetchall()
    ids = [r["id"] for r in rows if matches(matchers, r["severity"], r["source"], r["msg"], r["fingerprint"])]
    conn.executemany(
        "UPDATE pager_incidents SET state='silenced', silence_id=? WHERE id=? AND state='open'", [(sid, i) for i in ids]
    )
    return ids


def remove(silence_id: object, *, by: object = None, s: Settings | None = None, now: float | None = None) -> Silence:
    """End a silence now (`echoops page unsilence ID`, `DELETE /api/incidents/silence?id=`).

    NotFound for an unknown id; ending one that already ended changes nothing (idempotent).
    """
    s = s or config.settings()
    if not isinstance(silence_id, str) or not silence_id.strip():
        raise ValidationError("id must be a silence id (sil_...)", field="id")
    sid = silence_id.strip()
    author = who(by, "api")
    t = clock.now_s(now)
    conn = db(s)
    with store.transaction(conn):
        changed = conn.execute(
            "UPDATE pager_silences SET ended_at=?, ended_by=? WHERE id=? AND ended_at IS NULL AND ends_at > ?",
            (t, author, sid, t),
        ).rowcount
        row = conn.execute("SELECT * FROM pager_silences WHERE id=?", (sid,)).fetchone()
    if row is None:
        raise NotFound(f"no silence {sid!r}")
    if changed:
        ndjson.append(s.log_path(INCIDENTS_LOG), "silence_expire", now=t, id=sid, why="removed", by=author)
    return _public(row, t, _matched(conn, sid))


def expire(conn: store.Conn, s: Settings, now: float) -> int:
    """Record the end of silences whose time ran out (`silence_expire`, `why: "ended"`); the
    drain calls this, so each is logged once whoever notices first. Returns how many."""
    due = conn.execute(
        "SELECT id, ends_at FROM pager_silences WHERE ended_at IS NULL AND ends_at <= ?", (now,)
    ).fetchall()
    done = 0
    for row in due:
        with store.transaction(conn):
            changed = conn.execute(
                "UPDATE pager_silences SET ended_at=ends_at WHERE id=? AND ended_at IS NULL", (row["id"],)
            ).rowcount
        if changed:
            done += 1
            ndjson.append(
                s.log_path(INCIDENTS_LOG),
                "silence_expire",
                now=now,
                id=row["id"],
                why="ended",
                ended_at=clock.iso(row["ends_at"]),
            )
    return done


def listing(*, all_recent: bool = False, s: Settings | None = None, now: float | None = None) -> Silences:
    """The silences in force, soonest end first, with time left; `all_recent` adds those that
    ended in the last 7 days (`echoops page silences [--all]`, `GET /api/incidents/silences`)."""
    s = s or config.settings()
    t = clock.now_s(now)
    conn = db(s)
    rows = conn.execute(
        "SELECT * FROM pager_silences WHERE (ended_at IS NULL AND ends_at > ?) "
        "OR (? = 1 AND coalesce(ended_at, ends_at) >= ?) ORDER BY ends_at",
        (t, int(all_recent), t - ENDED_SHOWN_S),
    ).fetchall()
    items = [_public(r, t, _matched(conn, r["id"])) for r in rows]
    items.sort(key=lambda x: (x["state"] != "active", x["ends_at"]))
    return {"generated_at": clock.iso(t), "silences": items}


def describe(matchers: Mapping[str, Any]) -> str:
    """`source=maint msg~disk` (for people)."""
    return " ".join(f"{k}{'' if k.endswith('~') else '='}{v}" for k, v in matchers.items())


SILENCE_FIELDS = ("match", "for_min", "reason", "by")


def add_request(body: Mapping[str, object], *, s: Settings | None = None, now: float | None = None) -> Silence:
    """add() from a request body `{match, for_min, reason, by?}` (`POST /api/incidents/silence`)."""
    unknown = sorted(set(body) - set(SILENCE_FIELDS))
    if unknown:
        raise ValidationError(f"unknown field {unknown[0]!r} (allowed: {', '.join(SILENCE_FIELDS)})", field=unknown[0])
    try:
        minutes = config.check_number(body.get("for_min"), lo=MIN_FOR_S / 60, hi=MAX_FOR_S / 60)
    except ValueError as exc:
        raise ValidationError(f"for_min: {exc} (minutes; 1 to 43200)", field="for_min") from None
    return add(body.get("match"), minutes * 60, body.get("reason"), by=body.get("by"), s=s, now=now)
