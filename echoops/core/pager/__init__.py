"""Incident pager (phase 77).

Every incident enters through `raise_incident` (`inbox`: validation, fingerprint; `incidents`:
dedup per repeat window, outbox rows); CRITICAL ones get one delivery per channel in a durable
outbox (`outbox`: at most 6 attempts each, then `failed` and a notice through the other
channel), sent by `channels/` (Telegram, email) and drained by `drain`; `logs` turns CRITICAL
lines of any `logs/*.ndjson` into incidents; `summary` groups the last hours by fingerprint;
`runner` is the scheduler's job and the hand re-drive; `counts` the totals `GET /metrics` shows;
`alertmanager` takes Alertmanager's webhook. Constants and tables are in `model`.

Interface to the other controls: `raise_incident` (the SLO, cost and scale controls page
through it; `raise_request` is the same for an HTTP body, `receive_alertmanager` for
Alertmanager's webhook), `run`, `retry`, `summarize`, `send_test`, `counts`, and
`start_background_drain` for the server.
"""

from echoops.core.pager.alertmanager import receive as receive_alertmanager
from echoops.core.pager.counts import PagerCounts, counts
from echoops.core.pager.drain import start_background_drain
from echoops.core.pager.inbox import configured_channels, raise_incident, raise_request, validate
from echoops.core.pager.model import CHANNELS, INCIDENTS_LOG, SEVERITIES, SUMMARY_FILE, db
from echoops.core.pager.outbox import NothingToRetry
from echoops.core.pager.runner import retry, run, send_test
from echoops.core.pager.summary import summarize

__all__ = [
    "CHANNELS",
    "NothingToRetry",
    "INCIDENTS_LOG",
    "PagerCounts",
    "SEVERITIES",
    "SUMMARY_FILE",
    "configured_channels",
    "counts",
    "db",
    "raise_incident",
    "raise_request",
    "receive_alertmanager",
    "retry",
    "run",
    "send_test",
    "start_background_drain",
    "summarize",
    "validate",
]
