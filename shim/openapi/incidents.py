"""The incident pager (phase 77)."""

from echoops.core.pager import ACK_LINK_PATH, RESOLVE_LINK_PATH, SEVERITIES, STATES
from echoops.core.pager.model import MAX_FINGERPRINT_CHARS, MAX_MSG_BYTES, MAX_SOURCE_CHARS
from echoops.core.pager.silences import MAX_BY_CHARS, MAX_FOR_S, MAX_REASON_CHARS
from echoops.core.pager.states import MAX_NOTE_CHARS
from echoops.core.pager.summary import MAX_SUMMARY_HOURS
from shim.openapi import BOOL, ERROR, INT, NUM, STR, TS, Operation, nullable, obj, param, text

CHANNEL_STATES = {"type": "object", "additionalProperties": STR}
META_VALUE = {"type": ["string", "number", "boolean", "null"], "maxLength": 100}

RAISE_BODY = obj(
    {
        "severity": {"type": "string", "enum": list(SEVERITIES), "description": "any case"},
        # the server counts bytes: this many characters always fit, whatever their UTF-8 length
        "msg": text(MAX_MSG_BYTES // 4, f"at most {MAX_MSG_BYTES} bytes as UTF-8"),
        "source": text(MAX_SOURCE_CHARS),
    },
    {
        "meta": nullable(
            {
                "type": "object",
                "maxProperties": 10,
                "propertyNames": {"maxLength": 40},
                "additionalProperties": META_VALUE,
                "description": "any JSON object of at most 16 KiB",
            }
        ),
        "fingerprint": nullable(text(MAX_FINGERPRINT_CHARS, "default: a hash of source and msg")),
    },
    closed=True,
)

STATE = {"type": "string", "enum": list(STATES)}
RAISED = obj(
    {"id": STR, "fingerprint": STR, "deduped": BOOL, "channels": CHANNEL_STATES, "state": STATE}, {"silence": STR}
)

GROUP = obj(
    {
        "fingerprint": STR,
        "severity": STR,
        "source": STR,
        "msg": STR,
        "count": INT,
        "first_seen": TS,
        "last_seen": TS,
        "paged": BOOL,
        "pages": INT,
    },
    {
        "pages_raised": INT,
        "latest_id": STR,
        "deliveries": CHANNEL_STATES,
        "failed_deliveries": INT,
        "state": STATE,
        "paged_at": nullable(TS),
        "acked_by": nullable(STR),
        "acked_at": nullable(TS),
        "ack_until": nullable(TS),
        "resolved_at": nullable(TS),
        "resolved_by": nullable(STR),
        "note": nullable(STR),
        "silence": nullable(STR),
        "escalated_at": nullable(TS),
    },
)

TARGET = {
    "id": text(MAX_FINGERPRINT_CHARS, "an incident id (inc_...); or give fingerprint"),
    "fingerprint": text(MAX_FINGERPRINT_CHARS, "a fingerprint: its latest incident"),
    "by": nullable(text(MAX_BY_CHARS, "who (default: api)")),
}
ONE_TARGET = {
    "oneOf": [{"required": ["id"]}, {"required": ["fingerprint"]}],
    "description": "exactly one of id and fingerprint",
}
ACK_BODY = {**obj({}, TARGET, closed=True), **ONE_TARGET}
RESOLVE_BODY = {
    **obj({}, {**TARGET, "note": nullable(text(MAX_NOTE_CHARS, "why it is over"))}, closed=True),
    **ONE_TARGET,
}
ACTION = obj(
    {
        "id": STR,
        "fingerprint": STR,
        "state": STATE,
        "changed": BOOL,
        "ids": {"type": "array", "items": STR},
        "acked_by": nullable(STR),
        "acked_at": nullable(TS),
        "ack_until": nullable(TS),
        "resolved_by": nullable(STR),
        "resolved_at": nullable(TS),
        "note": nullable(STR),
        "notices": CHANNEL_STATES,
    }
)
MATCH = {
    "type": "object",
    "minProperties": 1,
    "properties": {
        "source": text(MAX_SOURCE_CHARS),
        "severity": {"type": "string", "enum": list(SEVERITIES), "description": "any case"},
        "fingerprint": text(MAX_FINGERPRINT_CHARS),
        "msg~": text(200, "the message contains this (any case)"),
    },
    "additionalProperties": False,
}
SILENCE_BODY = obj(
    {
        "match": MATCH,
        "for_min": {"type": "number", "minimum": 1, "maximum": MAX_FOR_S / 60, "description": "minutes"},
        "reason": text(MAX_REASON_CHARS),
    },
    {"by": nullable(text(MAX_BY_CHARS, "who (default: api)"))},
    closed=True,
)
SILENCE = obj(
    {
        "id": STR,
        "match": {"type": "object", "additionalProperties": STR},
        "reason": STR,
        "created_by": STR,
        "created_at": TS,
        "ends_at": TS,
        "state": {"type": "string", "enum": ["active", "expired", "removed"]},
        "left_s": INT,
        "ended_at": nullable(TS),
        "ended_by": nullable(STR),
        "matched": INT,
    }
)
SILENCES = obj({"generated_at": TS, "silences": {"type": "array", "items": SILENCE}})
HTML = ("text/html", {"type": "string"})

SUMMARY = obj({"generated_at": TS, "hours": NUM, "groups": {"type": "array", "items": GROUP}})

STRINGS = {"type": "object", "additionalProperties": STR}
AM_ALERT = obj(
    {
        "status": {"type": "string", "enum": ["firing", "resolved"]},
        "fingerprint": {"type": "string", "pattern": "^[0-9A-Za-z_-]{1,64}$"},
        "labels": {
            **STRINGS,
            "maxProperties": 20,
            "propertyNames": {"maxLength": 40},
            "additionalProperties": {"type": "string", "maxLength": 200},
        },
    },
    {
        "annotations": {**STRINGS, "maxProperties": 5, "additionalProperties": {"type": "string", "maxLength": 500}},
        "startsAt": STR,
        "endsAt": STR,
        "generatorURL": {"type": "string", "maxLength": 200},
    },
)
AM_PAYLOAD = obj(
    {"version": {"const": "4"}, "alerts": {"type": "array", "items": AM_ALERT, "maxItems": 10}},
    {
        "status": {"type": "string", "enum": ["firing", "resolved"]},
        "receiver": STR,
        "groupKey": STR,
        "truncatedAlerts": {"type": "integer", "minimum": 0},
        "groupLabels": STRINGS,
        "commonLabels": STRINGS,
        "commonAnnotations": STRINGS,
        "externalURL": STR,
    },
)
AM_RECEIVED = obj(
    {
        "receiver": nullable(STR),
        "firing": INT,
        "resolved": INT,
        "truncated": INT,
        "alerts": {
            "type": "array",
            "items": obj(
                {
                    "fingerprint": STR,
                    "status": STR,
                    "id": nullable(STR),
                    "deduped": BOOL,
                    "channels": CHANNEL_STATES,
                },
                closed=True,
            ),
        },
    },
    closed=True,
)

OPERATIONS = (
    Operation(
        "POST",
        "/api/incidents/raise",
        "Record an incident; CRITICAL ones are paged (deduplicated by fingerprint)",
        "key",
        {200: RAISED, 400: ERROR},
        "incidents",
        body=RAISE_BODY,
    ),
    Operation(
        "POST",
        "/api/incidents/summarize",
        "The last hours grouped by fingerprint",
        "key",
        {200: SUMMARY, 400: ERROR},
        "incidents",
        query=(
            param(
                "hours",
                {"type": "number", "exclusiveMinimum": 0, "maximum": MAX_SUMMARY_HOURS},
                "look-back (h), default 24",
            ),
        ),
    ),
    Operation(
        "POST",
        "/api/incidents/alertmanager",
        "Alertmanager's webhook (payload version 4): firing alerts raise incidents, resolved ones resolve them",
        "key",
        {200: AM_RECEIVED, 400: ERROR},
        "incidents",
        description="Point an Alertmanager `webhook_configs` receiver here with `send_resolved: true` and "
        "`http_config.authorization` (Bearer DASHBOARD_KEY). Severity from `labels.severity` (critical, warning, "
        "else ERROR), source `alertname`, msg from `annotations.summary` or `description`, fingerprint "
        "`am:<fingerprint>`; re-sent groups are deduplicated like every raise. A malformed payload is 400 naming "
        "the field, and nothing of it is stored.",
        body=AM_PAYLOAD,
    ),
    Operation(
        "POST",
        "/api/incidents/ack",
        "Acknowledge an incident: repeats are counted, not paged, until resolved or PAGER_ACK_HOURS pass",
        "key",
        {200: ACTION, 400: ERROR, 404: ERROR},
        "incidents",
        description="Idempotent: a repeat answers the incident as it is, with `changed: false`.",
        body=ACK_BODY,
    ),
    Operation(
        "POST",
        "/api/incidents/resolve",
        "Resolve an incident: one RESOLVED notice to each channel that got the page",
        "key",
        {200: ACTION, 400: ERROR, 404: ERROR},
        "incidents",
        description="Idempotent: a repeat answers the incident as it is, with `changed: false`.",
        body=RESOLVE_BODY,
    ),
    Operation(
        "POST",
        "/api/incidents/silence",
        "Silence incidents that match, for a while: recorded with state silenced, not paged",
        "key",
        {200: SILENCE, 400: ERROR},
        "incidents",
        body=SILENCE_BODY,
    ),
    Operation(
        "GET",
        "/api/incidents/silences",
        "The silences in force, with time left",
        "key",
        {200: SILENCES, 400: ERROR},
        "incidents",
        query=(
            param(
                "all", {"type": "string", "enum": ["true", "false", "1", "0"]}, "also those ended in the last 7 days"
            ),
        ),
    ),
    Operation(
        "DELETE",
        "/api/incidents/silence",
        "End a silence now",
        "key",
        {200: SILENCE, 400: ERROR, 404: ERROR},
        "incidents",
        query=(
            param("id", {"type": "string", "minLength": 1}, "the silence (sil_...)", required=True),
            param("by", text(MAX_BY_CHARS), "who (default: api)"),
        ),
    ),
)

for _path, _label in ((ACK_LINK_PATH, "Acknowledge"), (RESOLVE_LINK_PATH, "Resolve")):
    OPERATIONS += (
        Operation(
            "GET",
            _path,
            f"{_label} link of a page's email: a confirmation page (changes nothing)",
            "token",
            {200: HTML, 404: ERROR},
            "incidents",
        ),
        Operation(
            "POST",
            _path,
            f"{_label} link of a page's email: the confirmation page's button",
            "token",
            {200: [("application/json", ACTION), HTML], 400: ERROR, 404: ERROR},
            "incidents",
            description="JSON answer; an HTML page when `Accept` includes text/html.",
            form=obj(
                {},
                {"by": text(MAX_BY_CHARS, "your name"), "note": text(MAX_NOTE_CHARS, "resolve only")},
            ),
            body_required=False,
        ),
    )
