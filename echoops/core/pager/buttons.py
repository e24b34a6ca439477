"""Telegram buttons: Ack, Resolve and Silence 1h under a page (presses are read by `presses`).

**Callback data** (Bot API: 1-64 bytes) is `<action>.<incident>.<mac>`: the action letter,
the incident id without `inc_` (22 hex digits) and 16 characters of an HMAC-SHA256 (the
pager's keyring, `signing.short_mac`) over the action, the incident and the chat the message
went to: 41 bytes, opaque, and not guessable (96 bits). A client can send any data, so data
that does not verify, or that names another chat, is answered and ignored.

"""

from __future__ import annotations

import re
from collections.abc import Iterable

from echoops.core import signing
from echoops.core.config import Settings

CODES = {"ack": "a", "resolve": "r", "silence": "s"}
ACTIONS = {code: action for action, code in CODES.items()}
LABELS = {"ack": "Ack", "resolve": "Resolve", "silence": "Silence 1h"}
MAC_CHARS = 16
_DATA = re.compile(r"([ars])\.([0-9a-f]{22})\.([A-Za-z0-9_-]{16})\Z")


def _signed_text(code: str, incident_id: str, chat: str) -> str:
    return f"tg1|{code}|{incident_id}|{chat}"


def data(s: Settings, action: str, incident_id: str, chat: str) -> str:
    """The callback data of one button (<= 64 bytes); NotConfigured without the pager's keys."""
    code = CODES[action]
    mac = signing.short_mac(_signed_text(code, incident_id, chat), ring="pager", chars=MAC_CHARS, s=s)
    return f"{code}.{incident_id.removeprefix('inc_')}.{mac}"


def keyboard(s: Settings, incident_id: str, chat: str, wanted: Iterable[str]) -> tuple[tuple[str, str], ...]:
    """(label, callback data) of the buttons `wanted` (ack, resolve, silence) for a message to `chat`."""
    return tuple((LABELS[a], data(s, a, incident_id, chat)) for a in wanted)


def parse(s: Settings, raw: object, chat: str) -> tuple[str, str] | None:
    """(action, incident id) of callback data pressed in `chat`, or None when it does not verify."""
    if not isinstance(raw, str):
        return None
    m = _DATA.match(raw)
    if m is None:
        return None
    code, handle, mac = m.groups()
    incident_id = f"inc_{handle}"
    if not signing.check_short_mac(_signed_text(code, incident_id, chat), mac, ring="pager", s=s):
        return None
    return ACTIONS[code], incident_id
