"""SLO budget maths and the one place that decides state, alert tier and the deploy-gate condition.

Budget ratio b = SLO_ERR_BUDGET_DAILY_PCT / 100 (the share of requests allowed to fail).
burn(window) = (errors / requests in the window) / b; 1.0 spends the budget exactly on time.
remaining_budget_pct over SLO_WINDOW_DAYS = 100 * (1 - errors / (b * requests)); it may go
below zero. A window with no requests has error rate 0, burn 0 and p95 None; a window with
fewer than SLO_MIN_REQUESTS requests never raises an alarm and says so in `notes`.

Alert tiers (Google SRE Workbook, multiwindow multi-burn-rate; each pair needs both windows
above the threshold and both with enough traffic):
  page   burn(1h) > 14.4 and burn(5m) > 14.4, or burn(6h) > 6 and burn(30m) > 6
  gate   the brief's "burn > 2x daily budget for 2h", judged on the twelve 10-minute slices of
         the last 2h: burn(2h) > 2 (with enough traffic), at least 10 slices with enough traffic
         to judge (>= ceil(SLO_MIN_REQUESTS / 12) requests each, 9 by default), and every judged
         slice burning > 2 except at most one (one quiet slice cannot hide a sustained burn).
         62 minutes of burn, or a 30-minute burst however hot, never sets the gate.
  ticket burn(24h) > 3 and burn(2h) > 3, or burn(7d) > 1 and burn(6h) > 1
`burn_alert` names the highest tier firing, in the order none < ticket < page < gate.

State:
  red    the gate condition holds, the page tier fires, or p95 (period) > SLO_LAT_P95_MS
  yellow burn(1h) > 1, the ticket tier fires, p95 > 80% of the target, or remaining budget < 25%
(p95 and the budget are judged only with at least SLO_MIN_REQUESTS requests in their window)
  green  otherwise
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from echoops.core.slo.types import GateSlices, Window

# name -> minutes; the order is the order shown everywhere
WINDOWS: dict[str, int] = {
    "5m": 5,
    "10m": 10,
    "30m": 30,
    "1h": 60,
    "2h": 120,
    "6h": 360,
    "24h": 1440,
    "7d": 10080,
}
PERIOD = "24h"  # the window p95_ms, p99_ms and error_rate cover

PAGE_PAIRS = (("1h", "5m", 14.4), ("6h", "30m", 6.0))
GATE_WINDOW = "2h"
GATE_BURN = 2.0
GATE_SLICE_MIN = 10
GATE_SLICES = 12  # 10-minute slices of the 2h window
GATE_MAX_THIN = 2  # slices with too little traffic to judge that the gate tolerates
GATE_MAX_BELOW = 1  # judged slices at or below 2x that the gate tolerates
TICKET_PAIRS = (("24h", "2h", 3.0), ("7d", "6h", 1.0))
TIER_ORDER = ("none", "ticket", "page", "gate")
YELLOW_BURN_1H = 1.0
YELLOW_P95_SHARE = 0.8
YELLOW_REMAINING_PCT = 25.0


def ratio(part: int, whole: int) -> float:
    """part / whole, 0.0 when whole is 0 (no division by zero, no NaN)."""
    return part / whole if whole > 0 else 0.0


def burn_rate(errors: int, requests: int, budget_pct: float) -> float:
    """Burn rate: error ratio / budget ratio (1.0 = on budget); 0.0 without traffic."""
    return ratio(errors, requests) / (budget_pct / 100.0)


def remaining_budget_pct(errors: int, requests: int, budget_pct: float) -> float:
    """100 * (1 - errors / allowed errors) over the budget window; 100.0 without traffic; may be < 0."""
    allowed = (budget_pct / 100.0) * requests
    return 100.0 * (1.0 - errors / allowed) if allowed > 0 else 100.0


def gate_slice_min_requests(min_requests: int) -> int:
    """Fewest requests a 10-minute slice needs to be judged: its 1/12 share of SLO_MIN_REQUESTS."""
    return max(1, math.ceil(min_requests / GATE_SLICES))


def judge_slices(slices: list[tuple[int, int]], budget_pct: float, min_requests: int) -> GateSlices:
    """The gate's view of the 2h window from `slices` [(requests, errors)], oldest first.

    Returns `{min_requests, judged, burning, below, thin, burns}` where `burns` lists each
    slice's burn (None when too thin to judge), oldest first."""
    floor = gate_slice_min_requests(min_requests)
    burns: list[float | None] = []
    for requests, errors in slices:
        burns.append(round(burn_rate(errors, requests, budget_pct), 4) if requests >= floor else None)
    judged = [b for b in burns if b is not None]
    burning = sum(b > GATE_BURN for b in judged)
    return {
        "min_requests": floor,
        "judged": len(judged),
        "burning": burning,
        "below": len(judged) - burning,
        "thin": len(burns) - len(judged),
        "burns": burns,
    }


