"""The autoscale decision: one pure function shared by tick, apply, status and simulate.

Rules, in order:
1. need = (backlog + forecast arrivals over the horizon) / (jobs/min per worker x horizon):
   the workers that drain today's backlog and absorb what the forecast says will arrive,
   within the horizon (fractional workers).
2. HPA tolerance: when need is within 10% of the current workers, keep them; otherwise
   ceil(need).
3. +1 worker while p95 latency is above the SLO target.
4. Clamp to [SCALE_MIN, SCALE_MAX] -> the recommendation (stored for rule 5).
5. Scale-down stabilisation (HPA): going down only as far as the highest recommendation
   seen over the last cooldown window -> `desired`.
6. Holds that leave `target` at the current workers: the queue source (SCALE_QUEUE_SOURCE)
   missed its latest sample (never scale on missing data); queue samples older than the horizon
   (the app stopped reporting: the numbers are not the queue any more); the deploy gate
   blocks scale-up only; the cooldown (SCALE_COOLDOWN_MIN since the last applied change)
   blocks both ways.
`target` is what an apply would set now; `desired` is what the policy wants.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

TOLERANCE = 0.10


@dataclass(frozen=True)
class PolicyConfig:
    min_workers: int
    max_workers: int
    cooldown_s: float
    horizon_min: float
    p95_target_ms: float | None = None
    tolerance: float = TOLERANCE

    @classmethod
    def from_settings(cls, s) -> PolicyConfig:
        return cls(s.scale_min, s.scale_max, s.scale_cooldown_min * 60.0, float(s.scale_horizon_min), s.slo_lat_p95_ms)


@dataclass(frozen=True)
class Decision:
    desired: int
    target: int
    recommended: int
    actual: int
    need: float  # fractional workers before rounding
    action: str  # "scale_up" | "scale_down" | "hold"
    held_by: str | None  # "source" | "stale" | "gate" | "cooldown" | None
    cooldown_remaining_s: int
    reason: str


def _num(x: float) -> str:
    return f"{x:.0f}" if x >= 10 or x == int(x) else f"{x:.1f}"


def decide(
    *,
    backlog: float,
    forecast_arrivals: float,
    jobs_per_worker_min: float,
    actual: int,
    cfg: PolicyConfig,
    recent: Iterable[tuple[float, int]] = (),
    last_change_at: float | None = None,
    gate: bool = False,
    p95_ms: float | None = None,
    sample_age_s: float = 0.0,
    source_missed: int = 0,
    now: float,
    forecast_label: str = "forecast",
) -> Decision:
    """Workers wanted now and what may be applied; `recent` = (ts, recommended) of past decisions."""
    horizon = cfg.horizon_min
    tpw = jobs_per_worker_min if jobs_per_worker_min > 0 else 1e-9
    need = (backlog + forecast_arrivals) / (tpw * horizon)
    lo, hi = cfg.min_workers, cfg.max_workers
    base = max(0, math.ceil(need - 1e-9))
    parts = [
        f"backlog {backlog:.0f} + {forecast_label} {forecast_arrivals:.0f} in {horizon:g}m needs {base} "
        f"worker{'s' if base != 1 else ''} at {_num(jobs_per_worker_min)} jobs/min each"
    ]
    if actual > 0 and abs(need / actual - 1.0) <= cfg.tolerance and base != actual:
        base = actual
        parts.append(f"within {cfg.tolerance:.0%} of {actual}: keep {actual}")
    if p95_ms is not None and cfg.p95_target_ms is not None and p95_ms > cfg.p95_target_ms:
        base += 1
        parts.append(f"p95 {p95_ms:.0f}ms > {cfg.p95_target_ms:g}ms target: +1")
    recommended = base
    if recommended > hi:
        recommended = hi
        parts.append(f"capped at SCALE_MAX {hi}")
    elif recommended < lo:
        recommended = lo
        parts.append(f"raised to SCALE_MIN {lo}")
    desired = recommended
    if desired < actual and cfg.cooldown_s > 0:
        since = now - cfg.cooldown_s
        peak = desired
        for ts, rec in recent:
            if ts >= since and rec > peak:
                peak = rec
        if peak > desired:
            desired = min(peak, actual)
            parts.append(f"scale-down held at {desired} (highest in last {cfg.cooldown_s / 60:g}m)")
    remaining = 0
    if last_change_at is not None and cfg.cooldown_s > 0:
        remaining = max(0, math.ceil(last_change_at + cfg.cooldown_s - now))
    target, held_by = desired, None
    if desired != actual and source_missed > 0:
        target, held_by = actual, "source"
        plural = "s" if source_missed != 1 else ""
        parts.append(f"queue source unreadable ({source_missed} missed sample{plural}): holding {actual}")
    elif desired != actual and sample_age_s > horizon * 60:
        target, held_by = actual, "stale"
        parts.append(f"latest queue sample is {sample_age_s / 60:.0f}m old: holding {actual}")
    elif desired > actual and gate:
        target, held_by = actual, "gate"
        parts.append(f"deploy gate set: no scale-up, stays {actual}")
    elif desired != actual and remaining > 0:
        target, held_by = actual, "cooldown"
        parts.append(f"cooldown {math.ceil(remaining / 60)}m left, stays {actual}")
    action = "scale_up" if target > actual else "scale_down" if target < actual else "hold"
    if action != "hold":
        parts.append(f"{actual} -> {target}")
    return Decision(desired, target, recommended, actual, need, action, held_by, remaining, "; ".join(parts))
