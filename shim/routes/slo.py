"""GET /api/slo/status and POST /api/slo/rebaseline (parse, one core call, return).

The status is served from the snapshot computed when its state last changed (a tick, the
gate's override, the flag file), with an ETag and Last-Modified; a conditional request for the
same document gets 304.
"""

from __future__ import annotations

from echoops.core import slo
from echoops.core.slo.types import Rebaselined
from shim.http import conditional, json_body, settings


def slo_status() -> bytes:
    snap = slo.status_snapshot(s=settings())
    return conditional(snap.body, snap.etag, snap.modified)


def slo_rebaseline() -> Rebaselined:
    body = json_body(required=False)
    return slo.rebaseline(body.get("reason"))


def install(app) -> None:
    app.route("/api/slo/status", "GET", slo_status)
    app.route("/api/slo/rebaseline", "POST", slo_rebaseline)
