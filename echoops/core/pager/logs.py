"""Log consumption for the pager: CRITICAL lines of any logs/*.ndjson become incidents.

Each file is read incrementally through ndjson.Reader (consumer "pager", one cursor per
file); the incidents a batch yields are stored in the same transaction as the cursor, so a
crash never loses or doubles a line. Lines of one run that share a fingerprint are folded
into one incident with their count (a 1,000-line flood is one page, one event line).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from echoops.core import clock, ndjson, parsers, store
from echoops.core.config import Settings
from echoops.core.pager import inbox, model
from echoops.core.pager.fingerprint import fingerprint as make_fingerprint
from echoops.core.pager.types import LogIngest

CONSUMER = "pager"

# Every NDJSON file echoops itself writes: never read back as input (the pager's own
# incident lines carry `severity` and would page forever). The one list, kept here.
ECHOOPS_OUTPUT_LOGS = frozenset(
    {
        "incidents.ndjson",
        "slo_budget.ndjson",
        "costs.ndjson",
        "scale.ndjson",
        "scheduler.ndjson",
        "portal_access.ndjson",
    }
)

# A CRITICAL line stamped longer ago than this is history, not an emergency: counted, not paged.
STALE_S = 24 * 3600
# Reader chunks (ndjson.CHUNK, 48 KiB) per transaction: ~384 KiB, a few ms of write lock.
# Short slices cost nothing measurable (a cold 60 MB read: 0.37 s at 8, 0.46 s at 682).
BATCHES_PER_TRANSACTION = 8
READ_CHUNK = ndjson.CHUNK


def input_logs(s: Settings) -> list[Path]:
    """The log files the pager reads: logs/*.ndjson minus echoops' own outputs."""
    return [p for p in sorted(s.log_dir.glob("*.ndjson")) if p.name not in ECHOOPS_OUTPUT_LOGS]


def _candidate(obj: dict[str, Any], stem: str) -> tuple[str, str, str] | str:
    """(msg, source, fingerprint) of a CRITICAL line, or the reason it is skipped.

    A log line is cut to raise_incident's limits and its control characters are replaced
    (U+FFFD; tab and newlines stay in msg) rather than refused: the page matters more.
    """
    msg = obj.get("msg")
    if not isinstance(msg, str) or not msg.strip():
        msg = obj.get("message")
    if not isinstance(msg, str) or not msg.strip():
        return "no_msg"
    msg = parsers.without_controls(msg, multiline=True)
    raw = msg.encode("utf-8", "replace")
    if len(raw) > model.MAX_MSG_BYTES:
        msg = raw[: model.MAX_MSG_BYTES].decode("utf-8", "ignore")
    source = obj.get("source")
    source = source.strip() if isinstance(source, str) and source.strip() else stem
    source = parsers.without_controls(source[: model.MAX_SOURCE_CHARS])
    fp = obj.get("fingerprint")
    if not (isinstance(fp, str) and fp.strip() and len(fp.strip()) <= model.MAX_FINGERPRINT_CHARS):
        fp = make_fingerprint(source, msg)
    return msg, source, parsers.without_controls(fp.strip())


def _fold(batch: list[dict], path: Path, now: float, groups: dict[str, list], reader, stats: LogIngest) -> None:
    """Add the CRITICAL lines of `batch` to `groups` (fingerprint -> incident item with count)."""
    for obj in batch:
        sev = obj.get("severity", obj.get("level"))
        if type(sev) is not str or sev.strip().upper() != "CRITICAL":
            continue
        ts = clock.parse_ts(obj.get("ts"))
        if ts is not None and ts < now - STALE_S:
            stats["stale"] += 1
            continue
        found = _candidate(obj, path.stem)
        if isinstance(found, str):
            reader.count_bad(found)
            continue
        msg, source, fp = found
        stats["critical"] += 1
        group = groups.get(fp)
        if group is None:
            groups[fp] = ["CRITICAL", msg, source, {"log": path.name}, fp, 1]
        else:
            group[5] += 1


def ingest(s: Settings, *, now: float) -> LogIngest:
    """Read new lines of every input log; returns counts, the incidents raised and `errors`:
    the logs that could not be read (`{"source", "error", "detail"}`), skipped while the
    others are read; a `page_run` event in incidents.ndjson names them too."""
    conn = model.db(s)
    stats: LogIngest = {
        "files": 0,
        "lines": 0,
        "critical": 0,
        "stale": 0,
        "bad": 0,
        "new_incidents": 0,
        "incidents": [],
        "errors": [],
    }
    for path in input_logs(s):
        try:
            if not ndjson.pending(conn, path, CONSUMER, listed=True):
                continue
            stats["files"] += 1
            _ingest_file(conn, s, path, now, stats)
        except ndjson.InputError as exc:  # the slice in progress rolled back; earlier ones stand
            stats["errors"].append(exc.as_dict())
    if stats["errors"]:
        ndjson.append(s.log_path(model.INCIDENTS_LOG), "page_run", now=now, input_errors=stats["errors"])
    return stats


def _ingest_file(conn: store.Conn, s: Settings, path: Path, now: float, stats: LogIngest) -> None:
    more = True
    while more:  # bounded slices: a cold read of a big log never holds the write lock long
        more = False
        groups: dict[str, list] = {}
        with store.transaction(conn):
            reader = ndjson.Reader(conn, path, CONSUMER, chunk=READ_CHUNK)
            for n, batch in enumerate(reader.batches(), start=1):
                _fold(batch, path, now, groups, reader, stats)
                if n >= BATCHES_PER_TRANSACTION:
                    more = True
                    break
            items = [tuple(g) for g in groups.values()]
            results, events, enqueued = inbox.store_incidents(conn, s, items, now=now)
            reader.commit(now)
        inbox.publish(s, events, enqueued, now=now)
        stats["lines"] += reader.lines
        stats["bad"] += sum(reader.bad.values())
        stats["incidents"].extend(results)
        stats["new_incidents"] += sum(1 for r in results if not r["deduped"])
