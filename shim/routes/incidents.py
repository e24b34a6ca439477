"""POST /api/incidents/raise and /api/incidents/summarize; starts the pager's background drain.

Raise enqueues and answers at once; each gunicorn worker runs a drain thread (started by a
POST_FORK hook registered here) that is woken by the enqueue, so a CRITICAL is on its way
to Telegram/email within a second or two, and every POLL_S seconds it also picks up pages
enqueued by other processes (the scheduler, the CLI) and retries that fell due.
"""

from __future__ import annotations

from echoops.core import pager
from shim.http import json_body, query

RAISE_FIELDS = ("severity", "msg", "source", "meta", "fingerprint")


def raise_route():
    body = json_body()
    unknown = sorted(set(body) - set(RAISE_FIELDS))
    if unknown:
        from echoops.core.errors import ValidationError

        raise ValidationError(f"unknown field {unknown[0]!r} (allowed: {', '.join(RAISE_FIELDS)})", field=unknown[0])
    return pager.raise_incident(
        body.get("severity"), body.get("msg"), body.get("source"), body.get("meta"), body.get("fingerprint")
    )


def summarize_route():
    return pager.summarize(hours=query("hours", "24"))


def install(app) -> None:
    from shim import server

    app.route("/api/incidents/raise", "POST", raise_route)
    app.route("/api/incidents/summarize", "POST", summarize_route)
    if pager.start_background_drain not in server.POST_FORK:
        server.POST_FORK.append(pager.start_background_drain)
