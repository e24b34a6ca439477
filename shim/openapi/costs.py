"""AI cost guardrails (phase 79)."""

from echoops.core.costs.calls import MAX_TTL_S
from echoops.core.costs.cap_sources import MAX_API_CAP_USD, MAX_KEY_CHARS
from echoops.core.costs.ingest import MAX_TOKENS, MAX_USD
from shim.openapi import ERROR, INT, NUM, STR, TS, Operation, nullable, obj, param

COUNT = {"type": "integer", "minimum": 0}
SCOPE = obj(
    {"spent_usd": NUM, "reserved_usd": NUM, "cap_usd": nullable(NUM), "pct": nullable(NUM), "state": STR},
    {"forecast_usd": nullable(NUM), "members": {"type": "array", "items": STR}, "action": STR},
)
CALLS = obj(
    {
        "in_flight": COUNT,
        "reserved_usd": NUM,
        "expired": COUNT,
        "recorded_5m": COUNT,
        "per_min": NUM,
        "ttl_s": INT,
    }
)
STATUS = obj(
    {
        "day": STR,
        "global": SCOPE,
        "models": {"type": "object", "additionalProperties": SCOPE},
        "stripe_fees": {"type": "object"},
        "unpriced": {"type": "array"},
        "calls": CALLS,
    },
    {
        "updated_at": nullable(TS),
        "spend_today": {"type": "array", "items": obj({"ts": TS, "spent_usd": NUM})},
    },
)
# printable ASCII without surrounding spaces (the server takes any printable name)
MODEL = {"type": "string", "pattern": "^[!-~]([ -~]*[!-~])?$", "maxLength": MAX_KEY_CHARS}
USD_CAP = {"type": "number", "minimum": 0, "maximum": MAX_API_CAP_USD}
ACTION = {"type": "string", "enum": ["allow", "switch", "throttle"]}
DECISION = obj({"action": ACTION, "model": STR, "reason": STR, "retry_after_s": COUNT}, {"would": STR})
USD = {"type": "number", "minimum": 0, "maximum": MAX_USD}
TOKENS = {"type": "integer", "minimum": 0, "maximum": MAX_TOKENS}
TOKEN = {"type": "string", "pattern": "^rsv_[0-9]{1,19}$", "description": "a reservation from /api/costs/reserve"}
# epoch seconds (the server takes ISO-8601 too); the UTC day the call counts toward
CALL_TS = {"type": "number", "minimum": 946684800, "maximum": 7258118400}
AMOUNTS = {"input_tokens": TOKENS, "output_tokens": TOKENS, "usd": USD}
# at least one amount: usd, or input_tokens/output_tokens
ANY_AMOUNT = [{"required": ["usd"]}, {"required": ["input_tokens"]}, {"required": ["output_tokens"]}]
RESERVATION = obj(
    {
        "reservation": nullable(TOKEN),
        "action": ACTION,
        "model": STR,
        "reason": STR,
        "estimate_usd": NUM,
        "expires_at": nullable(TS),
        "retry_after_s": COUNT,
    },
    {"would": STR},
)
RECORDED = obj({"recorded_usd": NUM, "decision": DECISION})

OPERATIONS = (
    Operation(
        "GET",
        "/api/costs/status",
        "Today's AI spend against the caps",
        "key",
        {200: STATUS},
        "costs",
        conditional=True,
    ),
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
    Operation(
        "POST",
        "/api/costs/reserve",
        "Decide one AI call and hold its estimate against the caps (settle it with /api/costs/usage)",
        "key",
        {200: RESERVATION, 400: ERROR},
        "costs",
        description="Held against the model's cap and the global cap in one transaction: settled spend never "
        "passes a cap by more than the calls' under-estimates. `throttle` holds nothing (`reservation` null); "
        "`switch` holds against the fallback `model`. An unsettled reservation is settled at its estimate after "
        "`ttl_s` (default COST_RESERVATION_TTL_S).",
        body=obj(
            {"model": MODEL, "estimate_usd": USD},
            {"ttl_s": {"type": "number", "exclusiveMinimum": 0, "maximum": MAX_TTL_S}},
            closed=True,
        ),
    ),
    Operation(
        "POST",
        "/api/costs/usage",
        "Count one AI call now (tokens priced like ai_usage.ndjson lines, or usd), or settle its reservation",
        "key",
        {200: RECORDED, 400: ERROR, 404: ERROR},
        "costs",
        description="Counted against today's caps at once; a cap crossed rewrites cost_state.json before the "
        "answer, so the next /api/costs/check sees it. Never also write the call to ai_usage.ndjson (it would "
        "count twice). With `reservation`: settles it (404 when it is not open: unknown, or already settled).",
        body={
            "oneOf": [
                {**obj({"model": MODEL}, {**AMOUNTS, "ts": CALL_TS}, closed=True), "anyOf": ANY_AMOUNT},
                {**obj({"model": MODEL, "reservation": TOKEN}, AMOUNTS, closed=True), "anyOf": ANY_AMOUNT},
            ]
        },
    ),
    Operation(
        "POST",
        "/api/costs/release",
        "Give a reservation's hold back, counting nothing (the AI call failed)",
        "key",
        {200: obj({"reservation": TOKEN, "released": {"const": True}}), 400: ERROR, 404: ERROR},
        "costs",
        body=obj({"reservation": TOKEN}, closed=True),
    ),
)
