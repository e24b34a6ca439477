"""The Prometheus exposition (not JSON)."""

from shim.openapi import Operation

EXPOSITION = {"type": "string", "description": "Prometheus exposition: `# HELP`, `# TYPE` and sample lines"}

OPERATIONS = (
    Operation(
        "GET",
        "/metrics",
        "Every control's state for a Prometheus scrape",
        "key",
        {
            200: [
                ("text/plain", EXPOSITION),
                ("application/openmetrics-text", EXPOSITION),
            ]
        },
        "metrics",
        description="The Prometheus text format (`text/plain; version=0.0.4`), or OpenMetrics 1.0 when the "
        "`Accept` header asks for `application/openmetrics-text` (Prometheus does). Needs the dashboard key, "
        "as `Authorization: Bearer` (Prometheus' `authorization` scrape setting) or `X-Dash-Key`.",
    ),
)
