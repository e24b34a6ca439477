"""The pager's scheduled job and test sends: consume CRITICAL log lines, drain the outbox,
and send a test message through each channel outside the outbox.
"""

from __future__ import annotations

from echoops.core import clock, config, ndjson
from echoops.core.config import Settings
from echoops.core.errors import NotConfigured, ValidationError
from echoops.core.pager import inbox, logs, outbox
from echoops.core.pager.channels import Page
from echoops.core.pager.model import CHANNELS, INCIDENTS_LOG
from echoops.core.pager.types import PageRun, TestResult, TestSend


def run(*, s: Settings | None = None, now: float | None = None, ingest: bool = True, budget_s: float = 60.0) -> PageRun:
    """Consume new CRITICAL log lines into incidents (unless `ingest` is False), then drain the
    outbox (the scheduler's job): what was read and the delivery attempts made, by result."""
    s = s or config.settings()
    t = clock.now_s(now)
    read = logs.ingest(s, now=t) if ingest else None
    return {"ingest": read, "deliveries": outbox.drain(s, now=now, budget_s=budget_s)}


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
