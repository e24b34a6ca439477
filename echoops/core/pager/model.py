"""What an incident is: severities, channels, limits, the pager tables and their connection.

Shared by the inbox (raising), the outbox (delivery), log consumption and the summary, so
none of them needs another's module for a constant or the connection.
"""

from __future__ import annotations

import os
import socket
import threading

from echoops.core import store
from echoops.core.config import Settings

SEVERITIES = ("CRITICAL", "ERROR", "WARNING", "INFO")
PAGED_SEVERITIES = frozenset({"CRITICAL"})
CHANNELS = ("telegram", "email")
MAX_MSG_BYTES = 4 * 1024
MAX_SOURCE_CHARS = 100
MAX_META_BYTES = 16 * 1024
MAX_FINGERPRINT_CHARS = 200
DELIVERY_STATES = ("ok", "failed", "unconfirmed", "pending", "skipped", "cancelled")
# An incident's state (per fingerprint: the state of its latest row). `silenced`: it matched a
# silence when raised (or a silence added later took it over); `acked` holds repeats until
# `ack_until`; `resolved` is final for its rows: the next raise opens a new incident.
STATES = ("open", "acked", "silenced", "resolved")
# What a delivery carries: the page, its escalation, the resolved notice, or an edit of a
# Telegram message already sent (to show who acked/resolved/silenced it).
KINDS = ("page", "escalate", "resolved", "edit_ack", "edit_resolve", "edit_silence")
PAGE_KINDS = ("page", "escalate")  # the deliveries that wake a person (resolve/ack cancels pending ones)
DESTS = ("main", "escalate")  # the configured chat/recipients, or the escalation ones

INCIDENTS_LOG = "incidents.ndjson"
# The email links' routes (public: the signed token is the credential).
ACK_LINK_PATH = "/api/incidents/ack-link"
RESOLVE_LINK_PATH = "/api/incidents/resolve-link"
SUMMARY_FILE = "incident_summary.json"

