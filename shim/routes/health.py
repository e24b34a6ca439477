"""GET /healthz: public liveness with version, log dir writability and a real store write."""

from __future__ import annotations

from echoops.core import config, health
from shim.http import json_answer

# A load balancer probing every few seconds gets a fresh write each time; a flood of probes
# costs each worker one write a second. A failure is never reused.
PROBE_MAX_AGE_S = 1.0


def healthz():
    """200 when the log dir is writable and the store takes a write (a row in its health
    table); otherwise 503 with `detail` saying why (disk full, read-only, file gone...)."""
    body = health.report(config.settings(), max_age_s=PROBE_MAX_AGE_S)
    return json_answer(body, 200 if body["ok"] else 503, {"Cache-Control": "no-store"})


def ping():
    """Authenticated no-op: the dashboard checks a key with it (the auth hook answers 401 first)."""
    return {"ok": True}


def install(app) -> None:
    app.route("/healthz", "GET", healthz)
    app.route("/api/ping", "GET", ping)
