"""The live decision in front of every AI call: allow, switch to a cheaper model, or throttle.

`guard(model)` reads `logs/cost_state.json` (written atomically by `costs tick` and
`set-cap`) and caches the parsed decisions in memory, keyed by the file's identity
(inode, mtime, size) and the UTC day. A call costs one stat() and a dict lookup, so it can
sit in front of every AI call (p99 well under 50 µs). When the UTC day rolls over the cached
spend no longer applies: decisions reset to "nothing spent yet" (caps of 0 stay closed).

The same `decide()` builds the decisions written into cost_state.json, so the file, the CLI,
the endpoint and in-process callers always agree. Monitoring-only mode (COST_ENFORCE=false,
written into the file as `enforce: false`, or set in the calling process's environment) turns
every decision into `allow`, with the reason saying what enforcing would have done.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from echoops.core import clock, config
from echoops.core.config import Settings
from echoops.core.costs import prices

if TYPE_CHECKING:  # annotations only (see caps.py)
    from echoops.core.costs.types import Decision, Verdict

STATE_FILE = "cost_state.json"
DAY_S = 86400


def known_models(doc: dict[str, Any]) -> set[str]:
    """Model names a dated snapshot name may resolve to: built-in prices, caps, fallbacks, spend."""
    known = set(prices.BUILTIN)
    known.update(doc.get("caps", {}).get("models", {}))
    known.update(doc.get("fallbacks", {}))
    known.update(doc.get("models", {}))
    return known


def _throttle(model: str, reason: str) -> Verdict:
    return {"action": "throttle", "model": model, "reason": reason}


def _over(entry: dict[str, Any] | None) -> bool:
    return entry is not None and entry.get("state") == "throttle"


def decide(model: str, doc: dict[str, Any], known: set[str] | None = None) -> Verdict:
    """Decision for one AI call on `model` given a state document (the cost_state.json shape).

    Global cap hit -> throttle. The model's cap (own or group) hit -> first fallback along
    MODEL_FALLBACKS_JSON whose cap still has headroom (switch), else throttle. Otherwise allow.
    In monitoring-only mode (`enforce` false) the action is always allow (see `monitored`).
    Returns `{action, model, reason}` (retry_after_s is added per call by `guard`).
    """
    decision = _enforced(model, doc, known)
    return decision if doc.get("enforce", True) else monitored(model, decision)


def monitored(model: str, decision: Verdict) -> Verdict:
    """The monitoring-only form of a decision: allow `model`, saying what enforcing would have done."""
    if decision["action"] == "allow":
        return decision
    would = decision["action"] + (f" to {decision['model']}" if decision["action"] == "switch" else "")
    return {
        "action": "allow",
        "model": model,
        "reason": f"monitoring only (COST_ENFORCE=false): would {would}: {decision['reason']}",
        "would": decision["action"],
    }


def _enforced(model: str, doc: dict[str, Any], known: set[str] | None) -> Verdict:
    known = known_models(doc) if known is None else known
    name = prices.canonical(model, known)
    glob = doc["global"]
    if glob.get("state") == "throttle":
        return _throttle(model, f"global daily AI cap reached ({_usage(glob)})")
    scopes: dict[str, Any] = doc.get("models", {})
    cap_keys = doc.get("caps", {}).get("models", {})
    fallbacks: dict[str, str] = doc.get("fallbacks", {})
    scope = prices.cap_scope(name, cap_keys)
    entry = scopes.get(scope)
    if entry is None or not _over(entry):
        if entry is not None and entry.get("state") == "warn":
            reason = f"{scope} near its daily cap ({_usage(entry)})"
        elif glob.get("state") == "warn":
            reason = f"global near its daily cap ({_usage(glob)})"
        else:
            reason = "within caps"
        return {"action": "allow", "model": model, "reason": reason}
    seen = {model, name}
    candidate = fallbacks.get(model) or fallbacks.get(name) or fallbacks.get(scope)
    while candidate and candidate not in seen:
        seen.add(candidate)
        cand_name = prices.canonical(candidate, known)
        cand_scope = prices.cap_scope(cand_name, cap_keys)
        if not _over(scopes.get(cand_scope)):
            return {
                "action": "switch",
                "model": candidate,
                "reason": f"{scope} daily cap reached ({_usage(entry)}); {candidate} has headroom",
            }
        candidate = fallbacks.get(candidate) or fallbacks.get(cand_name) or fallbacks.get(cand_scope)
    tail = "no fallback has headroom" if len(seen) > 2 or fallbacks.get(model) else "no fallback configured"
    return _throttle(model, f"{scope} daily cap reached ({_usage(entry)}); {tail}")


def _usage(entry: dict[str, Any]) -> str:
    cap = entry.get("cap_usd")
    spent = entry.get("spent_usd", 0)
    if cap is None:
        return f"{prices.usd_text(spent)} spent, no cap"
    if not cap:
        return "cap is $0"
    return f"{prices.usd_text(spent)} of {prices.usd_text(cap)}"


def reset_for_new_day(doc: dict[str, Any], day: str) -> dict[str, Any]:
    """The document as it stands at the start of `day`: caps kept, nothing spent yet."""

    def fresh(entry: dict[str, Any]) -> dict[str, Any]:
        cap = entry.get("cap_usd")
        state = "throttle" if cap == 0 else "ok"
        return {**entry, "spent_usd": 0.0, "pct": 0.0 if cap else None, "state": state}

    return {
        **doc,
        "day": day,
        "global": fresh(doc.get("global", {})),
        "models": {k: fresh(v) for k, v in doc.get("models", {}).items()},
        "decisions": {},
    }


def empty_doc(day: str) -> dict[str, Any]:
    """What guard assumes before the first tick ever wrote a state file: no spend, no caps known."""
    return {"day": day, "global": {"state": "ok"}, "models": {}, "caps": {"models": {}}, "fallbacks": {}}


def seconds_to_midnight(now: float) -> int:
    """Whole seconds until the next UTC midnight (at least 1)."""
    return max(1, int(-(-(DAY_S - now % DAY_S) // 1)))


# Two writes inside the file system's timestamp granularity (a few ms), with the freed inode
# number reused and the same size, would look unchanged; so a file younger than this is
# re-read on every call (git's "racy clean" rule). It costs nothing once the file settles.
RACY_S = 0.02
MEMO_MAX = 4096  # distinct model names remembered per state version (junk names are decided, not kept)

# (key, decisions memo, document, known model names): replaced as one tuple so a thread never
# sees a new key with an old memo.
_cache: tuple[tuple | None, dict[str, Verdict], dict[str, Any], set[str]] = (None, {}, {}, set())
# config.settings() re-reads ~50 env vars (tens of µs); guard only needs the log dir, so it
# asks config again only when ECHOOPS_LOG_DIR itself changes.
_settings_memo: tuple[str | None, Path] | None = None


# The state file of the last Settings object passed in (spend() passes one on every call).
_given_memo: tuple[Settings, Path] | None = None


def _state_path(s: Settings | None) -> Path:
    global _settings_memo, _given_memo
    if s is not None:
        given = _given_memo
        if given is None or given[0] is not s:
            given = _given_memo = (s, s.log_path(STATE_FILE))
        return given[1]
    raw = os.environ.get("ECHOOPS_LOG_DIR")
    memo = _settings_memo
    if memo is None or memo[0] != raw:
        memo = _settings_memo = (raw, config.settings().log_path(STATE_FILE))
    return memo[1]


def _well_formed(doc: object) -> bool:
    """A state file someone edited by hand into another shape counts as absent (nothing spent)."""
    if not isinstance(doc, dict) or not isinstance(doc.get("global"), dict):
        return False
    caps = doc.get("caps", {})
    return (
        isinstance(doc.get("models", {}), dict)
        and all(isinstance(v, dict) for v in doc.get("models", {}).values())
        and isinstance(caps, dict)
        and isinstance(caps.get("models", {}), dict)
        and isinstance(doc.get("fallbacks", {}), dict)
        and isinstance(doc.get("decisions", {}), dict)
    )


def _load(path: Path, key: tuple, dayno: int) -> tuple:
    global _cache
    day = clock.day_iso(dayno * DAY_S)
    try:
        doc = orjson.loads(path.read_bytes())
        if not _well_formed(doc):
            doc = empty_doc(day)
    except (FileNotFoundError, orjson.JSONDecodeError, IsADirectoryError):
        doc = empty_doc(day)
    memo: dict[str, Verdict] = {}
    if doc.get("day") != day:
        doc = reset_for_new_day(doc, day)
    else:
        memo.update(doc.get("decisions") or {})
    _cache = (key, memo, doc, known_models(doc))
    return _cache


def _current(s: Settings | None, t: float) -> tuple:
    """The cached (key, memo, document, known names) of the state file as it is now."""
    path = _state_path(s)
    dayno = int(t // DAY_S)
    key: tuple[object, ...]
    try:
        st = os.stat(path)
        key = (path, st.st_ino, st.st_mtime_ns, st.st_size, dayno)
        if time.time() - st.st_mtime < RACY_S:
            key += (object(),)  # never equal: reload
    except OSError:
        key = (path, None, None, None, dayno)
    cache = _cache
    if key != cache[0]:
        cache = _load(path, key, dayno)
    return cache


def published(*, s: Settings | None = None, now: float | None = None) -> dict[str, Any] | None:
    """The document the last tick or cap change wrote to cost_state.json (cached, as guard reads
    it), or None before any was written."""
    doc = _current(s, time.time() if now is None else now)[2]
    return doc if "version" in doc else None


def enforcing(*, s: Settings | None = None, now: float | None = None) -> bool:
    """False in monitoring-only mode: COST_ENFORCE=false in this process's environment, or in
    cost_state.json (written by the tick from the scheduler's environment), as guard() decides."""
    if _monitor_env(s):
        return False
    return bool(_current(s, time.time() if now is None else now)[2].get("enforce", True))


def guard(model: str, *, s: Settings | None = None, now: float | None = None) -> Decision:
    """Decision for one AI call: `{action: allow|switch|throttle, model, reason, retry_after_s}`.

    `model` is what the caller wants; on `switch`, `model` is the one to call instead. When
    throttled, `retry_after_s` counts the seconds to the next UTC midnight (0 otherwise).
    """
    monitor = _monitor_env(s)
    t = time.time() if now is None else now
    cache = _current(s, t)
    memo = cache[1]
    decision = memo.get(model)
    if decision is None:
        decision = decide(model, cache[2], cache[3])
        if len(memo) < MEMO_MAX:
            memo[model] = decision
    verdict = monitored(model, decision) if monitor else decision
    return {**verdict, "retry_after_s": seconds_to_midnight(t) if verdict["action"] == "throttle" else 0}


def _monitor_env(s: Settings | None) -> bool:
    """COST_ENFORCE=false in this process's environment: monitoring only at once, before the next
    tick writes the mode into cost_state.json for every other reader."""
    if s is not None:
        return not s.cost_enforce
    raw = os.environ.get("COST_ENFORCE")
    return raw is not None and raw.strip().lower() in ("0", "false", "no", "off")
