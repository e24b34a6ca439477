"""AI cost guardrails (phase 79)."""

from echoops.core.costs.cap_sources import MAX_API_CAP_USD, MAX_KEY_CHARS
from shim.openapi import ERROR, NUM, STR, TS, Operation, nullable, obj, param

SCOPE = obj(
    {"spent_usd": NUM, "cap_usd": nullable(NUM), "pct": nullable(NUM), "state": STR},
    {"forecast_usd": nullable(NUM), "members": {"type": "array", "items": STR}, "action": STR},
)
STATUS = obj(
    {
        "day": STR,
        "global": SCOPE,
        "models": {"type": "object", "additionalProperties": SCOPE},
        "stripe_fees": {"type": "object"},
        "unpriced": {"type": "array"},
    },
    {
        "updated_at": nullable(TS),
        "spend_today": {"type": "array", "items": obj({"ts": TS, "spent_usd": NUM})},
    },
)
# printable ASCII without surrounding spaces (the server takes any printable name)
MODEL = {"type": "string", "pattern": "^[!-~]([ -~]*[!-~])?$", "maxLength": MAX_KEY_CHARS}
USD_CAP = {"type": "number", "minimum": 0, "maximum": MAX_API_CAP_USD}
DECISION = obj(
    {
        "action": {"type": "string", "enum": ["allow", "switch", "throttle"]},
        "model": STR,
        "reason": STR,
        "retry_after_s": {"type": "integer", "minimum": 0},
    }
)

OPERATIONS = (
    Operation("GET", "/api/costs/status", "Today's AI spend against the caps", "key", {200: STATUS}, "costs"),
    Operation(
        "POST",
        "/api/costs/set-cap",
        "Set the daily cap (scope daily) or a model's cap (scope model, key = the model)",
        "key",
        {200: obj({"cap": {"type": "object"}, "status": STATUS}), 400: ERROR},
        "costs",
        body={
            "oneOf": [
                obj({"scope": {"const": "daily"}, "usd_cap": USD_CAP}, {"key": {"enum": [None, ""]}}),
                obj({"scope": {"const": "model"}, "usd_cap": USD_CAP, "key": MODEL}),
            ]
        },
    ),
    Operation(
        "GET",
        "/api/costs/check",
        "The guard's decision for one AI call",
        "key",
        {200: DECISION, 400: ERROR},
        "costs",
        query=(param("model", MODEL, "the model the app wants to call", required=True),),
    ),
)
