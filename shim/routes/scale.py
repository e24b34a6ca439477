"""Routes of the scale feature: status and apply (X-Dash-Key, like every /api route)."""

from __future__ import annotations

from echoops.core import scale
from echoops.core.scale.types import ScaleApplied, ScaleStatus
from shim.http import json_body


def install(app) -> None:
    @app.get("/api/scale/status")
    def scale_status() -> ScaleStatus:
        return scale.status()

    @app.post("/api/scale/apply")
    def scale_apply() -> ScaleApplied:
        return scale.apply(scale.apply_options(json_body(required=False)))
