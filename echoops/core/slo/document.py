"""The SLO status document from window figures, whatever their source.

A source (`sources`: the request logs, or Prometheus) answers one question per tick: how many
requests, errors and slow requests fell in each burn window, in each 10-minute slice of the
last 2h and in the budget window, and the p95/p99 latency over the period. Everything after
that (burn rates, tiers, state, the gate condition, notes) is built here, once, by `build`,
so both sources give the same document under the same rules (`rules`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from echoops.core import clock
from echoops.core.config import Settings
from echoops.core.errors import EchoopsError
from echoops.core.slo import rules
from echoops.core.slo.types import SloDocument, Window


class SourceUnavailable(EchoopsError):
    """The SLO source could not answer (Prometheus down, refusing the query, or answering junk).

    The tick keeps the last good status, marked stale, and leaves the deploy gate as it is."""

    code = "slo_source_unavailable"
    status = 503
    exit_code = 1


@dataclass(frozen=True)
class Figures:
    """What a source measured for one tick (counts are whole requests; latencies in ms)."""

    windows: dict[str, tuple[int, int, int]]  # every name of rules.WINDOWS -> (requests, errors, slow)
    slices: list[tuple[int, int]]  # the gate's GATE_SLICES 10-minute slices (requests, errors), oldest first
    budget: tuple[int, int]  # (requests, errors) over SLO_WINDOW_DAYS
    p95_ms: float | None  # over rules.PERIOD; None without traffic
    p99_ms: float | None
    notes: list[str] = field(default_factory=list)  # what the source wants the operator to know


def empty() -> Figures:
    """Figures with no traffic anywhere (before a source has answered)."""
    return Figures(
        windows={name: (0, 0, 0) for name in rules.WINDOWS},
        slices=[(0, 0)] * rules.GATE_SLICES,
        budget=(0, 0),
        p95_ms=None,
        p99_ms=None,
    )


def _r(x: float | None, digits: int) -> float | None:
    return None if x is None else round(x, digits)


def build(s: Settings, figures: Figures, *, now: float, rebaseline_at: float | None) -> SloDocument:
    """The SLO document (without `gate` and `history`) from `figures` as of `now`."""
    budget = s.slo_err_budget_pct
    minimum = s.slo_min_requests
    windows: dict[str, Window] = {}
    for name in rules.WINDOWS:
        t, e, sl = figures.windows[name]
        windows[name] = {
            "requests": t,
            "errors": e,
            "slow": sl,
            "error_rate": round(rules.ratio(e, t), 6),
            "burn": round(rules.burn_rate(e, t, budget), 4),
            "enough_traffic": t >= minimum,
        }
    slices = rules.judge_slices(figures.slices, budget, minimum)
    bt, be = figures.budget
    remaining = round(rules.remaining_budget_pct(be, bt, budget), 3)
    period = windows[rules.PERIOD]
    p95, p99 = _r(figures.p95_ms, 2), _r(figures.p99_ms, 2)
    verdict = rules.evaluate(
        windows,
        p95_ms=p95,
        period_enough=period["enough_traffic"],
        remaining_pct=remaining,
        budget_enough=bt >= minimum,
        target_ms=s.slo_lat_p95_ms,
        slices=slices,
    )
    notes: list[str] = list(figures.notes)
    thin = [name for name, w in windows.items() if not w["enough_traffic"]]
    if thin:
        notes.append(
            f"insufficient traffic (< {minimum} requests) in {', '.join(thin)}: those windows raise no burn alarm"
        )
    if bt < minimum:
        notes.append(f"insufficient traffic in the {s.slo_window_days}d budget window: the budget is not judged")
    if not period["enough_traffic"]:
        notes.append(f"insufficient traffic in {rules.PERIOD}: p95 is not judged against the target")
    return {
        "state": verdict["state"],
        "reasons": verdict["reasons"],
        "p95_ms": p95,
        "p99_ms": p99,
        "error_rate": period["error_rate"],
        "period": rules.PERIOD,
        "requests": period["requests"],
        "errors": period["errors"],
        "remaining_budget_pct": remaining,
        "budget": {
            "window": f"{s.slo_window_days}d",
            "requests": bt,
            "errors": be,
            "allowed_errors": round(budget / 100.0 * bt, 3),
            "remaining_budget_pct": remaining,
        },
        "burn_alert": verdict["burn_alert"],
        "alerts": verdict["alerts"],
        "burn": {name: w["burn"] for name, w in windows.items()},
        "windows": windows,
        "gate_condition": verdict["gate_condition"],
        "gate_slices_burning": slices["burning"],
        "gate_slices": slices,
        "target": {
            "p95_ms": s.slo_lat_p95_ms,
            "error_budget_pct": budget,
            "window_days": s.slo_window_days,
            "min_requests": minimum,
        },
        "rebaseline_at": None if rebaseline_at is None else clock.iso(rebaseline_at),
        "notes": notes,
        "updated_at": clock.iso(now),
    }
