"""The autoscaler's result types: the exact JSON of `/api/scale/*` and `echoops scale ... --json`.

Used by the core functions that build them, the routes that return them and the `--json`
printers. A new field is one line here (`NotRequired[...]` when not every answer has it).
No `from __future__ import annotations` here: TypedDict needs to see `NotRequired` at run time.
"""

from typing import Any, NotRequired, TypedDict

from echoops.core.types import UnreadableInput


class Component(TypedDict):
    arrivals: float  # this component's forecast over the horizon
    weight: float  # its share of the blend (inverse recent squared error)


class Forecast(TypedDict):
    backlog: float  # jobs waiting at the latest sample
    rate_now_per_min: float
    rate_in_horizon_per_min: float
    arrivals_over_horizon: float
    horizon_min: int
    trend_per_min2: float
    jobs_per_worker_min: float
    throughput_source: str  # "observed" | "fallback" (SCALE_JOBS_PER_WORKER_MIN)
    method: str  # SCALE_FORECAST: "damped+seasonal" | "damped" | "holt"
    method_reason: str  # which forecast is in use now and why (e.g. the profile still lacks history)
    components: dict[str, Component]  # damped+seasonal: the blend's parts ({} for a single forecast)
    history_days: float  # days of samples the seasonal profiles have learnt from


class GateHold(TypedDict):
    set: bool  # the deploy gate is set: no scale-up
    reason: str | None


class Samples(TypedDict):
    ingested: int
    bad: int
    last_sample_at: str | None
    age_s: int | None


class Bounds(TypedDict):
    min: int
    max: int


class SourceHealth(TypedDict):
    """How SCALE_QUEUE_SOURCE answers `scale sample` (the decision holds while it does not)."""

    kind: str  # "file" | "redis" | "rq" | "celery"
    missed_in_row: int  # samples skipped in a row because the source could not be read
    last_error: str | None
    last_ok_at: str | None
    last_attempt_at: str | None


class HistoryPoint(TypedDict):
    ts: str
    desired: int
    target: int
    actual: int
    backlog: int
    action: str
    dry_run: bool
    applied: bool


class ProjectionPoint(TypedDict):
    """The queue `in_min` minutes ahead by the forecast arrivals, with the actual workers and
    with the desired ones (the chart's dashed lines)."""

    in_min: int
    ts: str
    backlog_at_actual: float
    backlog_at_desired: float


class Actuator(TypedDict):
    """How SCALE_CMD ran."""

    argv: list[str]
    ok: bool  # exited 0
    rc: int | None  # None: timed out or could not start
    error: NotRequired[str]


class Context(TypedDict):
    """What the decision was made from (the part of the status after the decision itself)."""

    actual_source: str  # "sample" | "applied" | "scale_min"
    forecast: Forecast
    gate: GateHold
    p95_ms: float | None
    p95_window_min: int  # p95_ms is over this many minutes (the SLO's own p95 is over 24 h)
    p95_target_ms: float
    last_change_at: str | None
    samples: Samples
    bounds: Bounds
    cooldown_min: int
    source: SourceHealth
    projection: list[ProjectionPoint]


class ScaleStatus(TypedDict):
    """`GET /api/scale/status`, `echoops scale status --json`: the decision for now, recorded or not."""

    desired: int  # what the policy wants
    actual: int
    reason: str  # one line with the numbers
    dry_run: bool
    target: int  # what an apply would set now (desired, unless held)
    recommended: int
    need: float  # fractional workers before rounding
    action: str  # "scale_up" | "scale_down" | "hold"
    held_by: str | None  # "source" | "stale" | "gate" | "cooldown" | None
    cooldown_remaining_s: int
    actual_source: str  # "sample" | "applied" | "scale_min"
    forecast: Forecast
    gate: GateHold
    p95_ms: float | None
    p95_window_min: int  # p95_ms is over this many minutes (the SLO's own p95 is over 24 h)
    p95_target_ms: float
    last_change_at: str | None
    samples: Samples
    bounds: Bounds
    cooldown_min: int
    source: SourceHealth
    projection: list[ProjectionPoint]  # the queue over the forecast horizon, every 5 minutes
    history: list[HistoryPoint]
    input_errors: list[UnreadableInput]  # queue.ndjson could not be read: the decision uses the stored state


class QueueIngest(TypedDict):
    """What one tick or apply read from queue.ndjson."""

    samples: int
    bad: int
    bad_reasons: dict[str, int]  # reason -> samples skipped ("future", "bad_ts", "out_of_order", ...)
    events: list[str]  # "rotated", "truncated", ...: queue.ndjson changed under the cursor
    errors: list[UnreadableInput]


class ScaleApplied(ScaleStatus):
    """`POST /api/scale/apply`, `echoops scale apply|tick --json`: the decision, recorded (and applied)."""

    applied: bool
    actuator: Actuator | None  # None when SCALE_CMD did not run
    ingest: QueueIngest


class ScaleSample(TypedDict):
    """`echoops scale sample --json`: what the queue source said, as appended to queue.ndjson."""

    source: str  # SCALE_QUEUE_SOURCE
    written: bool  # a sample line was appended (False for the file source)
    sample: dict[str, Any] | None  # the line as written
    detail: str  # why nothing was written (file source), else ""
    missed_in_row: int


class SystemdUnits(TypedDict):
    """`echoops scale systemd-units --json`: what was started and stopped to run instances 1..n."""

    unit: str  # the template prefix, "worker@"
    to: int
    running_before: list[str]
    started: list[str]
    stopped: list[str]
    left_alone: list[str]  # running instances with a non-numeric name
