"""The deploy gate: `logs/deploy_gate.flag` (JSON: reason, burn_2h, burn_10m, since, set_at), and
the operator's override that keeps it cleared.

The SLO tick sets the flag when the gate condition holds (see `rules`: burn > 2x over the whole
last 2h). CI calls `echoops slo gate`, which exits 1 while it is set. A hand-made flag (`touch`)
counts too.

An operator's rollback holds. Clearing the gate (`echoops slo gate --clear --reason R [--for 6h]`,
or deleting the flag echoops wrote by hand, noticed at the next tick or status read) records an
override (`slo_gate_cleared` event, `by` "command" or "file"). While it holds, the tick does not
set the gate again; it ends (`slo_gate_override_end`) when `until` passes (`--for`, default 24h)
or when the 2h burn has dropped to 2x or below and the gate condition then holds again over a
whole 2h window after that drop ("burn rose again for a full 2h").
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import orjson

from echoops.core import clock, config, files, ndjson, parsers, store
from echoops.core.config import Settings
from echoops.core.errors import EchoopsError, ValidationError
from echoops.core.slo import aggregates, rules
from echoops.core.slo.types import GateCleared, GateFlag, GateOverride, SloDocument

GATE_FLAG = "deploy_gate.flag"
BUDGET_LOG = "slo_budget.ndjson"
MAX_REASON = 500
FLAG_KEYS = ("reason", "burn_2h", "burn_10m", "since", "set_at")
OVERRIDE_DEFAULT_S = 24 * 3600  # `--for` when not given, and for a flag removed by hand
OVERRIDE_MAX_S = 7 * 86400
REARM_S = rules.WINDOWS[rules.GATE_WINDOW] * 60  # a fresh full 2h of burn after the drop
HAND_REMOVED = "deploy_gate.flag removed by hand"
_OURS = "gate_flag"  # slo_meta: set_at of the flag this tick wrote (so a hand removal is noticed)
_OURS_HOST = "gate_flag_host"  # slo_meta: the instance whose log dir holds that flag (shared stores)
_OVERRIDE = "gate_override"  # slo_meta: the operator's override, JSON


class DeployGateSet(EchoopsError):
    """The deploy gate flag is present: deploys should wait (exit 1, HTTP 409)."""

    code = "deploy_gate_set"
    status = 409
    exit_code = 1


def gate_path(s: Settings) -> Path:
    """`logs/deploy_gate.flag`."""
    return s.log_path(GATE_FLAG)


# --- the override ----------------------------------------------------------------------------


def _load_override(conn: store.Conn) -> dict[str, Any] | None:
    raw = aggregates.meta(conn, _OVERRIDE)
    if raw is None:
        return None
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    return data if isinstance(data, dict) else None


def _public_override(ov: dict[str, Any] | None) -> GateOverride | None:
    if ov is None:
        return None
    dropped = ov.get("burn_dropped_at")
    return {
        "since": clock.iso(ov["since"]),
        "by": ov["by"],
        "reason": ov["reason"],
        "until": clock.iso(ov["until"]),
        "burn_dropped_at": None if dropped is None else clock.iso(dropped),
        "ends": (
            f"at {clock.iso(ov['until'])}, or once the burn has stayed above 2x for 2h after "
            + ("it dropped at " + clock.iso(dropped) if dropped is not None else "it drops to 2x or below")
        ),
    }


def _record_override(
    conn: store.Conn, s: Settings, *, by: str, reason: str, for_s: float, now: float, before: GateFlag
) -> GateOverride:
    """Store a new override (replacing any) and log `slo_gate_cleared`; returns its public form."""
    ov = {"since": now, "by": by, "reason": reason, "until": now + for_s, "burn_dropped_at": None}
    with store.transaction(conn):
        aggregates.set_meta(conn, _OVERRIDE, orjson.dumps(ov).decode())
        aggregates.set_meta(conn, _OURS, None)
    public = cast(GateOverride, _public_override(ov))  # ov is never None here
    ndjson.append(
        s.log_path(BUDGET_LOG),
        "slo_gate_cleared",
        now=now,
        by=by,
        reason=reason,
        until=public["until"],
        cleared=before["set"],
        gate={k: before.get(k) for k in ("set", *FLAG_KEYS)},
    )
    return public


def notice_hand_removal(conn: store.Conn, s: Settings, now: float) -> bool:
    """When the flag this tick wrote is gone, an operator removed it: record the override once.
    On a store shared by several hosts only the host whose log dir holds the flag can tell."""
    if aggregates.meta(conn, _OURS) is None or gate_path(s).exists():
        return False
    if store.shared(conn) and aggregates.meta(conn, _OURS_HOST) != s.instance:
        return False
    with store.transaction(conn):  # only one process records it
        ours = aggregates.meta(conn, _OURS)
        if ours is None or gate_path(s).exists():
            return False
        aggregates.set_meta(conn, _OURS, None)
    try:
        previous = orjson.loads(ours)
    except orjson.JSONDecodeError:
        previous = {}
    before = cast(GateFlag, {"set": True, **{k: previous.get(k) for k in FLAG_KEYS}})
    _record_override(conn, s, by="file", reason=HAND_REMOVED, for_s=OVERRIDE_DEFAULT_S, now=now, before=before)
    return True


def _end_override(conn: store.Conn, s: Settings, ov: dict[str, Any], why: str, now: float) -> None:
    with store.transaction(conn):
        aggregates.set_meta(conn, _OVERRIDE, None)
    ndjson.append(s.log_path(BUDGET_LOG), "slo_gate_override_end", now=now, why=why, override=_public_override(ov))


# --- reading and clearing -----------------------------------------------------------------------


def gate(*, s: Settings | None = None, now: float | None = None) -> GateFlag:
    """The deploy gate: `{"set": bool, "reason", "burn_2h", "burn_10m", "since", "set_at", "override"}`.

    `override` is the operator's override (`{since, by, reason, until, burn_dropped_at, ends}`) or None."""
    s = s or config.settings()
    conn = aggregates.db(s)
    notice_hand_removal(conn, s, clock.now_s(now))
    flag = files.read_flag(gate_path(s))
    if flag is None and store.shared(conn):
        # several hosts on one PostgreSQL store: the flag the leader's tick set is in the
        # database too (its file is in the leader's log dir); every instance reports it
        ours = aggregates.meta(conn, _OURS)
        flag = orjson.loads(ours) if ours else None
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
        "override": _public_override(_load_override(conn)),
    }


