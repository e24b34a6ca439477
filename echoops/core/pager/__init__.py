"""Incident pager (phase 77).

Every incident enters through `raise_incident` (`inbox`: validation, fingerprint, dedup per
repeat window); CRITICAL ones get one delivery per channel in a durable outbox (`outbox`),
sent by `channels/` (Telegram, email) with retries; `logs` turns CRITICAL lines of any
`logs/*.ndjson` into incidents; `summary` groups the last hours by fingerprint; `runner`
is the scheduler's job. Constants and tables are in `model`.

Interface to the other controls: `raise_incident` (the SLO, cost and scale controls page
through it; `raise_request` is the same for an HTTP body), `run`, `summarize`, `send_test`,
and `start_background_drain` for the server.
"""

from echoops.core.pager.inbox import configured_channels, raise_incident, raise_request, validate
from echoops.core.pager.model import CHANNELS, INCIDENTS_LOG, SEVERITIES, SUMMARY_FILE, db
from echoops.core.pager.outbox import start_background_drain
from echoops.core.pager.runner import run, send_test
from echoops.core.pager.summary import summarize

__all__ = [
    "CHANNELS",
    "INCIDENTS_LOG",
    "SEVERITIES",
    "SUMMARY_FILE",
    "configured_channels",
    "db",
    "raise_incident",
    "raise_request",
    "run",
    "send_test",
    "start_background_drain",
    "summarize",
    "validate",
]
