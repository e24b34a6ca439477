"""Per-call cost enforcement: `spend()` around an AI call, `record_usage()` after one, and the
bodies of `POST /api/costs/reserve|usage|release` (the store work is in `reservations`).

How it fits with the rest of the guardrails:
- `guard()` stays the cheap hint (cost_state.json, cached, a few µs). `spend()` is the
  enforcement: it decides inside a store transaction against spend and holds as they are. A
  record or settle that moves a scope across 90% or 100% of its cap (or back) rewrites
  cost_state.json before it returns (`caps.republish`), so every process's next guard() sees it.
- Monitoring only (COST_ENFORCE=false here or in cost_state.json): every call is allowed, and
  is still held and settled, so spend stays true; `would` says what enforcing would have done.
- `switch`: the fallback's own estimate is held against the fallback's cap and the global cap.
- Leaving `with spend(...)` without `record()` settles at the estimate: the call presumably
  happened and its cost is unknown, and counting what was held keeps the guarantee. Leaving
  it on an exception releases the hold: the exception is almost always the call failing, which
  providers do not bill (call `record()` as soon as the call returns).
- Whose configuration: the published one. An app process calling `spend()` needs only
  ECHOOPS_LOG_DIR: caps are the environment's as the server, scheduler or CLI last noted them in
  the store (plus API caps), fallbacks, prices and the mode come from cost_state.json
  (`published_settings`), as for guard(). This process's own COST_* and MODEL_* variables
  count only before anything was published, and are never noted (COST_ENFORCE=false in it
  still means monitoring only, for its own calls).
- A reservation nobody settles (a killed process, an HTTP client that never came back) is
  settled at its estimate by the first tick after COST_RESERVATION_TTL_S (600 s by default,
  the OpenAI client's own request timeout); a settle that comes later still corrects it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import ROUND_HALF_EVEN, Decimal
from typing import TYPE_CHECKING, Any

from echoops.core import clock, config
from echoops.core.config import Settings
from echoops.core.costs import admission, caps, prices, reservations
from echoops.core.costs.cap_sources import model_name
from echoops.core.costs.guardrail import enforcing, guard, published, seconds_to_midnight
from echoops.core.costs.ingest import MAX_TOKENS, MAX_USD
from echoops.core.errors import Conflict, EchoopsError, ValidationError

if TYPE_CHECKING:  # annotations only
    from echoops.core.costs.types import Recorded, Released, Reservation

MAX_TTL_S = 86400


class CostThrottled(EchoopsError):
    """An AI call refused by the cost caps: `retry_after_s` is the wait until UTC midnight."""

    code = "cost_throttled"
    status = 429
    exit_code = 1

    def __init__(self, detail: str, *, model: str, retry_after_s: int):
        super().__init__(detail)
        self.model = model
        self.retry_after_s = retry_after_s


# --- validation at the edge ---------------------------------------------------------------------


def _tokens(value: object, field: str) -> int:
    if value is None:
        return 0
    if type(value) is float and value.is_integer():
        value = int(value)
    if type(value) is not int or not 0 <= value <= MAX_TOKENS:
        raise ValidationError(f"{field} must be a whole number of tokens from 0 to {MAX_TOKENS}", field=field)
    return value


def usd_pico(value: object, field: str) -> int:
    """A USD amount from outside -> exact pico-dollars (its decimal text, half-even);
    ValidationError naming `field` when missing, negative, not finite or over $1M."""
    if value is None:
        raise ValidationError(f"{field} is required (USD, a finite number >= 0)", field=field)
    try:
        number = config.check_number(value, hi=MAX_USD)
    except ValueError as exc:
        raise ValidationError(f"{field} {exc}", field=field) from None
    if isinstance(value, str):
        return int((Decimal(value.strip()) * prices.PICO_PER_USD).to_integral_value(ROUND_HALF_EVEN))
    return prices.usd_to_pico(number)


def _amount(input_tokens: object, output_tokens: object, usd: object) -> tuple[int, int, int | None]:
    tin = _tokens(input_tokens, "input_tokens")
    tout = _tokens(output_tokens, "output_tokens")
    return tin, tout, None if usd is None else usd_pico(usd, "usd")


def _ttl(value: object) -> float:
    try:
        return config.check_number(value, hi=MAX_TTL_S, lo_open=True)
    except ValueError as exc:
        raise ValidationError(f"ttl_s {exc}", field="ttl_s") from None


def _reservation_id(value: object) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > 200 or not value.isprintable():
        raise ValidationError("reservation must be the token POST /api/costs/reserve returned", field="reservation")
    return value.strip()


# --- whose configuration ----------------------------------------------------------------------

# (this process's settings, the published document, the settings made from both)
_published_memo: tuple[Settings, dict[str, Any], Settings] | None = None


def published_settings(s: Settings, now: float) -> Settings:
    """`s` with the fallbacks, prices, mode and Stripe fee cap cost_state.json was last written
    with (the server's and scheduler's), or `s` itself before anything was published."""
    global _published_memo
    doc = published(s=s, now=now)
    if doc is None:
        return s
    memo = _published_memo
    if memo is not None and memo[0] is s and memo[1] is doc:
        return memo[2]
    fees: dict[str, Any] = doc["stripe_fees"] if isinstance(doc.get("stripe_fees"), dict) else {}
    merged = dataclasses.replace(
        s,
        model_fallbacks={str(k): str(v) for k, v in doc.get("fallbacks", {}).items()},
        model_prices=doc["prices"] if isinstance(doc.get("prices"), dict) else s.model_prices,
        cost_enforce=bool(doc.get("enforce", s.cost_enforce)),
        stripe_fees_cap_usd=fees.get("cap_usd") if isinstance(fees.get("cap_usd"), (int, float)) else None,
    )
    _published_memo = (s, doc, merged)
    return merged


# --- recording ----------------------------------------------------------------------------------


def _counted(counted: reservations.Counted, model: str, s: Settings, now: float) -> Recorded:
    if counted.changed and counted.day == clock.day_iso(now):
        caps.republish(s=published_settings(s, now), now=now)
    return {"recorded_usd": counted.cost_p / prices.PICO_PER_USD, "decision": guard(model, s=s, now=now)}


def record_usage(
    model: str,
    *,
    input_tokens: int = 0,
    output_tokens: int = 0,
    usd: float | None = None,
    ts: float | str | None = None,
    s: Settings | None = None,
    now: float | None = None,
) -> Recorded:
    """Count one AI call made without a reservation (tokens priced as the log ingest prices them,
    or `usd`) against its UTC day's caps at once; returns `{recorded_usd, decision}`, the
    decision being the guard's for the next call on `model`. `ts` (epoch s or ISO-8601, default
    now) picks the day."""
    s = s or config.settings()
    t = clock.now_s(now)
    name = model_name(model, "model")
    tin, tout, usd_p = _amount(input_tokens, output_tokens, usd)
    when = t if ts is None else clock.parse_ts(ts)
    if when is None:
        raise ValidationError("ts must be epoch seconds or an ISO-8601 time", field="ts")
    cfg = published_settings(s, t)
    counted = reservations.record(caps.db(s), cfg, name, tin, tout, usd_p, day=clock.day_iso(when), now=t)
    return _counted(counted, name, s, t)


def settle(
    reservation: str,
    *,
    model: str | None = None,
    input_tokens: int = 0,
    output_tokens: int = 0,
    usd: float | None = None,
    s: Settings | None = None,
    now: float | None = None,
) -> Recorded:
    """Close a reservation at the call's actual cost (tokens or `usd`), under `model` (default: the
    model reserved). NotFound when the token is unknown or no longer open (settled or released:
    a retried settle counts nothing twice)."""
    s = s or config.settings()
    t = clock.now_s(now)
    call_id = _reservation_id(reservation)
    name = None if model is None else model_name(model, "model")
    tin, tout, usd_p = _amount(input_tokens, output_tokens, usd)
    cfg = published_settings(s, t)
    counted = reservations.settle(
        caps.db(s), cfg, call_id, model=name, input_tokens=tin, output_tokens=tout, usd_p=usd_p, now=t
    )
    return _counted(counted, counted.name, s, t)


def release(reservation: str, *, s: Settings | None = None, now: float | None = None) -> Released:
    """Close a reservation counting nothing (the call failed). NotFound as `settle`."""
    s = s or config.settings()
    t = clock.now_s(now)
    call_id = _reservation_id(reservation)
    counted = reservations.release(caps.db(s), published_settings(s, t), call_id)
    if counted.changed and counted.day == clock.day_iso(t):
        caps.republish(s=published_settings(s, t), now=t)
    return {"reservation": call_id, "released": True}


# --- reserving ----------------------------------------------------------------------------------


class Spend:
    """One AI call's reservation, from `spend()`: what to do (`action`, `model`, `reason`) and how
    to settle it (`record()` at the actual cost, `release()` when the call failed)."""

    def __init__(self, held: reservations.Held, *, s: Settings, now: float | None, t: float):
        adm = held.admission
        self.action: str = adm.action
        self.model: str = adm.model
        self.reason: str = adm.reason
        self.reservation: str | None = held.id
        self.estimate_usd: float = adm.estimate_p / prices.PICO_PER_USD
        self.expires_at: str | None = None if held.expires_at is None else clock.iso(held.expires_at)
        self.retry_after_s: int = seconds_to_midnight(t) if adm.action == "throttle" else 0
        self.would: str | None = adm.would
        self.recorded: Recorded | None = None
        self._closed = False  # released
        self._s = s
        self._now = now  # a test's fixed clock carries over to the settle

    def __repr__(self) -> str:
        return f"<Spend {self.action} {self.model} {self.reservation or '(nothing reserved)'}>"

    @property
    def open(self) -> bool:
        """True while the reservation holds its estimate (not yet recorded, released or settled)."""
        return self.reservation is not None and self.recorded is None and not self._closed

    def document(self) -> Reservation:
        """The `POST /api/costs/reserve` body for this reservation."""
        doc: Reservation = {
            "reservation": self.reservation,
            "action": self.action,
            "model": self.model,
            "reason": self.reason,
            "estimate_usd": self.estimate_usd,
            "expires_at": self.expires_at,
            "retry_after_s": self.retry_after_s,
        }
        if self.would:
            doc["would"] = self.would
        return doc

    def _check_open(self) -> str:
        if self.action == "throttle" or self.reservation is None:
            raise CostThrottled(
                f"nothing to settle: the call was throttled ({self.reason}); use record_usage() if it was made anyway",
                model=self.model,
                retry_after_s=self.retry_after_s,
            )
        if not self.open:
            raise Conflict(f"reservation {self.reservation} is already closed", field="reservation")
        return self.reservation

    def record(self, *, input_tokens: int = 0, output_tokens: int = 0, usd: float | None = None) -> Recorded:
        """Settle at the call's actual cost: tokens (priced like the log ingest) or `usd`.
        Returns `{recorded_usd, decision}`; CostThrottled when the call was throttled (nothing
        held), Conflict when already settled."""
        call_id = self._check_open()
        self.recorded = settle(
            call_id, input_tokens=input_tokens, output_tokens=output_tokens, usd=usd, s=self._s, now=self._now
        )
        return self.recorded

    def settle_at_estimate(self) -> Recorded | None:
        """Settle at what was held (leaving `spend()` without `record()`); None when nothing is open."""
        if not self.open:
            return None
        assert self.reservation is not None
        s, t = self._s, clock.now_s(self._now)
        counted = reservations.settle(
            caps.db(s),
            published_settings(s, t),
            self.reservation,
            model=None,
            input_tokens=0,
            output_tokens=0,
            usd_p=None,
            at_estimate=True,
            now=t,
        )
        self.recorded = _counted(counted, counted.name, s, t)
        return self.recorded

    def release(self) -> None:
        """Give the hold back, counting nothing (the call failed); a no-op when nothing is open."""
        if self.open:
            assert self.reservation is not None
            release(self.reservation, s=self._s, now=self._now)
            self._closed = True


def reserve(
    model: str,
    *,
    estimate_usd: object = None,
    estimate_tokens: tuple[int, int] | None = None,
    ttl_s: object = None,
    source: str = "python",
    s: Settings | None = None,
    now: float | None = None,
) -> Spend:
    """Decide one AI call and hold its estimate against every cap it spends against (the model's
    scope and global), in one store transaction. `estimate_usd`, or `estimate_tokens` (input,
    output) priced for whichever model is chosen. Settle with `record()` or `release()`."""
    s = s or config.settings()
    t = clock.now_s(now)
    name = model_name(model, "model")
    ttl = s.cost_reservation_ttl_s if ttl_s is None else _ttl(ttl_s)
    estimate: Callable[[admission.Caps, str], int]
    if estimate_tokens is not None:
        tin, tout = _tokens(estimate_tokens[0], "input_tokens"), _tokens(estimate_tokens[1], "output_tokens")

        def estimate(limits: admission.Caps, m: str) -> int:
            return limits.cost(limits.name(m), tin, tout, None)[0]

    else:
        fixed = usd_pico(estimate_usd, "estimate_usd")

        def estimate(_limits: admission.Caps, _model: str) -> int:
            return fixed

    cfg = published_settings(s, t)
    held = reservations.reserve(
        caps.db(s), cfg, name, estimate, enforce=enforcing(s=s, now=t), now=t, ttl_s=ttl, source=source
    )
    return Spend(held, s=s, now=now, t=t)


@contextmanager
def spend(
    model: str, *, estimate_usd: float, ttl_s: float | None = None, s: Settings | None = None, now: float | None = None
) -> Iterator[Spend]:
    """Reserve `estimate_usd` for one AI call on `model` and yield the `Spend` (action, model to
    call, reason, record()). Leaving without record() settles at the estimate; leaving on an
    exception releases the hold (see the module doc). Nothing is held when throttled."""
    held = reserve(model, estimate_usd=estimate_usd, ttl_s=ttl_s, s=s, now=now)
    try:
        yield held
    except BaseException:
        try:
            held.release()
        except Exception:  # the store failed too: the tick settles the hold at its estimate after its TTL
            pass
        raise
    held.settle_at_estimate()


# --- HTTP bodies --------------------------------------------------------------------------------


def _only(body: dict[str, Any], allowed: set[str]) -> None:
    extra = sorted(set(body) - allowed)
    if extra:
        raise ValidationError(f"unknown field {extra[0]!r} (allowed: {', '.join(sorted(allowed))})", field=extra[0])


def usage_request(body: dict[str, Any], *, s: Settings | None = None, now: float | None = None) -> Recorded:
    """`POST /api/costs/usage` (and `costs record`): record one call, or settle the `reservation` it held."""
    _only(body, {"model", "input_tokens", "output_tokens", "usd", "reservation", "ts"})
    model = model_name(body.get("model"), "model")
    tin, tout, usd = body.get("input_tokens"), body.get("output_tokens"), body.get("usd")
    if tin is None and tout is None and usd is None:
        raise ValidationError("usd or input_tokens/output_tokens is required", field="usd")
    tin, tout = 0 if tin is None else tin, 0 if tout is None else tout
    reservation = body.get("reservation")
    if reservation is None:
        return record_usage(model, input_tokens=tin, output_tokens=tout, usd=usd, ts=body.get("ts"), s=s, now=now)
    if body.get("ts") is not None:
        raise ValidationError("ts is not allowed with reservation (it counts on its reservation's day)", field="ts")
    return settle(reservation, model=model, input_tokens=tin, output_tokens=tout, usd=usd, s=s, now=now)


def reserve_request(body: dict[str, Any]) -> Reservation:
    """`POST /api/costs/reserve`: decide one call and hold `estimate_usd` (for `ttl_s`)."""
    _only(body, {"model", "estimate_usd", "ttl_s"})
    held = reserve(
        model_name(body.get("model"), "model"),
        estimate_usd=body.get("estimate_usd"),
        ttl_s=body.get("ttl_s"),
        source="http",
    )
    return held.document()


def release_request(body: dict[str, Any]) -> Released:
    """`POST /api/costs/release`: give a reservation's hold back (the call failed)."""
    _only(body, {"reservation"})
    return release(_reservation_id(body.get("reservation")))
