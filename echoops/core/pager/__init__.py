"""Incident pager (phase 77) that people can answer (issue 15).

Every incident enters through `raise_incident` (`inbox`: validation, fingerprint; `incidents`:
dedup per repeat window, states, outbox rows); CRITICAL ones get one delivery per channel in a
durable outbox (`outbox`: at most 6 attempts each, then `failed` and a notice through the
other channel), sent by `channels/` (Telegram, email) with what `messages` builds, and drained
by `drain`; `logs` turns CRITICAL lines of any `logs/*.ndjson` into incidents; `alertmanager`
takes Alertmanager's webhook; `summary` groups the last hours by fingerprint; `counts` the
totals `GET /metrics` shows; `runner` is the scheduler's job and the hand re-drive.
People answer pages: `states` (ack, resolve, auto-resolve, ack expiry), `silences`,
`escalation` (unacked CRITICALs paged again), `buttons` and `presses` (Telegram inline
buttons, read back with getUpdates) and `links` and `link_pages` (signed ack/resolve links in
emails). Constants and tables are in `model`.

Interface to the other controls: `raise_incident` (the SLO, cost and scale controls page
through it; `raise_request` is the same for an HTTP body, `receive_alertmanager` for
Alertmanager's webhook), `resolve(id_or_fingerprint, *, by, note)` and
`auto_resolve(fingerprint, *, by, note)` (a feature that sees its problem end), `run`,
`retry`, `summarize`, `send_test`, `counts`, and `start_background_drain` for the server
(whose link routes use `link_pages` directly: nothing else needs its HTML).
"""

from echoops.core.pager.alertmanager import receive as receive_alertmanager
from echoops.core.pager.counts import PagerCounts, counts
from echoops.core.pager.drain import start_background_drain
from echoops.core.pager.inbox import configured_channels, raise_incident, raise_request, validate
from echoops.core.pager.model import (
    ACK_LINK_PATH,
    CHANNELS,
    INCIDENTS_LOG,
    RESOLVE_LINK_PATH,
    SEVERITIES,
    STATES,
    SUMMARY_FILE,
    db,
)
from echoops.core.pager.outbox import NothingToRetry
from echoops.core.pager.runner import ingest_logs, retry, run, send_test
from echoops.core.pager.silences import add as add_silence
from echoops.core.pager.silences import add_request as add_silence_request
from echoops.core.pager.silences import listing as list_silences
from echoops.core.pager.silences import remove as remove_silence
from echoops.core.pager.states import ack, ack_request, auto_resolve, resolve, resolve_request
from echoops.core.pager.summary import summarize

__all__ = [
    "ACK_LINK_PATH",
    "CHANNELS",
    "INCIDENTS_LOG",
    "NothingToRetry",
    "PagerCounts",
    "RESOLVE_LINK_PATH",
    "SEVERITIES",
    "STATES",
    "SUMMARY_FILE",
    "ack",
    "ack_request",
    "add_silence",
    "add_silence_request",
    "auto_resolve",
    "configured_channels",
    "counts",
    "db",
    "ingest_logs",
    "list_silences",
    "raise_incident",
    "raise_request",
    "receive_alertmanager",
    "remove_silence",
    "resolve",
    "resolve_request",
    "retry",
    "run",
    "send_test",
    "start_background_drain",
    "summarize",
    "validate",
]
