"""The live demo's script: a 15-minute loop the demo app's traffic follows (pure functions of time).

    0:00  normal          0.3% 5xx, usual latency, the queue at 60% of what 2 workers finish
    4:00  error burst     25% 5xx (503/500/504), latency x3, a CRITICAL app line, a WARNING
    6:00  sustained burn  7% 5xx, latency x1.8, arrivals at 140% of capacity: a backlog builds
   12:00  recovery        errors and latency fall back, arrivals at 30%: the backlog drains
   15:00  (again)

Why these numbers. The deploy gate needs the burn above 2x in every 10-minute slice of the
last 2h but one (core/slo/rules.py): the seeded history ends in 2h20m of burn, so the first
tick sets the gate, and this loop keeps every 10-minute stretch of it above 3x on average
(the quietest 10 minutes hold 3.3% of 5xx), so the gate condition goes on holding and the SLO
card stays RED with the gate set while the 5m/10m/30m burns swing with the phases. A 15-minute
loop cannot walk the 2h gate through set and clear: that takes two hours each way.

AI spend (gpt-4o-mini, the capped model) follows its own plan, from 84% of its cap at the
start of a loop through WARN (90%, ~2:40) to THROTTLE (100%, ~7:10) and on to 104%: the app
asks the guard before each call and stops calling a throttled model, so once throttled the
spend stays there until the next UTC day, when the next loop climbs again.
"""

from __future__ import annotations

from dataclasses import dataclass

LOOP_S = 900.0


@dataclass(frozen=True)
class Phase:
    name: str
    start_s: float  # offset in the loop
    end_s: float
    error_pct: tuple[float, float]  # share of requests answered 5xx, at the start and the end (linear)
    latency: tuple[float, float]  # latency multiplier, start and end
    queue_load: float  # job arrivals as a share of what the workers finish


PHASES = (
    Phase("normal", 0.0, 240.0, (0.3, 0.3), (1.0, 1.0), 0.6),
    Phase("error burst", 240.0, 360.0, (25.0, 25.0), (3.0, 3.0), 0.9),
    Phase("sustained burn", 360.0, 720.0, (7.0, 7.0), (1.8, 1.8), 1.4),
    Phase("recovery", 720.0, LOOP_S, (7.0, 0.3), (1.8, 1.0), 0.3),
)


@dataclass(frozen=True)
class Moment:
    """The story at one instant."""

    loop: int  # loops completed since the start
    offset_s: float  # seconds into the current loop
    phase: str
    error_pct: float
    latency: float
    queue_load: float


def at(elapsed_s: float) -> Moment:
    """The story `elapsed_s` seconds after the traffic started (>= 0)."""
    elapsed_s = max(0.0, elapsed_s)
    loop = int(elapsed_s // LOOP_S)
    offset = elapsed_s - loop * LOOP_S
    phase = next((p for p in PHASES if p.start_s <= offset < p.end_s), PHASES[-1])
    share = (offset - phase.start_s) / (phase.end_s - phase.start_s)
    return Moment(
        loop,
        offset,
        phase.name,
        phase.error_pct[0] + (phase.error_pct[1] - phase.error_pct[0]) * share,
        phase.latency[0] + (phase.latency[1] - phase.latency[0]) * share,
        phase.queue_load,
    )


# gpt-4o-mini's spend as a share of its cap, by offset in the loop (linear in between)
SPEND_PLAN = ((0.0, 0.84), (540.0, 1.04))


def spend_share(offset_s: float) -> float:
    """The share of its daily cap the capped model's spend should have reached at `offset_s`."""
    (t0, v0), (t1, v1) = SPEND_PLAN
    if offset_s >= t1:
        return v1
    return v0 + (v1 - v0) * max(0.0, offset_s - t0) / (t1 - t0)


# (offset in the loop, level, source, message): the app's own log lines. {n} is the loop number
# (the pager normalises numbers, so a message repeats as one fingerprint, counted); the CRITICAL
# rotates over three failures, each coming back every 45 minutes, inside the pager's 60-minute
# dedup window: new incidents early on, then counts going up.
CRITICALS = (
    ("checkout", "payment provider answering 503 on /api/checkout: payments failing"),
    ("db", "primary database connection pool exhausted: requests failing"),
    ("worker", "report worker killed (out of memory) while rendering job {n}"),
)
LOG_LINES = (
    (240.0, "CRITICAL", None, None),  # the loop's CRITICALS entry
    (250.0, "WARNING", "web", "5xx rate above 20% on /api/checkout"),
    (480.0, "WARNING", "worker", "queue depth rising: workers cannot keep up"),
    (720.0, "INFO", "web", "rolled back the release; error rate falling"),
    (840.0, "INFO", "web", "error rate back to normal"),
)
PURCHASE_AT_S = 450.0  # a new purchase each loop (the portal's ledger and the Stripe fees move)
