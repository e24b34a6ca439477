"""The pager's running totals, for `GET /metrics`: incidents by severity, deliveries by channel and
result, attempts per channel, and the outbox backlog. Read straight from the tables (the outbox's
index answers the backlog; the totals scan rows that are never deleted).
"""

from __future__ import annotations

from dataclasses import dataclass

from echoops.core import config
from echoops.core.config import Settings
from echoops.core.pager.model import CHANNELS, SEVERITIES, db

RESULTS = ("ok", "failed", "unconfirmed", "skipped")  # the states a delivery ends in


@dataclass(frozen=True)
class PagerCounts:
    incidents: dict[str, int]  # severity -> incidents opened (each holds its worst severity)
    deliveries: dict[tuple[str, str], int]  # (channel, result) -> deliveries that ended so
    attempts: dict[str, int]  # channel -> send attempts made
    pending: int  # deliveries waiting in the outbox (due now or retrying later)


def counts(*, s: Settings | None = None) -> PagerCounts:
    """Totals since the store began (counters for Prometheus) and the outbox backlog now."""
    s = s or config.settings()
    conn = db(s)
    incidents = {severity: 0 for severity in SEVERITIES}
    for row in conn.execute("SELECT severity, count(*) FROM pager_incidents GROUP BY severity"):
        incidents[row[0]] = incidents.get(row[0], 0) + row[1]
    deliveries = {(channel, result): 0 for channel in CHANNELS for result in RESULTS}
    attempts = {channel: 0 for channel in CHANNELS}
    pending = 0
    for channel, state, n, tries in conn.execute(
        "SELECT channel, state, count(*), sum(attempts) FROM pager_outbox GROUP BY channel, state"
    ):
        attempts[channel] = attempts.get(channel, 0) + (tries or 0)
        if state == "pending":
            pending += n
        else:
            deliveries[(channel, state)] = deliveries.get((channel, state), 0) + n
    return PagerCounts(incidents=incidents, deliveries=deliveries, attempts=attempts, pending=pending)
