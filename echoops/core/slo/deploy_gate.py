"""The deploy gate: `logs/deploy_gate.flag` (JSON: reason, burn_2h, burn_10m, since, set_at).

The SLO tick sets it when the gate condition holds (see `rules`); only an operator
removes it (`echoops slo gate --clear --reason TEXT`, logged, or deleting the file). CI calls
`echoops slo gate`, which exits 1 while it is set. A hand-made flag (`touch`) counts too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from echoops.core import clock, config, files, ndjson
from echoops.core.config import Settings
from echoops.core.errors import EchoopsError, ValidationError
from echoops.core.slo import rules
from echoops.core.slo.types import GateCleared, GateFlag, SloDocument

GATE_FLAG = "deploy_gate.flag"
BUDGET_LOG = "slo_budget.ndjson"
MAX_REASON = 500


class DeployGateSet(EchoopsError):
    """The deploy gate flag is present: deploys should wait (exit 1, HTTP 409)."""

    code = "deploy_gate_set"
    status = 409
    exit_code = 1


def gate_path(s: Settings) -> Path:
    """`logs/deploy_gate.flag`."""
    return s.log_path(GATE_FLAG)


def gate(*, s: Settings | None = None) -> GateFlag:
    """The deploy gate: `{"set": bool, "reason", "burn_2h", "burn_10m", "since", "set_at"}`."""
    s = s or config.settings()
    flag = files.read_flag(gate_path(s))
    f = flag or {}
    reason = f.get("reason")
    if flag is not None and not reason:
        reason = "flag file present (no reason recorded)"  # JSON written by hand without one
    return {
        "set": flag is not None,
        "reason": reason,
        "burn_2h": f.get("burn_2h"),
        "burn_10m": f.get("burn_10m"),
        "since": f.get("since"),
        "set_at": f.get("set_at"),
    }


def require_gate_open(*, s: Settings | None = None) -> GateFlag:
    """The gate when it is open; DeployGateSet (exit 1) with the reason when it is set."""
    g = gate(s=s)
    if g["set"]:
        since = f" since {g['since']}" if g.get("since") else ""
        raise DeployGateSet(f"deploy gate is set{since}: {g['reason']}")
    return g


def clear_gate(reason: object, *, s: Settings | None = None, now: float | None = None) -> GateCleared:
    """Remove the gate flag (an operator action); logs `slo_gate_cleared` with `reason` and the flag it removed."""
    s = s or config.settings()
    text = validate_reason(reason, required=True) or ""  # required: never None
    before = gate(s=s)
    cleared = files.clear_flag(gate_path(s))
    ndjson.append(s.log_path(BUDGET_LOG), "slo_gate_cleared", now=now, reason=text, cleared=cleared, gate=before)
    return {"cleared": cleared, "reason": text, "gate": before}


def validate_reason(reason: object, *, required: bool) -> str | None:
    """An operator's reason: a string of at most MAX_REASON characters (None when optional and absent)."""
    if reason is None or (isinstance(reason, str) and not reason.strip()):
        if required:
            raise ValidationError("reason: give a reason (it is logged)", field="reason")
        return None
    if not isinstance(reason, str):
        raise ValidationError("reason must be a string", field="reason")
    if len(reason) > MAX_REASON:
        raise ValidationError(f"reason is longer than {MAX_REASON} characters", field="reason")
    return reason.strip()


def set_gate(s: Settings, doc: SloDocument, now: float) -> dict[str, Any]:
    """Write the flag from a status document whose gate condition holds; returns what was written.

    `since` is when the 2h window began: 2h before `now`, or the rebaseline when that is later."""
    w2, w10 = doc["windows"]["2h"], doc["windows"]["10m"]
    since = max(now - 2 * 3600, clock.parse_ts(doc["rebaseline_at"]) or 0.0)
    info = {
        "reason": (
            f"error budget burn {w2['burn']:.2f}x over 2h and {w10['burn']:.2f}x over 10m (> 2x the daily budget "
            f"of {s.slo_err_budget_pct:g}%, {doc['gate_slices_burning']} of {rules.GATE_SLICES} 10-minute "
            f"slices above 2x): {w2['errors']} of {w2['requests']} requests failed in 2h"
        ),
        "burn_2h": w2["burn"],
        "burn_10m": w10["burn"],
        "since": clock.iso(since),
        "set_at": clock.iso(now),
    }
    files.set_flag(gate_path(s), info)
    return info
