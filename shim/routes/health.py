"""GET /healthz: public liveness with version, log dir writability and a real store write."""

from __future__ import annotations

import os

from echoops import __version__
from echoops.core import config, health, store
from shim.http import json_response

# A load balancer probing every few seconds gets a fresh write each time; a flood of probes
# costs each worker one write a second. A failure is never reused.
PROBE_MAX_AGE_S = 1.0


def healthz():
    """200 when the log dir is writable and the store takes a write (a row in its health
    table); otherwise 503 with `detail` saying why (disk full, read-only, file gone...)."""
    s = config.settings()
    log_dir_ok = s.log_dir.is_dir() and os.access(s.log_dir, os.W_OK)
    problem = (
        health.probe(s, max_age_s=PROBE_MAX_AGE_S) if log_dir_ok else f"log dir {s.log_dir} is not a writable directory"
    )
    body = {"ok": problem is None, "version": __version__, "log_dir_writable": log_dir_ok, "db_ok": problem is None}
    if problem is not None:
        body["detail"] = problem
    else:
        body.update(_leadership(s))
    return json_response(body, 200 if body["ok"] else 503, {"Cache-Control": "no-store"})


def _leadership(s) -> dict:
    """Who leads the schedule ({"instance", "leader", "is_leader"}); {} when the store cannot say."""
    from echoops.core import scheduler  # lazy: the scheduler package only for this read

    try:
        return dict(scheduler.leadership(s=s))
    except store.errors(OSError):
        return {}


def ping():
    """Authenticated no-op: the dashboard checks a key with it (the auth hook answers 401 first)."""
    return {"ok": True}


def install(app) -> None:
    app.route("/healthz", "GET", healthz)
    app.route("/api/ping", "GET", ping)