def gate_holds(window: Window, slices: GateSlices) -> bool:
    """The deploy-gate condition: the burn exceeded 2x over the whole last 2h (see the module doc)."""
    return (
        window["enough_traffic"]
        and window["burn"] > GATE_BURN
        and slices["thin"] <= GATE_MAX_THIN
        and slices["below"] <= GATE_MAX_BELOW
    )


def _pair(windows: Mapping[str, Window], long: str, short: str, threshold: float) -> bool:
    a, b = windows[long], windows[short]
    return a["enough_traffic"] and b["enough_traffic"] and a["burn"] > threshold and b["burn"] > threshold


def evaluate(
    windows: Mapping[str, Window],
    *,
    p95_ms: float | None,
    period_enough: bool,
    remaining_pct: float,
    budget_enough: bool,
    target_ms: float,
    slices: GateSlices,
) -> dict[str, Any]:
    """State, reasons, firing tiers and the gate condition from window figures (the one place).

    `slices`: the 10-minute slices of the last 2h as judged by `judge_slices`."""
    alerts: list[str] = []
    gate = gate_holds(windows[GATE_WINDOW], slices)
    page = [f"burn {lw} > {t:g} and {sw} > {t:g}" for lw, sw, t in PAGE_PAIRS if _pair(windows, lw, sw, t)]
    ticket = [f"burn {lw} > {t:g} and {sw} > {t:g}" for lw, sw, t in TICKET_PAIRS if _pair(windows, lw, sw, t)]
    if ticket:
        alerts.append("ticket")
    if page:
        alerts.append("page")
    if gate:
        alerts.append("gate")
    red: list[str] = []
    yellow: list[str] = []
    if gate:
        red.append(
            f"deploy gate condition: burn 2h {windows['2h']['burn']:.2f} > 2 for 2h"
            f" ({slices['burning']} of {GATE_SLICES} 10-minute slices > 2, {slices['thin']} too thin to judge)"
        )
    red.extend(f"page tier: {p}" for p in page)
    p95 = p95_ms if period_enough else None  # judged only with enough traffic
    if p95 is not None and p95 > target_ms:  # at the target is not red: the objective is p95 <= target
        red.append(f"p95 {p95:.0f} ms > target {target_ms:g} ms")
    if windows["1h"]["enough_traffic"] and windows["1h"]["burn"] > YELLOW_BURN_1H:
        yellow.append(f"burn 1h {windows['1h']['burn']:.2f} > 1")
    yellow.extend(f"ticket tier: {t}" for t in ticket)
    if p95 is not None and YELLOW_P95_SHARE * target_ms < p95 <= target_ms:
        yellow.append(f"p95 {p95:.0f} ms > 80% of target {target_ms:g} ms")
    if budget_enough and remaining_pct < YELLOW_REMAINING_PCT:
        yellow.append(f"remaining budget {remaining_pct:.1f}% < 25%")
    state = "red" if red else ("yellow" if yellow else "green")
    burn_alert = max(alerts, key=TIER_ORDER.index) if alerts else "none"
    return {"state": state, "reasons": red + yellow, "burn_alert": burn_alert, "alerts": alerts, "gate_condition": gate}
