"""GET /healthz: public liveness with version, log dir writability and store health."""

from __future__ import annotations

import os

from echoops import __version__
from echoops.core import config, store
from shim.http import json_response


def healthz():
    s = config.settings()
    log_dir_ok = s.log_dir.is_dir() and os.access(s.log_dir, os.W_OK)
    db_ok = log_dir_ok and store.health(s)
    body = {"ok": log_dir_ok and db_ok, "version": __version__, "log_dir_writable": log_dir_ok, "db_ok": db_ok}
    return json_response(body, 200 if body["ok"] else 503, {"Cache-Control": "no-store"})


def ping():
    """Authenticated no-op: the dashboard checks a key with it (the auth hook answers 401 first)."""
    return {"ok": True}


def install(app) -> None:
    app.route("/healthz", "GET", healthz)
    app.route("/api/ping", "GET", ping)
