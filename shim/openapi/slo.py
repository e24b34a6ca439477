"""SLOs and the error budget (phase 76)."""

from echoops.core.slo.deploy_gate import MAX_REASON
from shim.openapi import BOOL, ERROR, INT, NUM, STR, TS, Operation, nullable, obj

STATE = {"type": "string", "enum": ["green", "yellow", "red"]}
WINDOW = obj({"requests": INT, "errors": INT, "error_rate": NUM, "burn": NUM, "enough_traffic": BOOL}, {"slow": INT})

STATUS = obj(
    {
        "state": STATE,
        "p95_ms": nullable(NUM),
        "p99_ms": nullable(NUM),
        "error_rate": NUM,
        "period": STR,
        "remaining_budget_pct": NUM,
        "burn_alert": STR,
        "burn": {"type": "object", "additionalProperties": NUM},
        "gate": obj({"set": BOOL}, {"reason": nullable(STR), "since": nullable(TS), "set_at": nullable(TS)}),
        "history": {"type": "array", "items": {"type": "object"}},
    },
    {
        "reasons": {"type": "array", "items": STR},
        "requests": INT,
        "errors": INT,
        "budget": {"type": "object"},
        "alerts": {"type": "array", "items": STR},
        "windows": {"type": "object", "additionalProperties": WINDOW},
        "target": {"type": "object"},
        "rebaseline_at": nullable(TS),
        "notes": {"type": "array", "items": STR},
        "updated_at": nullable(TS),
    },
)

OPERATIONS = (
    Operation(
        "GET",
        "/api/slo/status",
        "p95/p99, error rate, burn, state, deploy gate",
        "key",
        {200: STATUS},
        "slo",
        description="The document of the last tick with the gate and history as they stand, served from a "
        "cache until one of them changes; send If-None-Match (or If-Modified-Since) for a 304.",
        conditional=True,
        last_modified=True,
    ),
    Operation(
        "POST",
        "/api/slo/rebaseline",
        "Restart the rolling windows",
        "key",
        {200: obj({"rebaseline_at": TS, "reason": nullable(STR), "status": STATUS}), 400: ERROR},
        "slo",
        body=obj({}, {"reason": nullable({"type": "string", "maxLength": MAX_REASON})}),
        body_required=False,
    ),
)
