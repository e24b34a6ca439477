"""Routes of the costs feature: status, set-cap, the guard decision and per-call enforcement
(reserve, usage, release), all behind X-Dash-Key like every /api route.

Nothing here (or in the shim's auth) throttles a request: cost state only shapes the answers
of /api/costs/check and /api/costs/reserve, which the app asks before an AI call.
"""

from __future__ import annotations

from echoops.core import costs
from echoops.core.costs.types import CapSet, Decision, Recorded, Released, Reservation
from echoops.core.files import dumps
from shim.http import conditional, etag_of, json_body, query


def install(app) -> None:
    @app.get("/api/costs/status")
    def costs_status() -> bytes:
        # computed for now (the forecast moves with the clock); an unchanged body answers 304
        body = dumps(costs.status())
        return conditional(body, etag_of(body))

    @app.post("/api/costs/set-cap")
    def costs_set_cap() -> CapSet:
        body = json_body()
        return costs.set_cap(body.get("scope"), body.get("key"), body.get("usd_cap"))

    @app.get("/api/costs/check")
    def costs_check() -> Decision:
        return costs.check(query("model"))

    @app.post("/api/costs/reserve")
    def costs_reserve() -> Reservation:
        return costs.reserve_request(json_body())

    @app.post("/api/costs/usage")
    def costs_usage() -> Recorded:
        return costs.usage_request(json_body())

    @app.post("/api/costs/release")
    def costs_release() -> Released:
        return costs.release_request(json_body())
