"""The pager's scheduled job, test sends and re-drives: consume CRITICAL log lines, drain the
outbox and write logs/incident_summary.json (`run`), send a test message through each channel
outside the outbox (`send_test`), and put failed deliveries back in the queue (`retry`).
"""

from __future__ import annotations

from echoops.core import clock, config, ndjson
from echoops.core.config import Settings
from echoops.core.errors import NotConfigured, ValidationError
from echoops.core.pager import drain, inbox, logs, outbox
from echoops.core.pager.channels import Page
from echoops.core.pager.model import CHANNELS, INCIDENTS_LOG
from echoops.core.pager.summary import summarize
from echoops.core.pager.types import ButtonPoll, LogIngest, PageRun, Retried, TestResult, TestSend

RUN_BUDGET_S = 60.0  # how long `page run` waits for retries falling due (real time only)


def run(
    *, s: Settings | None = None, now: float | None = None, ingest: bool = True, budget_s: float | None = None
) -> PageRun:
    """Consume new CRITICAL log lines into incidents (unless `ingest` is False), read Telegram
    button presses, do the upkeep (escalations, expired acks and silences), drain the outbox,
    and rewrite logs/incident_summary.json with the last 24h (the scheduler's job).

    Retries falling due within `budget_s` (default RUN_BUDGET_S) are waited for; a given `now` is
    a simulated instant (`--now`), so by default nothing is waited for then.
    Returns what was read, the delivery attempts made by result, and the 24h summary's totals."""
    s = s or config.settings()
    t = clock.now_s(now)
    read = logs.ingest(s, now=t) if ingest else None
    pressed = _read_presses(s, now)
    kept = drain.upkeep(s, now=now)
    wait = budget_s if budget_s is not None else (0.0 if now is not None else RUN_BUDGET_S)
    deliveries = drain.drain(s, now=now, budget_s=wait, with_upkeep=False)
    summary = summarize(hours=24, s=s, now=now)  # after the drain: the states it left
    return {"ingest": read, "buttons": pressed, "upkeep": kept, "deliveries": deliveries, "summary": summary["totals"]}


def ingest_logs(*, s: Settings | None = None, now: float | None = None) -> LogIngest:
    """Only turn this host's new CRITICAL log lines into incidents (`page run --logs-only`, the
    `@local` job of a host sharing a PostgreSQL store): delivery is left to the servers'
    delivery threads and the leader's `page run`."""
    s = s or config.settings()
    return logs.ingest(s, now=clock.now_s(now))


def _read_presses(s: Settings, now: float | None) -> ButtonPoll:
    """A short read of Telegram button presses (the server's thread long-polls)."""
    if not (s.telegram_bot_token and s.telegram_chat_id):
        return {"polled": False, "updates": 0, "acted": 0, "ignored": 0, "error": None}
    from echoops.core.pager import presses  # lazy: ~6 ms; only with Telegram set up

    return presses.poll(s, timeout_s=0, now=now)


def retry(
    incident_id: str | None = None,
    *,
    all_failed: bool = False,
    channel: str | None = None,
    s: Settings | None = None,
    now: float | None = None,
) -> Retried:
    """Re-drive failed deliveries by hand (`echoops page retry ID` / `--all-failed`): each gets a
    new series of attempts and its first attempt now. Returns `{"retried": [{id, channel}],
    "deliveries": {id: {channel: state}}}`; NothingToRetry when none matched."""
    s = s or config.settings()
    t = clock.now_s(now)
    keys = outbox.redrive(s, incident_id, all_failed=all_failed, channel=channel, now=t)
    states: dict[str, dict[str, str]] = {}
    for iid in dict.fromkeys(k[0] for k in keys):
        outbox.attempt_now(s, iid, now=t)
        mine = {c for i, c in keys if i == iid}
        states[iid] = {
            c: v for c, v in outbox.delivery_states(s, iid, all_kinds=True)["deliveries"].items() if c in mine
        }
    return {"retried": [{"id": i, "channel": c} for i, c in keys], "deliveries": states}


def send_test(channel: str | None = None, *, s: Settings | None = None, now: float | None = None) -> TestSend:
    """Send a test message now through `channel` (or every configured one), outside the outbox.

    Returns `{"results": {channel: {"ok", "status", "detail"}}}`; NotConfigured when the
    asked channel (or, without one, every channel) lacks its settings.
    """
    s = s or config.settings()
    t = clock.now_s(now)
    if channel is not None and channel not in CHANNELS:
        raise ValidationError(f"channel must be one of {', '.join(CHANNELS)}", field="channel")
    enabled = inbox.configured_channels(s)
    wanted = [channel] if channel else [c for c in CHANNELS if enabled[c]]
    missing = [c for c in wanted if not enabled[c]]
    if missing or not wanted:
        need = {"telegram": "TELEGRAM_BOT_TOKEN and TELEGRAM_CHAT_ID", "email": "SMTP_HOST, SMTP_FROM and SMTP_TO"}
        names = missing or list(CHANNELS)
        raise NotConfigured("; ".join(f"{c} needs {need[c]}" for c in names))
    page = Page(inbox.new_id(t), "INFO", "echoops", "Test page from echoops: delivery works.", "test", 1, t, test=True)
    results: dict[str, TestResult] = {}
    for name in wanted:
        outcome = outbox.send_once(name, page, s)
        results[name] = {"ok": outcome.ok, "status": outcome.status, "detail": outcome.detail}
        ndjson.append(s.log_path(INCIDENTS_LOG), "page_test", now=t, channel=name, status=outcome.status, ok=outcome.ok)
    return {"results": results}
