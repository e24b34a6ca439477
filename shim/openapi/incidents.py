"""The incident pager (phase 77)."""

from echoops.core.pager import SEVERITIES
from echoops.core.pager.model import MAX_FINGERPRINT_CHARS, MAX_MSG_BYTES, MAX_SOURCE_CHARS
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

RAISED = obj({"id": STR, "fingerprint": STR, "deduped": BOOL, "channels": CHANNEL_STATES})

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
    {"latest_id": STR, "deliveries": CHANNEL_STATES, "failed_deliveries": INT},
)

SUMMARY = obj({"generated_at": TS, "hours": NUM, "groups": {"type": "array", "items": GROUP}})

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
)
