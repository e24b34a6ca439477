"""Reading Telegram button presses with getUpdates: no public URL or webhook needed.

`getUpdates` long-polls Telegram (only `callback_query` updates). One process polls at a time,
under a lease in the store (`pager_poll`), and the next offset is stored in the same
transaction as the state change a press makes, so two processes (gunicorn workers, `echoops
page run`) never handle one press twice and a crash never loses one. Every press is answered
(answerCallbackQuery) and logged (`button_press`); presses from any chat but TELEGRAM_CHAT_ID /
TELEGRAM_ESCALATE_CHAT_ID, forged or stale data and double presses change nothing. The page's
message is then edited (an `edit_*` outbox delivery) to show who acked, resolved or silenced it.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from echoops.core import clock, ndjson, signing, store
from echoops.core.config import Settings
from echoops.core.errors import NotConfigured, NotFound
from echoops.core.pager import buttons, silences, states
from echoops.core.pager.model import INCIDENTS_LOG, db, dead_owner, lease_owner
from echoops.core.pager.types import ButtonPoll
from echoops.core.redact import redact

SILENCE_S = 3600.0
POLL = "telegram"
LONG_POLL_S = 25  # the server's getUpdates timeout (Telegram holds the request until a press)
_log = logging.getLogger("echoops.pager")


def presser(user: object) -> str:
    """Who pressed: `@username (Telegram)`, else their name (<= 80 characters, one line)."""
    user = user if isinstance(user, dict) else {}
    if isinstance(user.get("username"), str) and user["username"]:
        name = "@" + user["username"]
    else:
        parts = [user.get("first_name"), user.get("last_name")]
        name = " ".join(p for p in parts if isinstance(p, str) and p) or f"user {user.get('id')}"
    name = " ".join("".join(c for c in name if c.isprintable()).split())[:60]
    return f"{name} (Telegram)"


def chats(s: Settings) -> set[str]:
    """The chats whose presses count: the on-call chat and the escalation chat."""
    return {c for c in (s.telegram_chat_id, s.telegram_escalate_chat_id) if c}


def _hm(ts: float | None) -> str:
    return clock.iso(ts)[11:16] + " UTC" if ts is not None else "?"


def handle(
    conn: store.Conn, s: Settings, query: dict[str, Any], now: float
) -> tuple[str, str, list[tuple[str, dict[str, Any]]], bool, dict[str, Any]]:
    """Inside a transaction: act on one callback query. Returns (answer text, result word,
    events to publish, anything queued, fields for the `button_press` event)."""
    message: dict[str, Any] = query["message"] if isinstance(query.get("message"), dict) else {}
    chat_obj: dict[str, Any] = message["chat"] if isinstance(message.get("chat"), dict) else {}
    chat = str(chat_obj.get("id")) if chat_obj.get("id") is not None else ""
    by = presser(query.get("from"))
    info: dict[str, Any] = {"chat": chat, "by": by}
    if chat not in chats(s):
        return "These buttons work only in the on-call chat.", "ignored: another chat", [], False, info
    parsed = buttons.parse(s, query.get("data"), chat)
    if parsed is None:
        return "This button is not valid.", "ignored: forged or stale data", [], False, info
    action, incident_id = parsed
    info.update(action=action, incident=incident_id)
    try:
        rows = states.episode(conn, incident_id)
    except NotFound:
        return "This incident no longer exists.", "ignored: unknown incident", [], False, info
    latest = rows[-1]
    if latest["state"] == "resolved":
        return f"Already resolved by {latest['resolved_by']}.", "ignored: already resolved", [], False, info
    if action == "ack":
        result, events, wake = states.ack_rows(conn, s, rows, by, now)
        if not result["changed"]:
            return f"Already acknowledged by {result['acked_by']}.", "ignored: already acked", [], False, info
        return f"Acknowledged. Repeats held until {_hm(now + s.pager_ack_hours * 3600)}.", "acked", events, wake, info
    if action == "resolve":
        result, events, wake = states.resolve_rows(conn, s, rows, by, None, now)
        return "Resolved. A RESOLVED notice goes to every channel that got the page.", "resolved", events, wake, info
    if latest["state"] == "silenced" and silences.active_id(conn, latest["silence_id"], now):
        return "Already silenced.", "ignored: already silenced", [], False, info
    matchers = {"fingerprint": latest["fingerprint"]}
    silence, event = silences.insert(conn, matchers, SILENCE_S, "Silence 1h button in Telegram", by, now)
    states.enqueue_edits(conn, [r["id"] for r in rows], "edit_silence", now)
    info["silence"] = silence["id"]
    return f"Silenced for 1h (until {_hm(now + SILENCE_S)}).", "silenced", [("silence_add", event)], True, info


# --- polling --------------------------------------------------------------------------------


def _not_polled(error: str | None = None) -> ButtonPoll:
    return {"polled": False, "updates": 0, "acted": 0, "ignored": 0, "error": error}


def _lease(conn: store.Conn, owner: str, seconds: float) -> int | None:
    """Take (or renew) the poll lease for `seconds`; the next offset, or None when another live
    process holds it. Wall-clock time: the lease coordinates processes, whatever `now` simulates."""
    wall = time.time()
    with store.transaction(conn):
        conn.execute(
            "INSERT INTO pager_poll(name, next_offset, updated_at) VALUES(?, 0, ?) ON CONFLICT DO NOTHING", (POLL, wall)
        )
        row = conn.execute("SELECT owner, lease_until, next_offset FROM pager_poll WHERE name=?", (POLL,)).fetchone()
        free = row["owner"] in (None, owner) or (row["lease_until"] or 0) <= wall or dead_owner(row["owner"])
        if not free:
            return None
        conn.execute(
            "UPDATE pager_poll SET owner=?, lease_until=?, updated_at=? WHERE name=?",
            (owner, wall + seconds, wall, POLL),
        )
    return int(row["next_offset"])


def release(s: Settings, owner: str) -> None:
    """Give up the poll lease (a process that stops polling)."""
    conn = db(s)
    with store.transaction(conn):
        conn.execute("UPDATE pager_poll SET owner=NULL, lease_until=NULL WHERE name=? AND owner=?", (POLL, owner))


def _record_error(conn: store.Conn, error: str) -> None:
    with store.transaction(conn):
        conn.execute("UPDATE pager_poll SET last_error=?, error_at=? WHERE name=?", (error[:300], time.time(), POLL))


def poll(
    s: Settings,
    *,
    timeout_s: int = 0,
    now: float | None = None,
    owner: str | None = None,
    keep_lease: bool = False,
    client=None,
) -> ButtonPoll:
    """Read and handle the button presses waiting at Telegram (long-polling up to `timeout_s`).

    Does nothing (`polled: false`) without Telegram or the pager's signing keys, or while another
    process holds the poll lease. `now` stamps the state changes (tests, `--now`).
    """
    if not (s.telegram_bot_token and s.telegram_chat_id):
        return _not_polled()
    try:
        signing.keys(s, ring="pager")
    except NotConfigured:
        return _not_polled()
    from echoops.core.pager.channels import telegram  # lazy: httpx, ~40 ms; only a poller pays it

    conn = db(s)
    owner = owner or lease_owner()
    offset = _lease(conn, owner, timeout_s + telegram.TIMEOUT_S + 15)
    if offset is None:
        return _not_polled()
    out: ButtonPoll = {"polled": True, "updates": 0, "acted": 0, "ignored": 0, "error": None}
    try:
        ok, result, _, _ = telegram.get_updates(s, offset, timeout_s, client=client)
        if not ok:
            error = redact(result, s)
            out["error"] = error
            _record_error(conn, error)
            return out
        for update in sorted((u for u in result if isinstance(u, dict)), key=lambda u: u.get("update_id", 0)):
            acted = _one(conn, s, update, owner, clock.now_s(now), telegram, client)
            if acted is None:
                continue
            out["updates"] += 1
            out["acted" if acted else "ignored"] += 1
    finally:
        if not keep_lease:
            release(s, owner)
    return out


def _one(conn: store.Conn, s: Settings, update: dict, owner: str, now: float, telegram, client) -> bool | None:
    """Handle one update; True when it changed an incident, False when ignored, None when another
    process got to it first (or it is not a number)."""
    uid = update.get("update_id")
    if not isinstance(uid, int) or isinstance(uid, bool):
        return None
    query = update.get("callback_query")
    with store.transaction(conn):
        row = conn.execute("SELECT owner, next_offset FROM pager_poll WHERE name=?", (POLL,)).fetchone()
        if row["owner"] != owner or uid < row["next_offset"]:
            return None  # lost the lease, or handled already: never twice
        if isinstance(query, dict):
            answer, word, events, wake, info = handle(conn, s, query, now)
        else:
            answer, word, events, wake, info = "", "ignored: not a button press", [], False, {}
        conn.execute(
            "UPDATE pager_poll SET next_offset=?, last_ok_at=?, last_error=NULL WHERE name=?",
            (uid + 1, time.time(), POLL),
        )
    states.publish(s, events, wake, now)
    ndjson.append(s.log_path(INCIDENTS_LOG), "button_press", now=now, update_id=uid, result=word, **info)
    if isinstance(query, dict) and isinstance(query.get("id"), str):
        telegram.answer_callback(s, query["id"], answer, client=client)
    return not word.startswith("ignored")


class ButtonPoller:
    """The server's reader of button presses: a daemon thread beside the drain (one per gunicorn
    worker; the lease lets one of them poll at a time, the others check every IDLE_S)."""

    IDLE_S = 5.0
    MAX_BACKOFF_S = 60.0

    def __init__(self, s: Settings, *, long_poll_s: int = LONG_POLL_S):
        self.s = s
        self.long_poll_s = long_poll_s
        self.stop = threading.Event()
        self.owner = ""
        self.thread = threading.Thread(target=self._loop, name="echoops-pager-buttons", daemon=True)

    def start(self) -> ButtonPoller:
        self.thread.start()
        return self

    def close(self, timeout: float = 5.0) -> None:
        self.stop.set()
        self.thread.join(timeout)

    def _loop(self) -> None:
        self.owner = lease_owner()
        backoff = self.IDLE_S
        while not self.stop.is_set():
            try:
                got = poll(self.s, timeout_s=self.long_poll_s, owner=self.owner, keep_lease=True)
            except Exception as exc:  # keep polling after a store hiccup; never leak a secret
                _log.warning("pager button poll failed: %s", redact(f"{type(exc).__name__}: {exc}", self.s))
                got = _not_polled(type(exc).__name__)
            if got["error"]:
                _log.warning("telegram getUpdates failed: %s", got["error"])
                self.stop.wait(backoff)
                backoff = min(backoff * 2, self.MAX_BACKOFF_S)
                continue
            backoff = self.IDLE_S
            if not got["polled"]:
                self.stop.wait(self.IDLE_S)
        try:
            release(self.s, self.owner)
        except store.errors(OSError):
            pass  # the lease runs out by itself


def start_poller(s: Settings) -> ButtonPoller | None:
    """Start this process's button poller when Telegram and the pager's keys are set up."""
    if not (s.telegram_bot_token and s.telegram_chat_id):
        return None
    try:
        signing.keys(s, ring="pager")
    except NotConfigured:
        return None
    return ButtonPoller(s).start()
