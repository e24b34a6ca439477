"""Delivery channels. Each module's `send(page, s)` makes one delivery attempt and returns
the Outcomes of the requests it made (usually one); retries and backoff live in the outbox.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from echoops.core import clock


@dataclass(frozen=True)
class Page:
    """What a channel delivers: one incident, as of the moment of sending.

    `kind` says which message it is (`model.KINDS`: the page, its escalation, the resolved
    notice, or an edit of a Telegram message already sent); `to` overrides the configured
    chat/recipients (escalation targets); `status` is the incident's state line for people
    ("Acknowledged by alice at ..."); `buttons` are Telegram inline buttons (label, signed
    callback data) and `links` email links (label, signed URL); `ref` is what an edit edits
    or a notice replies to (a Telegram message_id, or the page's email Message-ID).
    """

    incident_id: str
    severity: str
    source: str
    msg: str
    fingerprint: str
    count: int
    first_seen: float
    test: bool = False
    kind: str = "page"
    to: tuple[str, ...] = ()
    status: str = ""
    buttons: tuple[tuple[str, str], ...] = ()
    links: tuple[tuple[str, str], ...] = ()
    ref: str | None = None
    meta: Mapping[str, Any] | None = None  # the raise's `meta` object, shown by each channel

    def meta_pairs(self) -> list[tuple[str, str]]:
        """`meta` as (key, value text) pairs in the raise's order: strings as they are, other
        values as compact JSON, each on one line (newlines folded to spaces)."""
        pairs = []
        for key, value in (self.meta or {}).items():
            text = value if isinstance(value, str) else orjson.dumps(value).decode()
            pairs.append((" ".join(str(key).split()), " ".join(text.split())))
        return pairs

    @property
    def headline(self) -> str:
        """One line: `[CRITICAL] source: first line of msg` (no newlines, for subjects)."""
        first = " ".join(self.msg.split())
        prefix = "[TEST] " if self.test else MARKS.get(self.kind, "")
        return f"{prefix}[{self.severity}] {self.source}: {first}"

    def details(self) -> str:
        """The lines after the message: when, how often, which incident."""
        return (
            f"first seen {clock.iso(self.first_seen)}, count {self.count}\n"
            f"incident {self.incident_id}\nfingerprint {self.fingerprint[:16]}"
        )


# The word in front of a headline, per kind (a page and an edit of it have none).
MARKS = {"escalate": "[ESCALATED] ", "resolved": "[RESOLVED] "}


@dataclass(frozen=True)
class Outcome:
    """One request's result. `status` is the HTTP status, the SMTP reply code or the error
    class name; `retry` says whether another attempt can help; `detail` is already redacted."""

    ok: bool
    status: int | str
    retry: bool
    retry_after: float | None = None
    detail: str = ""
    ref: str | None = None  # what the channel calls the message it took (Telegram message_id)