SCHEMA = store.Schema(
    "pager",
    (
        """
        CREATE TABLE pager_incidents (
            id TEXT PRIMARY KEY,
            fingerprint TEXT NOT NULL,
            severity TEXT NOT NULL,
            source TEXT NOT NULL,
            msg TEXT NOT NULL,
            meta TEXT,
            first_seen REAL NOT NULL,
            last_seen REAL NOT NULL,
            count INTEGER NOT NULL,
            paged INTEGER NOT NULL
        );
        CREATE INDEX pager_incidents_fp ON pager_incidents(fingerprint, first_seen);
        CREATE INDEX pager_incidents_last ON pager_incidents(last_seen);
        CREATE TABLE pager_outbox (
            incident_id TEXT NOT NULL REFERENCES pager_incidents(id),
            channel TEXT NOT NULL,
            state TEXT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            round_attempts INTEGER NOT NULL DEFAULT 0,
            rounds INTEGER NOT NULL DEFAULT 0,
            next_attempt_at REAL,
            last_status TEXT,
            last_error TEXT,
            claimed_by TEXT,
            claimed_until REAL,
            delivered_at REAL,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            PRIMARY KEY (incident_id, channel)
        );
        CREATE INDEX pager_outbox_due ON pager_outbox(state, next_attempt_at);
        """,
        # v2: at most 6 attempts per delivery (`round_attempts` counts the current series: since
        # the enqueue or the last `page retry`, counted in `redrives`; `rounds` is no longer used),
        # and the attempt in flight, written before the network call (`sending_attempt`,
        # `sending_at`) so an attempt whose result was never recorded is resolved conservatively.
        """
        ALTER TABLE pager_outbox ADD COLUMN sending_attempt INTEGER;
        ALTER TABLE pager_outbox ADD COLUMN sending_at REAL;
        ALTER TABLE pager_outbox ADD COLUMN redrives INTEGER NOT NULL DEFAULT 0;
        """,
        # v3: incident states (issue 15). Each row is one repeat window of a fingerprint; rows
        # since the fingerprint's last resolve are one episode (`opened_at`, shared), and an
        # ack, resolve or silence applies to the whole episode. Existing rows count as already
        # escalated, so an upgrade never escalates old incidents. The outbox gains a `kind`
        # (page, escalate, resolved, edit_*) and a `dest` (main, escalate, or for an edit the
        # message it edits), so it is rebuilt with the wider primary key; `ref` keeps what the
        # channel answered (Telegram's message_id, so a page can be edited later).
        """
        ALTER TABLE pager_incidents ADD COLUMN state TEXT NOT NULL DEFAULT 'open';
        ALTER TABLE pager_incidents ADD COLUMN opened_at REAL;
        ALTER TABLE pager_incidents ADD COLUMN acked_by TEXT;
        ALTER TABLE pager_incidents ADD COLUMN acked_at REAL;
        ALTER TABLE pager_incidents ADD COLUMN ack_until REAL;
        ALTER TABLE pager_incidents ADD COLUMN resolved_by TEXT;
        ALTER TABLE pager_incidents ADD COLUMN resolved_at REAL;
        ALTER TABLE pager_incidents ADD COLUMN resolve_note TEXT;
        ALTER TABLE pager_incidents ADD COLUMN silence_id TEXT;
        ALTER TABLE pager_incidents ADD COLUMN escalated_at REAL;
        UPDATE pager_incidents SET opened_at = first_seen, escalated_at = first_seen;
        CREATE INDEX pager_incidents_state ON pager_incidents(state, first_seen);
        CREATE TABLE pager_outbox_v3 (
            incident_id TEXT NOT NULL REFERENCES pager_incidents(id),
            kind TEXT NOT NULL DEFAULT 'page',
            channel TEXT NOT NULL,
            dest TEXT NOT NULL DEFAULT 'main',
            state TEXT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            round_attempts INTEGER NOT NULL DEFAULT 0,
            rounds INTEGER NOT NULL DEFAULT 0,
            next_attempt_at REAL,
            last_status TEXT,
            last_error TEXT,
            claimed_by TEXT,
            claimed_until REAL,
            delivered_at REAL,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            sending_attempt INTEGER,
            sending_at REAL,
            redrives INTEGER NOT NULL DEFAULT 0,
            ref TEXT,
            PRIMARY KEY (incident_id, kind, channel, dest)
        );
        INSERT INTO pager_outbox_v3(incident_id, kind, channel, dest, state, attempts, round_attempts, rounds,
            next_attempt_at, last_status, last_error, claimed_by, claimed_until, delivered_at, created_at, updated_at,
            sending_attempt, sending_at, redrives)
        SELECT incident_id, 'page', channel, 'main', state, attempts, round_attempts, rounds, next_attempt_at,
            last_status, last_error, claimed_by, claimed_until, delivered_at, created_at, updated_at, sending_attempt,
            sending_at, redrives FROM pager_outbox;
        DROP TABLE pager_outbox;
        ALTER TABLE pager_outbox_v3 RENAME TO pager_outbox;
        CREATE INDEX pager_outbox_due ON pager_outbox(state, next_attempt_at);
        CREATE TABLE pager_silences (
            id TEXT PRIMARY KEY,
            matchers TEXT NOT NULL,
            reason TEXT NOT NULL,
            created_by TEXT NOT NULL,
            created_at REAL NOT NULL,
            ends_at REAL NOT NULL,
            ended_at REAL,
            ended_by TEXT
        );
        CREATE INDEX pager_silences_active ON pager_silences(ended_at, ends_at);
        CREATE TABLE pager_poll (
            name TEXT PRIMARY KEY,
            next_offset INTEGER NOT NULL DEFAULT 0,
            owner TEXT,
            lease_until REAL,
            last_ok_at REAL,
            last_error TEXT,
            error_at REAL,
            updated_at REAL NOT NULL
        );
        """,
    ),
)

# Called (no arguments) after a transaction enqueued deliveries: the server's drain thread
# registers its wake-up here so a CRITICAL goes out at once, not at the next poll.
ENQUEUE_LISTENERS: list = []


def db(s: Settings) -> store.Conn:
    """The store connection with the pager tables ensured."""
    return store.db(s, SCHEMA)


HOST = socket.gethostname()


def lease_owner() -> str:
    """Who holds a lease (an outbox row, the Telegram poll): host, pid and thread (a dead pid on
    this host frees its leases)."""
    return f"{HOST}:{os.getpid()}:{threading.get_ident()}"


def pid_alive(pid: int) -> bool:
    """Whether process `pid` exists on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user
        pass
    return True


def dead_owner(owner: str | None) -> bool:
    """True when `owner` (a lease_owner()) was a process on this host that no longer exists."""
    if not owner or not owner.startswith(HOST + ":"):
        return False
    try:
        return not pid_alive(int(owner.rsplit(":", 2)[1]))
    except ValueError:
        return False