def require_gate_open(*, s: Settings | None = None) -> GateFlag:
    """The gate when it is open; DeployGateSet (exit 1) with the reason when it is set."""
    g = gate(s=s)
    if g["set"]:
        since = f" since {g['since']}" if g.get("since") else ""
        raise DeployGateSet(f"deploy gate is set{since}: {g['reason']}")
    return g


def validate_for(value: object) -> float:
    """`--for`: a duration (`6h`, `90m`, `2d`, or seconds) from 1 minute to 7 days -> seconds."""
    if value is None:
        return float(OVERRIDE_DEFAULT_S)
    try:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = str(value)
        return parsers.duration_s(value, lo=60, hi=OVERRIDE_MAX_S)  # type: ignore[arg-type]
    except ValueError as exc:
        raise ValidationError(f"for: {exc}", field="for") from None


def clear_gate(
    reason: object, *, for_s: object = None, s: Settings | None = None, now: float | None = None
) -> GateCleared:
    """Remove the gate flag (an operator action) and keep it cleared: records an override for
    `for_s` (default 24h, see the module doc) and logs `slo_gate_cleared` with `by: "command"`.

    Returns `{"cleared": bool (a flag was there), "reason", "gate": <before>, "override"}`."""
    s = s or config.settings()
    now = clock.now_s(now)
    text = validate_reason(reason, required=True) or ""  # required: never None
    duration = validate_for(for_s)
    conn = aggregates.db(s)
    notice_hand_removal(conn, s, now)
    before = gate(s=s, now=now)
    # (on a shared store the flag may be another host's file: its record here is what clears it)
    cleared = files.clear_flag(gate_path(s)) or before["set"]
    override = _record_override(conn, s, by="command", reason=text, for_s=duration, now=now, before=before)
    from echoops.core.pager import auto_resolve  # lazy: ~20 ms that `slo gate` without --clear never needs

    incident = auto_resolve("slo:deploy_gate", by="auto:slo", note=f"deploy gate cleared: {text}", s=s, now=now)
    resolved = [incident["id"]] if incident else []
    return {"cleared": cleared, "reason": text, "gate": before, "override": override, "resolved": resolved}


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


