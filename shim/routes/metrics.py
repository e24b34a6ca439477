"""GET /metrics: the Prometheus exposition of every control's state (parse, one core call, return).

It needs the dashboard key like every admin route: `Authorization: Bearer $DASHBOARD_KEY` (what
Prometheus' `authorization` scrape setting sends) or `X-Dash-Key`; `shim/app.py` lists this
path in KEYED, outside /api.
"""

from __future__ import annotations

from bottle import HTTPResponse, request

from echoops.core import metrics

# Paths outside /api that the auth hook guards with the dashboard key.
KEYED = ("/metrics",)
# A read of the state is reused this long per worker (as /healthz reuses its probe): a scrape
# every 15 s always reads afresh, a burst of requests costs one read a second.
READ_MAX_AGE_S = 1.0


def metrics_route() -> HTTPResponse:
    body, content_type = metrics.exposition(request.get_header("Accept"), max_age_s=READ_MAX_AGE_S)
    return HTTPResponse(body, status=200, headers={"Content-Type": content_type, "Cache-Control": "no-store"})


def install(app) -> None:
    app.route("/metrics", "GET", metrics_route)
