"""GET /api/slo/status and POST /api/slo/rebaseline (parse, one core call, return)."""

from __future__ import annotations

from echoops.core import slo
from echoops.core.slo.types import Rebaselined, SloStatus
from shim.http import json_body


def slo_status() -> SloStatus:
    return slo.status()


def slo_rebaseline() -> Rebaselined:
    body = json_body(required=False)
    return slo.rebaseline(body.get("reason"))


def install(app) -> None:
    app.route("/api/slo/status", "GET", slo_status)
    app.route("/api/slo/rebaseline", "POST", slo_rebaseline)
