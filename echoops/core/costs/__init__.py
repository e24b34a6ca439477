"""Cost guardrails (phase 79).

AI spend (from `ai_usage.ndjson`, priced by `prices`) is ingested by `ingest` and Stripe
fees per UTC day are read by `fees` (a failed read is recorded and shown, never taken as $0);
`caps` holds the caps (environment or API), computes utilisation and states, raises
incidents and writes `cost_state.json`; `guardrail` turns that state into the decision for
one AI call (allow, switch to a cheaper model, throttle), never touching admin.

Per call: `calls` (`spend`, `record_usage`, the reserve/usage/release bodies) over
`reservations` (the ledger: every statement that holds or settles money, one transaction a
call, the overshoot guarantee), `admission` (the decision, a pure function) and `clients`
(`guard_openai`, the official OpenAI client).

Interface to the other controls and to apps: `guard` (in front of every AI call), `spend`,
`record_usage`, `check`, `status`, `calls_status` (reservations in flight and the per-call
recording rate, for /metrics too), `tick`, `set_cap`.
"""

from echoops.core.costs.calls import (
    CostThrottled,
    Spend,
    record_usage,
    release_request,
    reserve,
    reserve_request,
    settle,
    spend,
    usage_request,
)
from echoops.core.costs.caps import EVENTS_LOG, SCHEMA, calls_status, check, set_cap, state_document, status, tick
from echoops.core.costs.clients import guard_openai
from echoops.core.costs.guardrail import STATE_FILE, guard

__all__ = [
    "EVENTS_LOG",
    "SCHEMA",
    "STATE_FILE",
    "CostThrottled",
    "Spend",
    "calls_status",
    "check",
    "guard",
    "guard_openai",
    "record_usage",
    "release_request",
    "reserve",
    "reserve_request",
    "set_cap",
    "settle",
    "spend",
    "state_document",
    "status",
    "tick",
    "usage_request",
]
