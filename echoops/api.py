"""The public Python API of echoops: what an application imports (nothing else is promised).

    from echoops.api import guard, raise_incident, slo_status, spend

Every function reads its settings from the environment (the same variables as the CLI and
the server, see the README) unless given `s=` (an `echoops.core.config.Settings`), and the
current time unless given `now=` (epoch seconds, UTC). Results are TypedDicts: the same
documents the HTTP endpoints and the `--json` options print, so a wrong key is caught by a
type checker, not at run time. Failures raise `EchoopsError` subclasses carrying `code`,
`detail` and `field` (for a bad argument); `ValidationError` names the field.

Importing this module loads every control (~0.1 s once per process); `guard` itself then
costs a few µs a call, `spend` a fraction of a millisecond (two store transactions).
"""

from __future__ import annotations

from typing import TypeVar, cast

from echoops.core.config import Settings
from echoops.core.costs import CostThrottled, Spend, guard, record_usage, spend
from echoops.core.costs import guard_openai as _guard_openai
from echoops.core.costs import status as _costs_status
from echoops.core.costs.clients.openai import DEFAULT_OUTPUT_TOKENS
from echoops.core.costs.types import Calls, CostsStatus, Decision, Recorded, Reservation, Scope, StripeFees
from echoops.core.errors import EchoopsError, Forbidden, NotConfigured, NotFound, ValidationError
from echoops.core.pager import raise_incident
from echoops.core.pager import resolve as _resolve
from echoops.core.pager.types import IncidentAction, Raised
from echoops.core.portal import receipts
from echoops.core.portal.types import Purchase, Receipts
from echoops.core.scale import status as _scale_status
from echoops.core.scale.types import ScaleStatus
from echoops.core.slo import status as _slo_status
from echoops.core.slo.types import SloStatus

__all__ = [
    "Calls",
    "CostThrottled",
    "CostsStatus",
    "Decision",
    "EchoopsError",
    "Forbidden",
    "IncidentAction",
    "NotConfigured",
    "NotFound",
    "Purchase",
    "Raised",
    "Receipts",
    "Recorded",
    "Reservation",
    "ScaleStatus",
    "Scope",
    "Settings",
    "SloStatus",
    "Spend",
    "StripeFees",
    "ValidationError",
    "costs_status",
    "guard",
    "guard_openai",
    "raise_incident",
    "receipts",
    "record_usage",
    "resolve_incident",
    "scale_status",
    "slo_status",
    "spend",
]

_Client = TypeVar("_Client")


def guard_openai(
    client: _Client,
    *,
    default_output_tokens: int = DEFAULT_OUTPUT_TOKENS,
    ttl_s: float | None = None,
    s: Settings | None = None,
) -> _Client:
    """Wrap an `openai.OpenAI` client (extra `echoops[openai]`): `chat.completions.create/parse`
    and `responses.create/parse` reserve an estimate first (prompt characters / 4 plus the
    output limit, see the README), call the fallback model on `switch`, raise `CostThrottled`
    (with `retry_after_s`) on `throttle`, and settle from the response's `usage`, streamed
    responses when the stream ends; a call that raises releases its hold. Typed as the client
    it wraps: it answers the same calls (everything else passes through unguarded)."""
    guarded = _guard_openai(client, default_output_tokens=default_output_tokens, ttl_s=ttl_s, s=s)
    return cast(_Client, guarded)


def slo_status(*, s: Settings | None = None, now: float | None = None) -> SloStatus:
    """The SLO status as of the last `echoops slo tick`: state (green/yellow/red) and reasons,
    p95/p99 latency (ms), error rate, burn per window, remaining error budget (%) and the deploy
    gate (read live). The body of `GET /api/slo/status`."""
    return _slo_status(s=s, now=now)


def costs_status(*, s: Settings | None = None, now: float | None = None) -> CostsStatus:
    """Today's AI spend (USD, UTC day) against the global and per-model caps, with utilisation,
    state (ok/warn/throttle), a forecast to midnight, and Stripe fees. The body of
    `GET /api/costs/status`."""
    return _costs_status(s=s, now=now)


def scale_status(*, s: Settings | None = None, now: float | None = None) -> ScaleStatus:
    """The autoscaler's decision for now (not recorded): desired vs actual workers and why, the
    forecast, cooldown, deploy gate and recent decisions. The body of `GET /api/scale/status`."""
    return _scale_status(s=s, now=now)


def resolve_incident(
    id_or_fingerprint: str,
    *,
    by: str = "api",
    note: str | None = None,
    s: Settings | None = None,
    now: float | None = None,
) -> IncidentAction:
    """Resolve an incident your app raised, by its id or fingerprint, once the problem is over:
    one RESOLVED notice (the message, how long it lasted, `note`) goes to each channel that got
    its page, and the fingerprint's next raise pages again at once. A repeat changes nothing
    (`changed: false`); `NotFound` for an unknown id/fingerprint. The body of
    `POST /api/incidents/resolve`."""
    return _resolve(id_or_fingerprint, by=by, note=note, s=s, now=now)
