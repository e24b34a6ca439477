"""Incident inbox: the one way incidents enter echoops (validation, fingerprint, then `incidents`
for dedup and the outbox rows). Delivery lives in outbox.py; `raise_incident(send=True)` (the
CLI's `page raise`) also makes the first attempt of each new delivery, without waiting for a
backoff: retries are the outbox's.
"""

from __future__ import annotations

from collections.abc import Mapping

import orjson

from echoops.core import clock, config, parsers
from echoops.core.config import Settings
from echoops.core.errors import ValidationError
from echoops.core.pager import outbox
from echoops.core.pager.fingerprint import fingerprint as make_fingerprint
from echoops.core.pager.incidents import (  # noqa: F401 (the inbox's interface: log ingest stores through it)
    configured_channels,
    new_id,
    publish,
    record,
    store_incidents,
)
from echoops.core.pager.model import (
    MAX_FINGERPRINT_CHARS,
    MAX_META_BYTES,
    MAX_MSG_BYTES,
    MAX_SOURCE_CHARS,
    SEVERITIES,
)
from echoops.core.pager.types import Raised

# The fields of a raise request (the HTTP body); anything else is refused, naming the field.
RAISE_FIELDS = ("severity", "msg", "source", "meta", "fingerprint")

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


def validate_request(body: Mapping[str, object]) -> tuple[str, str, str, dict | None, str | None]:
    """`validate` for a request body (`POST /api/incidents/raise`): an unknown field is a
    ValidationError naming it (a typo like `sevrity` must not be silently dropped)."""
    unknown = sorted(set(body) - set(RAISE_FIELDS))
    if unknown:
        raise ValidationError(f"unknown field {unknown[0]!r} (allowed: {', '.join(RAISE_FIELDS)})", field=unknown[0])
    return validate(*(body.get(name) for name in RAISE_FIELDS))


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
) -> Raised:
    """Record an incident; page CRITICAL ones at most once per fingerprint per PAGER_REPEAT_MIN.

    Returns `{"id", "fingerprint", "deduped", "channels"}`: `channels` maps each channel to
    the state this call enqueued (`pending` or `skipped`); empty when nothing was paged.
    `send=True` (the CLI's `page raise`) also makes the first attempt of each new delivery now
    (never waiting for a backoff: the outbox retries) and adds `deliveries`, the state of each
    of this incident's deliveries afterwards, and `attempts`, per channel
    `{attempts, last_status, last_error, retry_at}`.
    """
    s = s or config.settings()
    severity, msg, source, meta, fingerprint = validate(severity, msg, source, meta, fingerprint)
    fp = fingerprint or make_fingerprint(source, msg)
    t = clock.now_s(now)
    result = record(s, [(severity, msg, source, meta, fp, 1)], now=t)[0]
    if send:
        if "pending" in result["channels"].values():
            outbox.attempt_now(s, result["id"], now=t)
        states = outbox.delivery_states(s, result["id"])
        result["deliveries"] = states["deliveries"]
        result["attempts"] = states["attempts"]
    return result


def raise_request(body: Mapping[str, object], *, now: float | None = None, s: Settings | None = None) -> Raised:
    """raise_incident from a request body `{severity, msg, source, meta?, fingerprint?}` (the
    `POST /api/incidents/raise` endpoint); unknown fields are refused by name."""
    return raise_incident(*validate_request(body), now=now, s=s)
