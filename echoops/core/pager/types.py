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
    state: str  # the incident's state after this raise: open | acked (counted, not paged) | silenced
    silence: NotRequired[str]  # the silence that kept it quiet (state silenced)
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


class Upkeep(TypedDict):
    """What the drain's upkeep did: state changes that come with time."""

    escalated: int  # unacked CRITICALs paged again, marked ESCALATED
    acks_expired: int  # acks older than PAGER_ACK_HOURS: the incidents re-opened
    silences_expired: int


class ButtonPoll(TypedDict):
    """One read of Telegram button presses (getUpdates)."""

    polled: bool  # False when Telegram or the signing keys are not set up, or another process polls
    updates: int
    acted: int  # presses that changed an incident
    ignored: int  # answered and ignored: another chat, forged or stale data, a double press
    error: str | None


class PageRun(TypedDict):
    """`echoops page run --json`."""

    ingest: LogIngest | None  # None with --drain-only
    buttons: ButtonPoll  # Telegram button presses read this run
    upkeep: Upkeep  # escalations, expired acks and silences
    deliveries: dict[str, int]  # state -> attempts made this run (edits of sent messages as edit_<state>)
    summary: "SummaryTotals"  # totals of the 24h summary this run wrote to incident_summary.json


class RetriedDelivery(TypedDict):
    id: str
    channel: str  # the channel for a page, else `channel:kind[:escalate]`


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
    paged: bool  # a channel took one of its pages (delivery ok); not when every channel skipped or failed
    pages: int  # its pages some channel took
    pages_raised: int  # its pages raised (CRITICAL, not deduped, held or silenced), whatever the channels did
    latest_id: str
    deliveries: dict[str, str]  # channel -> state of the group's latest page
    failed_deliveries: int
    state: str  # open | acked | silenced | resolved (the state of the latest incident)
    paged_at: str | None  # when the latest page a channel took was raised
    acked_by: str | None
    acked_at: str | None
    ack_until: str | None  # repeats are held until then, unless resolved first
    resolved_at: str | None  # resolved by hand, a button, a link, a feature or Alertmanager
    resolved_by: str | None
    note: str | None  # the resolve note
    silence: str | None  # the silence that keeps it quiet (state silenced)
    escalated_at: str | None


class SummaryTotals(TypedDict):
    groups: int
    incidents: int
    pages: int  # pages some channel took
    pages_raised: int  # pages raised, whatever the channels did
    by_severity: dict[str, int]
    deliveries: dict[str, int]  # state -> deliveries of pages in the window
    by_state: dict[str, int]  # incident state -> groups


class Attention(TypedDict):
    """A delivery that needs a person: `failed` after its attempts, or `unconfirmed`."""

    id: str
    channel: str
    kind: str  # page | escalate | resolved (":escalate" when it went to the escalation targets)
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


class IncidentAction(TypedDict):
    """`POST /api/incidents/ack` and `/resolve`, `echoops page ack|resolve --json`: the incident after the action."""

    id: str  # the fingerprint's latest incident
    fingerprint: str
    state: str  # open | acked | silenced | resolved
    changed: bool  # False for a repeat (already acked / resolved): nothing was done
    ids: list[str]  # the incidents of the episode the action applied to (empty when nothing changed)
    acked_by: str | None
    acked_at: str | None
    ack_until: str | None
    resolved_by: str | None
    resolved_at: str | None
    note: str | None
    notices: dict[str, str]  # resolve: "channel" or "channel:escalate" -> state of the RESOLVED notice enqueued


class Silence(TypedDict):
    """One silence (`POST /api/incidents/silence`, `DELETE /api/incidents/silence`)."""

    id: str  # sil_<hex ms><random>
    match: dict[str, str]  # source / severity / fingerprint / msg~ -> value; all must match
    reason: str
    created_by: str
    created_at: str
    ends_at: str
    state: str  # active | expired | removed
    left_s: int  # seconds left (0 once ended)
    ended_at: str | None
    ended_by: str | None  # who removed it (None when it ran out)
    matched: int  # occurrences it kept quiet


class Silences(TypedDict):
    """`GET /api/incidents/silences`, `echoops page silences --json`."""

    generated_at: str
    silences: list[Silence]  # active first (soonest end first), then recently ended with --all
