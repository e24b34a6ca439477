"""The public Python API of echoops: what an application imports (nothing else is promised).

    from echoops.api import guard, raise_incident, slo_status

Every function reads its settings from the environment (the same variables as the CLI and
the server, see the README) unless given `s=` (an `echoops.core.config.Settings`), and the
current time unless given `now=` (epoch seconds, UTC). Results are TypedDicts: the same
documents the HTTP endpoints and the `--json` options print, so a wrong key is caught by a
type checker, not at run time. Failures raise `EchoopsError` subclasses carrying `code`,
`detail` and `field` (for a bad argument); `ValidationError` names the field.

Importing this module loads every control (~0.1 s once per process); `guard` itself then
costs a few µs a call.
"""

from __future__ import annotations

from echoops.core.config import Settings
from echoops.core.costs import guard
from echoops.core.costs import status as _costs_status
from echoops.core.costs.types import CostsStatus, Decision, Scope, StripeFees
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
    "ScaleStatus",
    "Scope",
    "Settings",
    "SloStatus",
    "StripeFees",
    "ValidationError",
    "costs_status",
    "guard",
    "raise_incident",
    "receipts",
    "resolve_incident",
    "scale_status",
    "slo_status",
]


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
