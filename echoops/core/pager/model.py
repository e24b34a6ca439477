"""What an incident is: severities, channels, limits, the pager tables and their connection.

Shared by the inbox (raising), the outbox (delivery), log consumption and the summary, so
none of them needs another's module for a constant or the connection.
"""

from __future__ import annotations

import sqlite3

from echoops.core import store
from echoops.core.config import Settings

SEVERITIES = ("CRITICAL", "ERROR", "WARNING", "INFO")
PAGED_SEVERITIES = frozenset({"CRITICAL"})
CHANNELS = ("telegram", "email")
MAX_MSG_BYTES = 4 * 1024
MAX_SOURCE_CHARS = 100
MAX_META_BYTES = 16 * 1024
MAX_FINGERPRINT_CHARS = 200
DELIVERY_STATES = ("ok", "failed", "unconfirmed", "pending", "skipped")

INCIDENTS_LOG = "incidents.ndjson"
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
    ),
)

# Called (no arguments) after a transaction enqueued deliveries: the server's drain thread
# registers its wake-up here so a CRITICAL goes out at once, not at the next poll.
ENQUEUE_LISTENERS: list = []


def db(s: Settings) -> sqlite3.Connection:
    """The store connection with the pager tables ensured."""
    return store.db(s, SCHEMA)
