"""`echoops scale sample` (the scheduler's `* * * * *` job): read the queue source once and
append one sample to logs/queue.ndjson, the file `scale tick`, `status` and `simulate` read,
so every source gives the autoscaler the same input and a real history for backtests.

SCALE_QUEUE_SOURCE=file (the default): the app writes queue.ndjson itself; the job does
nothing. redis, rq, celery: see core/scale/sources/. A sample line is
`{"ts", "event": "queue_sample", "depth", "workers", "arrivals"?, "completed"?, "source", ...}`
(extra fields are what the source saw: busy/idle workers, per-queue depth, an `estimate` note
when workers or completions were not observed). When the source cannot see the workers the
sample carries the workers echoops knows (`workers_known: false`).

A source that cannot be read (Redis down, refused, timed out): no sample is written, a
`scale_sample_missed` event goes to scale.ndjson, the call raises SourceUnavailable (exit 1),
and the decision holds its workers until a sample succeeds again (policy rule 6). The third
miss in a row raises a WARNING incident (fingerprint `scale-source-down`); the first sample
after misses logs `scale_sample_recovered`.
"""

from __future__ import annotations

from typing import Any

import orjson

from echoops.core import clock, config, ndjson, store
from echoops.core.config import Settings
from echoops.core.scale import autoscaler
from echoops.core.scale.sources import SourceUnavailable, safe_url
from echoops.core.scale.types import ScaleSample

MISSES_TO_PAGE = 3


def _state(conn, source: str) -> tuple[dict[str, Any], int]:
    row = conn.execute("SELECT source, state, missed FROM scale_source WHERE id=1").fetchone()
    if row is None:
        return {}, 0
    # a different source's counters mean nothing to this one
    return (orjson.loads(row[1]) if row[0] == source else {}), row[2]


def _save(conn, source: str, state: dict[str, Any], missed: int, error: str | None, now: float, ok: bool) -> None:
    conn.execute(
        "INSERT INTO scale_source(id, source, state, missed, last_error, last_ok_at, last_attempt_at) "
        "VALUES(1,?,?,?,?,?,?) ON CONFLICT(id) DO UPDATE SET source=excluded.source, state=excluded.state, "
        "missed=excluded.missed, last_error=excluded.last_error, "
        "last_ok_at=COALESCE(excluded.last_ok_at, scale_source.last_ok_at), last_attempt_at=excluded.last_attempt_at",
        (source, orjson.dumps(state).decode(), missed, error, now if ok else None, now),
    )


def sample(*, s: Settings | None = None, now: float | None = None) -> ScaleSample:
    """Read SCALE_QUEUE_SOURCE once and append the sample to queue.ndjson (file source: nothing to do).

    Raises NotConfigured (exit 2) when the source lacks its settings, SourceUnavailable
    (exit 1) when it cannot be read; see the module doc for what a miss records.
    """
    s = s or config.settings()
    now = clock.now_s(now)
    kind = s.scale_queue_source
    if kind == "file":
        return {
            "source": "file",
            "written": False,
            "sample": None,
            "detail": "SCALE_QUEUE_SOURCE=file: the app appends its own samples to queue.ndjson",
            "missed_in_row": 0,
        }
    # lazy: the source modules import redis (and rq/celery) only for a Redis-backed source
    from echoops.core.scale import sources

    conn = autoscaler.store_conn(s)
    prev, missed = _state(conn, kind)
    try:
        reading, state = sources.read(s, prev)
    except SourceUnavailable as exc:
        missed += 1
        with store.transaction(conn):
            _save(conn, kind, prev, missed, exc.detail, now, ok=False)
        events = s.log_path("scale.ndjson")
        ndjson.append(events, "scale_sample_missed", now=now, source=kind, error=exc.detail, missed_in_row=missed)
        if missed == MISSES_TO_PAGE:
            from echoops.core.pager import raise_incident  # lazy: 40 ms, only on the third miss in a row

            incident = raise_incident(
                "WARNING",
                f"queue source {kind} unreadable: {missed} samples missed in a row; the autoscaler holds its workers",
                "scale",
                {"source": kind, "url": safe_url(s.scale_redis_url or ""), "error": exc.detail},
                "scale-source-down",
                now=now,
                s=s,
            )
            exc.detail += f"; incident {incident['id']}"
        raise
    line: dict[str, Any] = {"depth": reading.depth}
    if reading.workers is None:
        line["workers"] = autoscaler.known_workers(s, now)
        line["workers_known"] = False
    else:
        line["workers"] = reading.workers
    if reading.arrivals is not None:
        line["arrivals"] = reading.arrivals
    if reading.completed is not None:
        line["completed"] = reading.completed
    line["source"] = kind
    line.update(reading.extra)
    record = ndjson.append(s.log_path("queue.ndjson"), "queue_sample", now=now, **line)
    with store.transaction(conn):
        _save(conn, kind, state, 0, None, now, ok=True)
    if missed:
        ndjson.append(s.log_path("scale.ndjson"), "scale_sample_recovered", now=now, source=kind, missed=missed)
    return {"source": kind, "written": True, "sample": record, "detail": "", "missed_in_row": 0}