# --- the tick's step --------------------------------------------------------------------------


def set_gate(s: Settings, doc: SloDocument, now: float) -> dict[str, Any]:
    """Write the flag from a status document whose gate condition holds; returns what was written.

    `since` is when the 2h window began: 2h before `now`, or the rebaseline when that is later."""
    w2, w10 = doc["windows"]["2h"], doc["windows"]["10m"]
    sl = doc["gate_slices"]
    since = max(now - 2 * 3600, clock.parse_ts(doc["rebaseline_at"]) or 0.0)
    info = {
        "reason": (
            f"error budget burn {w2['burn']:.2f}x over 2h (> 2x the daily budget of {s.slo_err_budget_pct:g}% for 2h: "
            f"{sl['burning']} of {rules.GATE_SLICES} 10-minute slices above 2x, {sl['thin']} too thin to judge; "
            f"last 10m {w10['burn']:.2f}x): {w2['errors']} of {w2['requests']} requests failed in 2h"
        ),
        "burn_2h": w2["burn"],
        "burn_10m": w10["burn"],
        "since": clock.iso(since),
        "set_at": clock.iso(now),
    }
    files.set_flag(gate_path(s), info)
    conn = aggregates.db(s)
    with store.transaction(conn):
        aggregates.set_meta(conn, _OURS, orjson.dumps(info).decode())
        aggregates.set_meta(conn, _OURS_HOST, s.instance)
    return info


def _follow_clear(conn: store.Conn, s: Settings) -> None:
    """Shared store: the flag this host wrote was cleared from another instance (the database's
    record is gone): remove this host's copy of it too."""
    if store.shared(conn) and aggregates.meta(conn, _OURS) is None and aggregates.meta(conn, _OURS_HOST) == s.instance:
        files.clear_flag(gate_path(s))
        with store.transaction(conn):
            aggregates.set_meta(conn, _OURS_HOST, None)


def apply(s: Settings, doc: SloDocument, now: float) -> dict[str, Any] | None:
    """The tick's gate step: notice a hand removal, age the override, set the flag when the
    condition holds and no override stands. Returns the flag written, or None."""
    conn = aggregates.db(s)
    notice_hand_removal(conn, s, now)
    _follow_clear(conn, s)
    ov = _load_override(conn)
    if ov is not None:
        if now >= ov["until"]:
            _end_override(conn, s, ov, "expired", now)
            ov = None
        elif ov.get("burn_dropped_at") is None:
            if doc["burn"][rules.GATE_WINDOW] <= rules.GATE_BURN:
                ov["burn_dropped_at"] = now
                with store.transaction(conn):
                    aggregates.set_meta(conn, _OVERRIDE, orjson.dumps(ov).decode())
        elif doc["gate_condition"] and now - REARM_S >= ov["burn_dropped_at"]:
            _end_override(conn, s, ov, "burn_rose_again", now)
            ov = None
    if ov is None and doc["gate_condition"] and not gate_path(s).exists():
        return set_gate(s, doc, now)
    return None
