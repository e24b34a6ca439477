"""The pager's result types: the exact JSON of `POST /api/incidents/*` and `echoops page ... --json`.

Used by the core functions that build them, the routes that return them and the `--json`
printers. A new field is one line here (`NotRequired[...]` when not every answer has it).
No `from __future__ import annotations` here: TypedDict needs to see `NotRequired` at run time.
"""

from typing import NotRequired, TypedDict

from echoops.core.types import UnreadableInput


class Raised(TypedDict):
    """`POST /api/incidents/raise`, `echoops page raise --json`: what one raise did."""

    id: str  # inc_<hex ms><random>: sortable by time
    fingerprint: str
    deduped: bool  # counted into an incident of the same fingerprint inside PAGER_REPEAT_MIN
    channels: dict[str, str]  # channel -> state this call enqueued ("pending" | "skipped"); {} when not paged
    deliveries: NotRequired[dict[str, str]]  # send=True only: channel -> state after sending
    attempts: NotRequired[dict[str, "DeliveryAttempts"]]  # send=True only: channel -> how its attempts went


class DeliveryAttempts(TypedDict):
    """One delivery's attempts so far (`page raise --json`)."""

    attempts: int
    last_status: str | None
    last_error: str | None
    retry_at: str | None  # when the outbox tries again (None unless pending)


class LogIngest(TypedDict):
    """What `page run` read from logs/*.ndjson."""

    files: int
    lines: int
    critical: int
    stale: int  # CRITICAL lines older than 24 h: counted, not paged
    bad: int
    new_incidents: int  # incidents opened (the rest of `incidents` deduped into open ones)
    incidents: list[Raised]
    errors: list[UnreadableInput]  # logs that could not be read (skipped; the others were read)


class PageRun(TypedDict):
    """`echoops page run --json`."""

    ingest: LogIngest | None  # None with --drain-only
    deliveries: dict[str, int]  # state -> attempts made this run
    summary: "SummaryTotals"  # totals of the 24h summary this run wrote to incident_summary.json


class RetriedDelivery(TypedDict):
    id: str
    channel: str


class Retried(TypedDict):
    """`echoops page retry --json`: the deliveries re-driven and their states after the first attempt."""

    retried: list[RetriedDelivery]
    deliveries: dict[str, dict[str, str]]  # incident id -> channel -> state


class SummaryGroup(TypedDict):
    fingerprint: str
    severity: str  # the worst severity seen in the group
    source: str
    msg: str  # the latest message
    count: int
    first_seen: str
    last_seen: str
    paged: bool
    pages: int
    latest_id: str
    deliveries: dict[str, str]  # channel -> state of the group's latest page
    failed_deliveries: int
    resolved_at: NotRequired[str]  # Alertmanager resolved the alert after its last firing occurrence


class SummaryTotals(TypedDict):
    groups: int
    incidents: int
    pages: int
    by_severity: dict[str, int]
    deliveries: dict[str, int]  # state -> deliveries in the window


class Attention(TypedDict):
    """A delivery that needs a person: `failed` after its attempts, or `unconfirmed`."""

    id: str
    channel: str
    state: str  # "failed" | "unconfirmed"
    attempts: int
    last_status: str | None
    last_error: str | None
    at: str
    severity: str
    source: str
    msg: str  # the first 300 characters


class Summary(TypedDict):
    """`POST /api/incidents/summarize`, `echoops page summarize --json`, `logs/incident_summary.json`."""

    generated_at: str
    hours: float
    groups: list[SummaryGroup]  # newest first
    totals: SummaryTotals
    attention: list[Attention]  # newest first, the last 7 days whatever `hours`


class TestResult(TypedDict):
    ok: bool
    status: str | int
    detail: str


class TestSend(TypedDict):
    """`echoops page test --json`."""

    results: dict[str, TestResult]


class AlertReceived(TypedDict):
    """One alert of an Alertmanager webhook payload, as recorded."""

    fingerprint: str  # am:<Alertmanager's fingerprint>
    status: str  # "firing" | "resolved"
    id: str | None  # the incident (None: a resolved alert echoops never saw firing)
    deduped: bool  # firing: counted into an open incident (no second page)
    channels: dict[str, str]  # firing: channel -> state enqueued; {} when not paged


class AlertmanagerReceived(TypedDict):
    """`POST /api/incidents/alertmanager`: what one webhook call recorded."""

    receiver: str | None
    firing: int
    resolved: int
    truncated: int  # alerts Alertmanager left out of the payload (its `max_alerts`)
    alerts: list[AlertReceived]
