"""Deciding one AI call against the caps: a pure function of the day's spend and holds, the caps,
fallbacks and prices (`admit`), and each scope's state (`state_of`). The store work around it,
reading those figures and holding the estimate in one transaction, is `reservations`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from echoops.core.costs import prices

WARN_RATIO = (9, 10)  # warn at spent * 10 >= cap * 9


def state_of(spent_p: int, cap_p: int | None) -> str:
    """A scope's state: ok < 90% <= warn < 100% <= throttle (a $0 cap is always throttle)."""
    if cap_p is None:
        return "ok"
    if spent_p >= cap_p:
        return "throttle"
    if spent_p * WARN_RATIO[1] >= cap_p * WARN_RATIO[0]:
        return "warn"
    return "ok"


@dataclass(frozen=True)
class Caps:
    """What a decision needs: caps in pico-dollars (global and per capped scope), fallbacks and
    the price table (µ$/Mtok = p$/token)."""

    daily_p: int
    scopes: dict[str, int]
    fallbacks: Mapping[str, str]
    table: Mapping[str, tuple[int, int]]

    def name(self, model: str) -> str:
        """The name spend lands under (as the log ingest files it)."""
        return prices.canonical(model, self.table)

    def scope(self, name: str) -> str:
        """The cap a canonical name spends against (its own, a group's, or itself when uncapped)."""
        return prices.cap_scope(name, self.scopes)

    def cost(self, name: str, input_tokens: int, output_tokens: int, usd_p: int | None) -> tuple[int, bool]:
        """(pico-dollars, priced?) of one call: `usd_p` when the caller knows it, else tokens x price."""
        if usd_p is not None:
            return usd_p, True
        p_in, p_out, priced = prices.price_of(name, self.table)
        return input_tokens * p_in + output_tokens * p_out, priced or not (input_tokens or output_tokens)


def _usd(pico: int) -> str:
    """Money in a reason a person reads, as everywhere else (`$1.00`, `$0.0042`)."""
    return prices.usd_text(prices.pico_to_usd(pico))


class Used:
    """Spent and held per cap scope and globally, from one transaction's reads."""

    def __init__(self, caps: Caps, spent: Mapping[str, int], held: Mapping[str, int]):
        self.spent: dict[str, int] = {}
        self.held: dict[str, int] = {}
        for source, into in ((spent, self.spent), (held, self.held)):
            for name, amount in source.items():
                scope = caps.scope(name)
                into[scope] = into.get(scope, 0) + amount
        self.spent_all = sum(spent.values())
        self.held_all = sum(held.values())

    def room(self, scope: str | None, cap: int | None, est: int) -> str | None:
        """None when `est` fits under `cap` (None: uncapped); else why not (for the reason)."""
        if cap is None:
            return None
        spent = self.spent_all if scope is None else self.spent.get(scope, 0)
        held = self.held_all if scope is None else self.held.get(scope, 0)
        if spent + held < cap and spent + held + est <= cap:
            return None
        name = "global daily AI cap" if scope is None else f"{scope} daily cap"
        if cap == 0:
            return f"{name} is $0"
        if spent >= cap:
            return f"{name} reached ({_usd(spent)} of {_usd(cap)})"
        return f"{name}: {_usd(spent)} spent + {_usd(held)} reserved + {_usd(est)} for this call > {_usd(cap)}"

    def near(self, scope: str | None, cap: int | None, est: int) -> bool:
        if not cap:
            return False
        return (self.used(scope) + est) * WARN_RATIO[1] >= cap * WARN_RATIO[0]

    def used(self, scope: str | None) -> int:
        """Spent plus held in `scope` (None: globally)."""
        if scope is None:
            return self.spent_all + self.held_all
        return self.spent.get(scope, 0) + self.held.get(scope, 0)


@dataclass(frozen=True)
class Admission:
    """What one call may do: `action` (allow/switch/throttle), the `model` to call, the canonical
    `name` its spend lands under, the `estimate_p` held and `would` (monitoring only)."""

    action: str
    model: str
    name: str
    reason: str
    estimate_p: int
    would: str | None = None


def admit(
    caps: Caps,
    model: str,
    estimate: Callable[[str], int],
    spent: Mapping[str, int],
    held: Mapping[str, int],
    enforce: bool = True,
) -> Admission:
    """The decision for one call given the day's spend and holds (a pure function).

    The global cap has no room -> throttle. The model's scope has room -> allow. Else the first
    fallback along MODEL_FALLBACKS_JSON whose scope and the global cap have room for its own
    estimate -> switch, else throttle. Monitoring only (`enforce` false): allow the requested
    model, holding its estimate, saying what enforcing would have done.
    """
    used = Used(caps, spent, held)
    decision = _enforced(caps, model, estimate, used)
    if enforce or decision.action == "allow":
        return decision
    would = decision.action + (f" to {decision.model}" if decision.action == "switch" else "")
    return Admission(
        "allow",
        model,
        caps.name(model),
        f"monitoring only (COST_ENFORCE=false): would {would}: {decision.reason}",
        estimate(model),
        decision.action,
    )


def _enforced(caps: Caps, model: str, estimate: Callable[[str], int], used: Used) -> Admission:
    name = caps.name(model)
    scope = caps.scope(name)
    est = estimate(model)
    full = used.room(None, caps.daily_p, est)
    if full:
        return Admission("throttle", model, name, full, 0)
    over = used.room(scope, caps.scopes.get(scope), est)
    if over is None:
        if used.near(scope, caps.scopes.get(scope), est):
            reason = f"{scope} near its daily cap"
        elif used.near(None, caps.daily_p, est):
            reason = "global near its daily cap"
        else:
            reason = "within caps"
        return Admission("allow", model, name, reason, est)
    fallbacks = caps.fallbacks
    seen = {model, name}
    candidate = fallbacks.get(model) or fallbacks.get(name) or fallbacks.get(scope)
    while candidate and candidate not in seen:
        seen.add(candidate)
        cand_name = caps.name(candidate)
        cand_scope = caps.scope(cand_name)
        cand_est = estimate(candidate)
        fits = used.room(cand_scope, caps.scopes.get(cand_scope), cand_est) is None
        if fits and used.room(None, caps.daily_p, cand_est) is None:
            return Admission("switch", candidate, cand_name, f"{over}; {candidate} has headroom", cand_est)
        candidate = fallbacks.get(candidate) or fallbacks.get(cand_name) or fallbacks.get(cand_scope)
    tail = "no fallback has headroom" if len(seen) > 2 or fallbacks.get(model) else "no fallback configured"
    return Admission("throttle", model, name, f"{over}; {tail}", 0)


def states(caps: Caps, spent: Mapping[str, int], names: Iterable[str]) -> tuple[str, ...]:
    """The states of the global cap and of the scopes `names` spend against, given `spent`."""
    used = Used(caps, spent, {})
    scopes = sorted({caps.scope(n) for n in names})
    out = [state_of(used.spent_all, caps.daily_p)]
    out += [state_of(used.spent.get(sc, 0), caps.scopes.get(sc)) for sc in scopes]
    return tuple(out)
