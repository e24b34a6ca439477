"""Alertmanager's webhook into the inbox (`POST /api/incidents/alertmanager`, payload version 4).

Each firing alert becomes an incident like any raise (`incidents.record`, so deduplicated by
fingerprint within PAGER_REPEAT_MIN: Alertmanager re-sends a group every `group_interval` and
`repeat_interval`, and those re-sends count into the open incident without paging again):

- severity from `labels.severity`: critical -> CRITICAL, warning -> WARNING, anything else ERROR;
- source: `labels.alertname` ("alertmanager" without one);
- msg: `annotations.summary`, else `annotations.description`, else the alertname (cut to the
  pager's 4 KiB, never refused for length);
- meta: the alert's labels plus `generatorURL`;
- fingerprint: `am:<Alertmanager's fingerprint>`.

A resolved alert resolves its incident through the pager's own resolve (`states.auto_resolve`,
by "alertmanager", the note naming Alertmanager's `endsAt`): one RESOLVED notice to each
channel that got the page, and the fingerprint re-opens, so an alert that fires again after
its resolution pages again.

The whole payload is checked before anything is stored: a malformed one is a ValidationError
(400) naming the field (`alerts[2].labels`), and nothing of it is recorded.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import orjson

from echoops.core import clock, config, parsers
from echoops.core.config import Settings
from echoops.core.errors import ValidationError
from echoops.core.pager import inbox, states
from echoops.core.pager.incidents import Item, record
from echoops.core.pager.model import MAX_META_BYTES, MAX_MSG_BYTES, MAX_SOURCE_CHARS, db
from echoops.core.pager.types import AlertmanagerReceived, AlertReceived

VERSION = "4"
PREFIX = "am:"
MAX_ALERTS = 1000  # far above what fits the 64 KiB body limit
SEVERITY = {"critical": "CRITICAL", "warning": "WARNING"}  # anything else: ERROR
_FINGERPRINT = re.compile(r"[0-9A-Za-z_-]{1,64}\Z")


def _strings(value: object, field: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise ValidationError(f"{field} must be an object of strings", field=field)
    return value


def _cut(text: str, max_bytes: int) -> str:
    raw = text.encode("utf-8", "surrogatepass")
    if len(raw) <= max_bytes:
        return text
    return raw[: max_bytes - 3].decode("utf-8", "ignore") + "..."


def _alert(alert: object, i: int) -> tuple[str, Item | None, float | None]:
    """(incident fingerprint, the raise item for a firing alert, endsAt for a resolved one)."""
    at = f"alerts[{i}]"
    if not isinstance(alert, dict):
        raise ValidationError(f"{at} must be an object", field=at)
    status = alert.get("status")
    if status not in ("firing", "resolved"):
        raise ValidationError(f"{at}.status must be firing or resolved", field=f"{at}.status")
    fp = alert.get("fingerprint")
    if not isinstance(fp, str) or not _FINGERPRINT.match(fp):
        raise ValidationError(f"{at}.fingerprint must be Alertmanager's fingerprint (hex)", field=f"{at}.fingerprint")
    labels = _strings(alert.get("labels"), f"{at}.labels")
    annotations = _strings(alert.get("annotations"), f"{at}.annotations")
    url = alert.get("generatorURL", "")
    if not isinstance(url, str):
        raise ValidationError(f"{at}.generatorURL must be a string", field=f"{at}.generatorURL")
    for name in ("startsAt", "endsAt"):
        if not isinstance(alert.get(name, ""), str):
            raise ValidationError(f"{at}.{name} must be an RFC 3339 time", field=f"{at}.{name}")
    incident_fp = PREFIX + fp
    if status == "resolved":
        # Go's zero time ("0001-01-01T00:00:00Z") and anything unreadable: the resolution time is now
        return incident_fp, None, clock.parse_ts(alert.get("endsAt") or "")
    name = labels.get("alertname", "").strip()
    source = name[:MAX_SOURCE_CHARS] if name else "alertmanager"
    msg = next((t for t in (annotations.get("summary"), annotations.get("description"), name) if t and t.strip()), "")
    msg = _cut(msg or f"alert {fp}", MAX_MSG_BYTES)
    meta = {**labels, "generatorURL": url}
    if len(orjson.dumps(meta)) > MAX_META_BYTES:
        raise ValidationError(f"{at}.labels are over {MAX_META_BYTES} bytes as JSON", field=f"{at}.labels")
    severity = SEVERITY.get(labels.get("severity", "").strip().lower(), "ERROR")
    checked = inbox.validate(severity, msg, source, meta, incident_fp)
    return incident_fp, (*checked[:4], incident_fp, 1), None


def parse(body: Mapping[str, object]) -> tuple[list[tuple[str, Item | None, float | None]], dict[str, Any]]:
    """The checked alerts of a webhook payload, and its group facts; ValidationError names the field."""
    if body.get("version") != VERSION:
        raise ValidationError(f'version must be "{VERSION}" (Alertmanager\'s webhook payload)', field="version")
    alerts = body.get("alerts")
    if not isinstance(alerts, list):
        raise ValidationError("alerts must be a list", field="alerts")
    if len(alerts) > MAX_ALERTS:
        raise ValidationError(f"alerts: at most {MAX_ALERTS}", field="alerts")
    receiver = body.get("receiver")
    raw = body.get("truncatedAlerts")
    truncated = 0 if raw is None else parsers.whole_count(raw)  # JSON's 74.0 is a whole number too
    if truncated is None:
        raise ValidationError("truncatedAlerts must be a whole number >= 0", field="truncatedAlerts")
    facts = {"receiver": receiver if isinstance(receiver, str) else None, "truncated": truncated}
    return [_alert(alert, i) for i, alert in enumerate(alerts)], facts


def receive(body: Mapping[str, object], *, s: Settings | None = None, now: float | None = None) -> AlertmanagerReceived:
    """Record a webhook payload: firing alerts raise (deduplicated), resolved ones resolve."""
    s = s or config.settings()
    t = clock.now_s(now)
    checked, facts = parse(body)
    firing = [item for _, item, _ in checked if item is not None]
    raised = iter(record(s, firing, now=t)) if firing else iter(())
    out: list[AlertReceived] = []
    for fp, item, ends_at in checked:
        if item is not None:
            r = next(raised)
            out.append(
                {
                    "fingerprint": fp,
                    "status": "firing",
                    "id": r["id"],
                    "deduped": r["deduped"],
                    "channels": r["channels"],
                }
            )
        else:
            incident = resolve_incident(s, fp, at=ends_at or t, now=t)
            out.append({"fingerprint": fp, "status": "resolved", "id": incident, "deduped": False, "channels": {}})
    return {
        "receiver": facts["receiver"],
        "firing": len(firing),
        "resolved": len(checked) - len(firing),
        "truncated": facts["truncated"],
        "alerts": out,
    }


def resolve_incident(s: Settings, fingerprint: str, *, at: float, now: float) -> str | None:
    """Resolve the incident of `fingerprint` (Alertmanager ended the alert at `at`): its latest
    incident's id, or None when echoops never saw it fire. Already resolved: nothing more happens."""
    row = (
        db(s)
        .execute("SELECT id FROM pager_incidents WHERE fingerprint=? ORDER BY first_seen DESC LIMIT 1", (fingerprint,))
        .fetchone()
    )
    if row is None:
        return None
    states.auto_resolve(
        fingerprint, by="alertmanager", note=f"resolved in Alertmanager at {clock.iso(at)}", s=s, now=now
    )
    return str(row["id"])
