"""The cost guardrails' result types: the exact JSON of `/api/costs/*` and `echoops costs ... --json`.

Used by the core functions that build them, the routes that return them and the `--json`
printers. A new field is one line here (`NotRequired[...]` when not every answer has it).
`global` is a Python keyword, so the documents holding it use the functional syntax.
No `from __future__ import annotations` here: TypedDict needs to see `NotRequired` at run time.
"""

from typing import Any, NotRequired, TypedDict

from echoops.core.types import UnreadableInput


class Scope(TypedDict):
    """Spend against one cap (the global cap or a model's) today, in USD."""

    spent_usd: float  # settled: recorded per call, settled reservations, ingested log lines
    reserved_usd: float  # held by per-call reservations not settled yet (spend()/POST /api/costs/reserve)
    cap_usd: float | None  # None: no cap on this scope
    pct: float | None
    state: str  # "ok" | "warn" (>= 90%) | "throttle" (>= 100%)
    forecast_usd: float  # today's rate extrapolated to UTC midnight
    cap_source: NotRequired[str | None]  # "env" | "api": where the cap came from (None: no cap)
    cap_since: NotRequired[str | None]  # when that cap was set, or first seen in the environment
    members: NotRequired[list[str]]  # models spending under a group cap ("embeddings")
    action: NotRequired[str]  # models only: the guard's action for the scope's own name


class StripeFees(TypedDict):
    """Today's Stripe fees (USD); they warn and page, never throttle."""

    spent_usd: float
    source: str | None  # "stripe" | "ledger": where fees last came from; None before the first read
    fetched_at: str | None  # when fees were last read successfully
    error: str | None  # the last read's failure; None after a good read
    error_at: str | None
    count: NotRequired[int]  # balance transactions (source "stripe")
    cap_usd: NotRequired[float]  # with STRIPE_FEES_CAP_DAILY_USD
    pct: NotRequired[float | None]
    state: NotRequired[str]  # "ok" | "warn" | "over"


class Calls(TypedDict):
    """Per-call enforcement right now: reservations in flight and the recording rate
    (`costs.calls_status()`, the `calls` of `GET /api/costs/status`)."""

    in_flight: int  # open reservations within their TTL (AI calls under way)
    reserved_usd: float  # held by every open reservation, expired ones included
    expired: int  # open past their TTL: the next tick settles them at their estimate
    recorded_5m: int  # calls recorded or settled one by one in the last 5 minutes
    per_min: float  # recorded_5m / 5
    ttl_s: int  # COST_RESERVATION_TTL_S


class SpendPoint(TypedDict):
    """Today's global AI spend as one tick saw it (the Costs chart)."""

    ts: str
    spent_usd: float


# `GET /api/costs/status`, `echoops costs status --json`.
CostsStatus = TypedDict(
    "CostsStatus",
    {
        "day": str,  # the UTC day
        "mode": str,  # "enforce" | "monitor" (COST_ENFORCE=false: every decision allows)
        "global": Scope,
        "models": dict[str, Scope],
        "stripe_fees": StripeFees,
        "unpriced": list[str],  # models counted at the conservative default price
        "updated_at": str | None,  # the last tick; None before the first
        "calls": Calls,
        "spend_today": list[SpendPoint],  # global spend at each tick today (at most one per 5 min), oldest first
    },
)


class Verdict(TypedDict):
    """The decision for one model as `cost_state.json` stores it (`decisions`)."""

    action: str  # "allow" | "switch" | "throttle"
    model: str  # the model to call (the fallback on "switch")
    reason: str
    would: NotRequired[str]  # monitoring-only mode (COST_ENFORCE=false): the action enforcing would take


class Decision(Verdict):
    """`guard(model)`, `GET /api/costs/check`, `echoops costs check`: the decision for one AI call."""

    retry_after_s: int  # seconds to the next UTC midnight when throttled, else 0


class Reservation(TypedDict):
    """`POST /api/costs/reserve`; what `spend()` decided (`Spend.document()`)."""

    reservation: str | None  # settle it with POST /api/costs/usage; None when throttled (nothing reserved)
    action: str  # "allow" | "switch" | "throttle"
    model: str  # the model to call (the fallback on "switch")
    reason: str
    estimate_usd: float  # what is held against the caps (0 when throttled)
    expires_at: str | None  # when an unsettled reservation is settled at its estimate
    retry_after_s: int  # seconds to the next UTC midnight when throttled, else 0
    would: NotRequired[str]  # monitoring-only mode: the action enforcing would have taken


class Recorded(TypedDict):
    """`POST /api/costs/usage`, `record_usage()`, `Spend.record()`, `echoops costs record --json`."""

    recorded_usd: float  # the call's cost as counted (USD)
    decision: Decision  # the guard's decision for the next call on the same model


class Released(TypedDict):
    """`POST /api/costs/release`: a reservation closed without counting anything (the call failed)."""

    reservation: str
    released: bool


class CapChange(TypedDict):
    scope: str  # "daily" | "model"
    key: str | None  # the model (scope "model")
    usd_cap: float
    old_usd_cap: float | None
    old_source: str | None  # "env" | "api" | None


class CapSet(TypedDict):
    """`POST /api/costs/set-cap`, `echoops costs set-cap --json`."""

    cap: CapChange
    status: CostsStatus


class Alert(TypedDict):
    kind: str  # "warn" | "throttle" | "forecast" | "fee_warn" | "fee_over" | "unpriced"
    scope: str
    fingerprint: str
    incident: str | None


# `echoops costs tick --json` (also the `cost_tick` event).
CostsTick = TypedDict(
    "CostsTick",
    {
        "day": str,
        "lines": int,
        "calls": int,
        "bad": dict[str, int],  # reason -> lines skipped
        "log_events": list[str],  # "truncated", "rotated", "replaced": ai_usage.ndjson changed under the cursor
        "unpriced": list[str],
        "global": dict[str, Any],  # spent_usd, cap_usd, pct, state, forecast_usd
        "mode": str,  # "enforce" | "monitor"
        "throttled": list[str],  # models whose calls are throttled (none in monitoring-only mode)
        "over_cap": list[str],  # models at or over their cap, throttled or not
        "input_errors": list[UnreadableInput],  # ai_usage.ndjson could not be read
        "stripe_fees": dict[str, Any],  # spent_usd plus the fee sync's report (source, error?, ...)
        "alerts": list[Alert],
        "expired_reservations": int,  # open past their TTL, settled at their estimate by this tick
        "duration_ms": float,
    },
)
