"""The SLO control's result types: the exact JSON of `GET /api/slo/status` and its siblings.

Used by the core functions that build them, the routes that return them and the `--json`
printers. A new field is one line here (`NotRequired[...]` when not every answer has it).
No `from __future__ import annotations` here: TypedDict needs to see `NotRequired` at run time.
"""

from typing import TYPE_CHECKING, NotRequired, TypedDict

from echoops.core.types import UnreadableInput

if TYPE_CHECKING:
    from echoops.core.pager.types import Raised


class Window(TypedDict):
    """Figures of one burn window (`5m` ... `7d`)."""

    requests: int
    errors: int
    slow: int
    error_rate: float
    burn: float  # error ratio / budget ratio; 1.0 spends the budget exactly on time
    enough_traffic: bool  # at least SLO_MIN_REQUESTS requests: may raise an alarm


class Budget(TypedDict):
    """The error budget over SLO_WINDOW_DAYS."""

    window: str  # "30d"
    requests: int
    errors: int
    allowed_errors: float
    remaining_budget_pct: float  # may go below zero when overspent


class Target(TypedDict):
    p95_ms: float
    error_budget_pct: float
    window_days: int
    min_requests: int


class GateOverride(TypedDict):
    """An operator's override of the gate (a clear by command, or the flag removed by hand)."""

    since: str
    by: str  # "command" | "file"
    reason: str
    until: str
    burn_dropped_at: str | None  # when the 2h burn dropped to 2x or below after the clear
    ends: str  # in words: when the override ends


class GateFlag(TypedDict):
    """The deploy gate as read from `logs/deploy_gate.flag` (every key None while it is open)."""

    set: bool
    reason: str | None
    burn_2h: float | None
    burn_10m: float | None
    since: str | None
    set_at: str | None
    override: GateOverride | None  # the operator's override, while one holds


class GateSlices(TypedDict):
    """The gate's view of the last 2h in 10-minute slices."""

    min_requests: int  # fewest requests a slice needs to be judged
    judged: int
    burning: int  # judged slices burning over 2x
    below: int  # judged slices at or below 2x
    thin: int  # slices too thin to judge
    burns: list[float | None]  # each slice's burn, oldest first (None: too thin)


class Gate(GateFlag):
    """The gate in the status document: the flag plus whether the condition holds right now."""

    condition: bool


class HistoryPoint(TypedDict):
    """One past tick, for the sparklines."""

    ts: str
    state: str
    p95_ms: float | None
    p99_ms: float | None
    error_rate: float
    burn_1h: float
    burn_24h: float
    remaining_budget_pct: float
    backfilled: bool  # replayed from stored aggregates by the first tick


class Stale(TypedDict):
    """Why the status is old: the source (Prometheus) could not answer the latest ticks."""

    since: str  # the first failed tick of this outage
    error: str  # the latest failure, in words
    last_good_at: str | None  # `updated_at` of the status kept (None: no tick ever succeeded)
    failed_ticks: int


class SloDocument(TypedDict):
    """What a tick computes (`compute()`): the status document without `gate` and `history`."""

    state: str  # "green" | "yellow" | "red"
    reasons: list[str]
    p95_ms: float | None  # None without traffic in `period`
    p99_ms: float | None
    error_rate: float
    period: str  # the window p95_ms, p99_ms, error_rate and requests cover: "24h"
    requests: int
    errors: int
    remaining_budget_pct: float
    budget: Budget
    burn_alert: str  # "none" | "ticket" | "page" | "gate"
    alerts: list[str]
    burn: dict[str, float]  # window name -> burn rate
    windows: dict[str, Window]
    gate_condition: bool
    gate_slices_burning: int
    gate_slices: GateSlices
    target: Target
    rebaseline_at: str | None
    notes: list[str]
    updated_at: str | None  # None before the first tick
    source: NotRequired[str]  # "prometheus" with SLO_SOURCE=prometheus (absent for the request logs)
    stale: NotRequired[Stale]  # present while the source cannot answer: this is the last good status


class SloStatus(SloDocument):
    """`GET /api/slo/status`, `echoops slo status --json`, `logs/slo_status.json`."""

    gate: Gate
    history: list[HistoryPoint]


class RequestIngest(TypedDict):
    """What one tick read from the request logs."""

    lines: int
    bad: int
    bad_reasons: dict[str, int]
    too_old: int
    minutes_touched: int
    sources: list[str]
    events: list[str]  # "requests.ndjson: rotated", ...
    errors: list[UnreadableInput]  # sources that could not be read (skipped; the others were read)


class SourceReport(TypedDict):
    """How a Prometheus-sourced tick went (SLO_SOURCE=prometheus)."""

    name: str  # "prometheus"
    queries: int  # queries answered this tick (a constant: it does not grow with the history)
    duration_ms: float


class SloTick(TypedDict):
    """`echoops slo tick --json`."""

    status: SloStatus
    ingest: RequestIngest
    source: NotRequired[SourceReport]  # SLO_SOURCE=prometheus only
    gate_set: bool  # this tick set the deploy gate
    incident: "Raised | None"  # the incident this tick raised
    resolved: list[str]  # the SLO incidents this tick resolved (back to green/yellow, gate cleared)


class Rebaselined(TypedDict):
    """`POST /api/slo/rebaseline`, `echoops slo rebaseline --json`."""

    rebaseline_at: str
    reason: str | None
    status: SloStatus


class GateCleared(TypedDict):
    """`echoops slo gate --clear --json`."""

    cleared: bool
    reason: str
    gate: GateFlag  # as it was before the clear
    override: GateOverride | None
    resolved: list[str]  # the deploy-gate incident this resolved (when one was open)
