"""Signed links in a page's email: acknowledge or resolve the incident from the inbox (the
pages they open are `link_pages`).

A link carries a purpose-bound token (core/signing.py, the pager's keyring: PAGER_SIGNING_SECRET
or else PORTAL_SIGNING_SECRET) naming one incident and one action, valid PAGER_LINK_TTL_HRS
(24 h). As with the portal's one-click unsubscribe, the GET only shows a confirmation page and
changes nothing (mail scanners and link previews fetch links); the POST from that page's
button acts, through the same core calls as the CLI and the API (`states.ack`/`resolve`).
A token that does not verify (tampered, expired, another purpose) is a 403.
"""

from __future__ import annotations

from echoops.core import signing
from echoops.core.config import Settings
from echoops.core.pager.model import ACK_LINK_PATH, RESOLVE_LINK_PATH

ACK_PATH, RESOLVE_PATH = ACK_LINK_PATH, RESOLVE_LINK_PATH
# action -> (token purpose, path, button label, past tense)
ACTIONS = {
    "ack": ("pager_ack", ACK_PATH, "Acknowledge", "acknowledged"),
    "resolve": ("pager_resolve", RESOLVE_PATH, "Resolve", "resolved"),
}
VIA = "email link"


def base_url(s: Settings) -> str:
    """Where the links point: PAGER_BASE_URL, else PORTAL_BASE_URL."""
    return s.pager_base_url or s.portal_base_url


def url(s: Settings, action: str, incident_id: str, *, now: float | None = None) -> str:
    """The signed link for `action` ("ack" | "resolve") on `incident_id`; NotConfigured without keys."""
    purpose, path, _, _ = ACTIONS[action]
    token, _ = signing.sign(purpose, incident_id, "", ttl_s=s.pager_link_ttl_hrs * 3600, s=s, now=now, ring="pager")
    return f"{base_url(s)}{path}?token={token}"


def for_incident(s: Settings, incident_id: str, *, now: float | None = None) -> tuple[tuple[str, str], ...]:
    """(label, url) of the ack and resolve links for a page's email."""
    return (
        ("Acknowledge (I'm on it)", url(s, "ack", incident_id, now=now)),
        ("Resolve (it's fixed)", url(s, "resolve", incident_id, now=now)),
    )
