"""POST /api/incidents/raise, /api/incidents/summarize and /api/incidents/alertmanager (Alertmanager's
webhook); the pager's drain thread for the server.

Raise enqueues and answers at once; each gunicorn worker runs a drain thread (POST_FORK,
registered by shim/app.py) that is woken by the enqueue, so a CRITICAL is on its way
to Telegram/email within a second or two, and every POLL_S seconds it also picks up pages
enqueued by other processes (the scheduler, the CLI) and retries that fell due.
"""

from __future__ import annotations

from echoops.core import pager
from echoops.core.pager.types import AlertmanagerReceived, Raised, Summary
from shim.http import json_body, query

# Run in each gunicorn worker after fork (shim.app.POST_FORK).
POST_FORK = (pager.start_background_drain,)


def raise_route() -> Raised:
    return pager.raise_request(json_body())


def summarize_route() -> Summary:
    return pager.summarize(hours=query("hours", "24"))


def alertmanager_route() -> AlertmanagerReceived:
    return pager.receive_alertmanager(json_body())


def install(app) -> None:
    app.route("/api/incidents/raise", "POST", raise_route)
    app.route("/api/incidents/summarize", "POST", summarize_route)
    app.route("/api/incidents/alertmanager", "POST", alertmanager_route)
