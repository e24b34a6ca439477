"""The pages behind a page's email links: GET confirms (changes nothing), POST acts.

As with the portal's one-click unsubscribe, the GET only shows the incident and a button (mail
scanners and link previews fetch links); the POST from that page's button acts, through the same
core calls as the CLI and the API (`states.ack`/`resolve`). A token that does not verify
(tampered, expired, another purpose) is a 403 (`signing.BadToken`).
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from html import escape

from echoops.core import clock, config, signing, webpage
from echoops.core.config import Settings
from echoops.core.errors import ValidationError
from echoops.core.pager import silences, states
from echoops.core.pager.links import ACTIONS, VIA
from echoops.core.pager.model import db
from echoops.core.pager.types import IncidentAction

STYLE = (
    "body{font:16px/1.5 system-ui,sans-serif;margin:0;background:#f6f7f9;color:#1d232b}"
    "main{max-width:36rem;margin:2rem auto;padding:1.5rem;background:#fff;border-radius:10px}"
    "h1{font-size:1.3rem;margin:0 0 1rem}.muted{color:#5d6874}pre{white-space:pre-wrap;overflow-wrap:anywhere}"
    "label{display:block;margin:.75rem 0 .25rem}input,textarea{width:100%;box-sizing:border-box;font:inherit}"
    "button{margin-top:1rem;padding:.5rem 1.25rem;font:inherit;border-radius:6px;border:1px solid #1d232b}"
)
_STYLE_HASH = base64.b64encode(hashlib.sha256(STYLE.encode()).digest()).decode()
PAGE_CSP = (
    f"default-src 'none'; style-src 'sha256-{_STYLE_HASH}'; img-src 'none'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)


@dataclass(frozen=True)
class LinkPage:
    """An HTML answer of a link route (the shim adds the headers)."""

    body: bytes
    csp: str = PAGE_CSP
    content_type: str = "text/html; charset=utf-8"


def _claims(action: str, token: str, s: Settings, now: float | None) -> str:
    """The incident id a valid token for `action` names; BadToken (403) otherwise."""
    return signing.verify(token, ACTIONS[action][0], s=s, now=now, ring="pager").resource


def _html(title: str, body: str) -> bytes:
    return webpage.page(title, body, STYLE)


def _facts(rows: list) -> str:
    latest = rows[-1]
    began = clock.iso(latest["opened_at"] or rows[0]["first_seen"])
    return (
        f"<p><b>{escape(latest['severity'])}</b> from <b>{escape(latest['source'])}</b></p>"
        f"<pre>{escape(latest['msg'])}</pre>"
        f"<p class=muted>since {escape(began)}, {sum(r['count'] for r in rows)} occurrence(s), "
        f"incident {escape(latest['id'])}</p>"
    )


def _done_line(latest) -> str | None:
    """Why there is nothing to do, or None."""
    if latest["state"] == "resolved":
        return f"Resolved by {latest['resolved_by']} at {clock.iso(latest['resolved_at'])}."
    return None


def view(action: str, token: str, *, s: Settings | None = None, now: float | None = None) -> LinkPage:
    """GET of a link: the incident and a confirmation button (a form that POSTs); changes nothing."""
    s = s or config.settings()
    incident_id = _claims(action, token, s, now)
    rows = states.episode(db(s), incident_id)
    latest = rows[-1]
    _, path, label, done = ACTIONS[action]
    title = f"{label} this incident?"
    over = _done_line(latest)
    if action == "ack" and latest["state"] == "acked" and (latest["ack_until"] or 0) > clock.now_s(now):
        over = f"Already acknowledged by {latest['acked_by']} at {clock.iso(latest['acked_at'])}."
    if over is not None:
        return LinkPage(_html(f"Incident {done}", f"<h1>Nothing to do</h1>{_facts(rows)}<p>{escape(over)}</p>"))
    note = (
        "<label for=note>Note (optional)</label><textarea id=note name=note rows=3 maxlength=500></textarea>"
        if action == "resolve"
        else ""
    )
    form = (
        f'<form method=post action="{escape(path)}?token={escape(token)}">'
        "<label for=by>Your name (optional)</label>"
        f"<input id=by name=by maxlength={silences.MAX_BY_CHARS} autocomplete=name>{note}"
        f"<button type=submit>{escape(label)}</button></form>"
    )
    return LinkPage(_html(title, f"<h1>{escape(title)}</h1>{_facts(rows)}{form}"))


def act(
    action: str,
    token: str,
    *,
    by: object = None,
    note: object = None,
    s: Settings | None = None,
    now: float | None = None,
) -> IncidentAction:
    """POST of a link's confirmation page: ack or resolve the incident the token names, as
    `"<by> (email link)"`. Idempotent like the CLI and API (`changed: false` on a repeat)."""
    s = s or config.settings()
    incident_id = _claims(action, token, s, now)
    name = silences.who(by if by not in (None, "") else None, "")
    who = f"{name} ({VIA})" if name else VIA
    if action == "ack":
        if note not in (None, ""):
            raise ValidationError("an ack takes no note", field="note")
        return states.ack(incident_id, by=who, s=s, now=now)
    return states.resolve(incident_id, by=who, note=note, s=s, now=now)


def result_page(action: str, result: IncidentAction) -> LinkPage:
    """The page a person sees after pressing the button."""
    _, _, label, done = ACTIONS[action]
    if result["changed"]:
        who = result["acked_by"] if action == "ack" else result["resolved_by"]
        text = f"Incident {result['id']} {done} by {who}."
    elif result["state"] == "resolved":
        text = f"Incident {result['id']} was already resolved by {result['resolved_by']}."
    else:
        text = f"Incident {result['id']} was already acknowledged by {result['acked_by']}."
    return LinkPage(_html(f"Incident {done}", f"<h1>{escape(label)}: done</h1><p>{escape(text)}</p>"))
