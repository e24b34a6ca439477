"""Routes of the scale feature: status and apply (X-Dash-Key, like every /api route)."""

from __future__ import annotations

from echoops.core import scale
from echoops.core.files import dumps
from echoops.core.scale.types import ScaleApplied
from shim.http import conditional, etag_of, json_body


def install(app) -> None:
    @app.get("/api/scale/status")
    def scale_status() -> bytes:
        # decided for now (cooldown and forecast move with the clock); an unchanged body answers 304
        body = dumps(scale.status())
        return conditional(body, etag_of(body))

    @app.post("/api/scale/apply")
    def scale_apply() -> ScaleApplied:
        return scale.apply(scale.apply_options(json_body(required=False)))
