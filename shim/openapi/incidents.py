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
)
