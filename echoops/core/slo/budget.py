"""SLOs and error budgets: tick (ingest, windows, state, gate, outputs), status, rebaseline, gate.

Windows are whole minutes covering [now - W, now) (the minute holding `now` counts when
`now` is inside it), computed from the events' own timestamps; a rebaseline instant R
(stored) moves every window's start to the first whole minute at or after R; nothing is
deleted. Budget maths and state rules live in `rules`; aggregates and the sketch in
`aggregates` and `sketch`; the deploy-gate flag in `deploy_gate`.

Outputs of each tick: `slo_status.json` (atomic; the same document as `status()` and
`GET /api/slo/status`), one `slo_tick` event in `slo_budget.ndjson`, a row in `slo_ticks`
(the `history`; the first tick of a day without ticks replays the previous 24h from the
aggregates every 15 minutes, marked `backfilled`), and, when the gate condition holds with
no flag and no operator override standing (`deploy_gate.apply`), `deploy_gate.flag` plus
one CRITICAL incident. A transition into red raises a CRITICAL incident (the pager dedups).
"""

from __future__ import annotations

import hashlib
import math
import os
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from echoops.core import clock, config, files, ndjson, store
from echoops.core.config import Settings
from echoops.core.errors import ValidationError
from echoops.core.slo import aggregates, deploy_gate, document, sources
from echoops.core.slo.deploy_gate import (  # re-exported: slo.gate() etc. are the public names
    BUDGET_LOG,
    GATE_FLAG,
    DeployGateSet,
    clear_gate,
    gate,
    gate_path,
    require_gate_open,
    validate_reason,
)
from echoops.core.slo.document import SourceUnavailable
from echoops.core.slo.types import HistoryPoint, Rebaselined, RequestIngest, SloDocument, SloStatus, SloTick

__all__ = [
    "GATE_FLAG",
    "DeployGateSet",
    "SourceUnavailable",
    "clear_gate",
    "compute",
    "gate",
    "gate_path",
    "rebaseline",
    "recent_p95_ms",
    "require_gate_open",
    "status",
    "status_snapshot",
    "tick",
]

if TYPE_CHECKING:
    from echoops.core.pager.types import Raised

STATUS_FILE = "slo_status.json"
HISTORY_POINTS = 288
BACKFILL_STEP_S = 900


# --- meta -------------------------------------------------------------------------------


_meta = aggregates.meta
_set_meta = aggregates.set_meta


def _rebaseline_minute(conn: store.Conn) -> tuple[float | None, int | None]:
    raw = _meta(conn, "rebaseline_at")
    if raw is None:
        return None, None
    at = float(raw)
    return at, math.ceil(at / 60)


# --- the computation ----------------------------------------------------------------------


def compute(s: Settings, *, now: float, source: sources.Source | None = None) -> SloDocument:
    """The SLO document (without `gate` and `history`) as of `now`, from `source` (default: the one
    SLO_SOURCE names; the request logs' stored aggregates, or Prometheus). SourceUnavailable when
    the source cannot answer."""
    source = source or sources.for_settings(s)
    rb_at, _ = _rebaseline_minute(aggregates.db(s))
    doc = document.build(s, source.figures(s, now=now, rebaseline_at=rb_at), now=now, rebaseline_at=rb_at)
    if source.name != sources.FilesSource.name:
        doc["source"] = source.name
    return doc


# --- tick / status --------------------------------------------------------------------------


_TICK_COLUMNS = ("state", "p95_ms", "p99_ms", "error_rate", "burn_1h", "burn_24h", "remaining_budget_pct")


def _tick_row(ts: float, doc: SloDocument, backfilled: bool) -> tuple:
    return (
        ts,
        doc["state"],
        doc["p95_ms"],
        doc["p99_ms"],
        doc["error_rate"],
        doc["burn"]["1h"],
        doc["burn"]["24h"],
        doc["remaining_budget_pct"],
        int(backfilled),
    )


_INSERT_TICK = (
    f"INSERT INTO slo_ticks(ts, {', '.join(_TICK_COLUMNS)}, backfilled) VALUES(?,?,?,?,?,?,?,?,?) "
    f"ON CONFLICT(ts) DO UPDATE SET {', '.join(f'{c}=excluded.{c}' for c in (*_TICK_COLUMNS, 'backfilled'))}"
)


def _history(conn: store.Conn) -> list[HistoryPoint]:
    last = conn.execute("SELECT max(ts) FROM slo_ticks").fetchone()[0]
    if last is None:
        return []
    rows = conn.execute(
        f"SELECT ts, {', '.join(_TICK_COLUMNS)}, backfilled FROM slo_ticks WHERE ts > ? ORDER BY ts",
        (last - 86400,),
    ).fetchall()
    if len(rows) > HISTORY_POINTS:
        step = len(rows) / HISTORY_POINTS
        picked = [rows[int(i * step)] for i in range(HISTORY_POINTS - 1)]
        rows = picked + [rows[-1]]
    return [
        {
            "ts": clock.iso(r[0]),
            "state": r[1],
            "p95_ms": r[2],
            "p99_ms": r[3],
            "error_rate": r[4],
            "burn_1h": r[5],
            "burn_24h": r[6],
            "remaining_budget_pct": r[7],
            "backfilled": bool(r[8]),
        }
        for r in rows
    ]


def _backfill(conn: store.Conn, s: Settings, now: float) -> int:
    """With no tick recorded in the 24h before `now`, replay the SLO every 15 minutes of that day
    from the stored aggregates (points marked `backfilled`), so the sparklines have a past at once."""
    if conn.execute("SELECT 1 FROM slo_ticks WHERE ts > ? AND ts < ? LIMIT 1", (now - 86400, now)).fetchone():
        return 0
    first = conn.execute(
        "SELECT min(minute) FROM slo_minute WHERE minute >= ? AND total > 0", (int((now - 86400) // 60),)
    ).fetchone()[0]
    if first is None:
        return 0
    rows = []
    files_source = sources.FilesSource()
    t = math.floor((now - 86400) / BACKFILL_STEP_S) * BACKFILL_STEP_S + BACKFILL_STEP_S
    while t < now:
        if t > first * 60:
            rows.append(_tick_row(t, compute(s, now=t, source=files_source), True))
        t += BACKFILL_STEP_S
    with store.transaction(conn):
        conn.executemany(_INSERT_TICK, rows)
    return len(rows)


def _finish(conn: store.Conn, s: Settings, doc: SloDocument, now: float, history: bool = True) -> SloStatus:
    past = _history(conn) if history else []
    return {**doc, "gate": {**gate(s=s, now=now), "condition": doc["gate_condition"]}, "history": past}


def status(*, s: Settings | None = None, now: float | None = None, history: bool = True) -> SloStatus:
    """The SLO status as of the last tick (the `GET /api/slo/status` body), gate read live.

    Before the first tick it is computed from whatever is stored (request logs), or shows no
    traffic (Prometheus: a status read never queries it), with a note saying so. `history=False`
    leaves `history` empty (GET /metrics has no use for the sparklines' points).
    """
    s = s or config.settings()
    conn = aggregates.db(s)
    raw = _meta(conn, "status")
    doc: SloDocument
    if raw is None:
        doc = _first(conn, s, clock.now_s(now))
        doc["updated_at"] = None
        doc["notes"] = ["no tick has run yet: run `echoops slo tick`", *doc["notes"]]
    else:
        doc = orjson.loads(raw)
    return _finish(conn, s, doc, clock.now_s(now), history)


def ingest(*, s: Settings | None = None, now: float | None = None) -> RequestIngest:
    """Fold this host's new request-log lines into the per-minute aggregates, nothing more (no
    status, gate or page): `echoops slo ingest`, the `@local` job of every host sharing a
    PostgreSQL store. The leader's `slo tick` then computes over every host's minutes."""
    s = s or config.settings()
    return sources.for_settings(s).ingest(s, now=clock.now_s(now))


@dataclass(frozen=True)
class StatusSnapshot:
    """The status document as served over HTTP, computed once per change of what it is made of."""

    doc: SloStatus
    body: bytes  # the JSON `GET /api/slo/status` sends
    etag: str  # quoted, a hash of `body`: the same in every process for the same document
    modified: float  # epoch seconds: the last tick, override or change of the flag file


# per log dir, in this process: (the flag file's path, the key the snapshot was made at, it,
# the store's change stamp taken before that key was read)
_snapshots: dict[Any, tuple[str, tuple | None, StatusSnapshot | None, tuple | None]] = {}
_snapshot_lock = threading.Lock()
_KEY_SQL = (
    "SELECT (SELECT value FROM slo_meta WHERE key='status_version'), "
    "(SELECT value FROM slo_meta WHERE key='gate_override'), (SELECT value FROM slo_meta WHERE key='gate_flag')"
)


def _status_key(conn: store.Conn, flag_path: str) -> tuple | None:
    """What the status document is made of, cheaply: the tick's version (the stored document and
    the history), the operator's override, the flag this process wrote and the flag file's
    identity; None before the first tick (the document is then computed for `now`)."""
    row = tuple(conn.execute(_KEY_SQL).fetchone())
    if row[0] is None:
        return None
    return (*row, _flag_id(flag_path))


def _flag_id(flag_path: str) -> tuple | None:
    """The flag file's identity (None when there is none): an operator may touch it by hand."""
    if not os.access(flag_path, os.F_OK):  # the usual answer, without an exception to build
        return None
    try:
        st = os.stat(flag_path)
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def status_snapshot(*, s: Settings | None = None, now: float | None = None) -> StatusSnapshot:
    """`status()`, served from this process's cache while nothing it is made of has changed
    (`GET /api/slo/status` sends its body, ETag and Last-Modified): two stats a request while
    nothing was committed to the store (store.change_stamp), else one indexed query and a stat.
    Before the first tick it is computed each time."""
    s = s or config.settings()
    conn = aggregates.db(s)
    entry = _snapshots.get(s.log_dir)
    flag_path = entry[0] if entry is not None else str(gate_path(s))
    stamp = store.change_stamp(conn)  # before the key is read: a later commit moves it
    if entry is not None and stamp is not None and entry[3] == stamp:
        _, made_at, cached, _ = entry
        if cached is not None and made_at is not None and made_at[-1] == _flag_id(flag_path):
            return cached  # nothing committed since its key was read, and the flag file unmoved
    key = _status_key(conn, flag_path)
    if key is not None and entry is not None and entry[1] == key and entry[2] is not None:
        if stamp != entry[3]:
            with _snapshot_lock:
                _snapshots[s.log_dir] = (flag_path, key, entry[2], stamp)
        return entry[2]
    doc = status(s=s, now=now)
    body = files.dumps(doc)
    override = doc["gate"]["override"]
    modified = max(
        clock.parse_ts(doc["updated_at"]) or 0.0,
        (clock.parse_ts(override["since"]) or 0.0) if override else 0.0,
        key[3][2] / 1e9 if key is not None and key[3] is not None else 0.0,
    )
    snap = StatusSnapshot(doc, body, f'"{hashlib.blake2b(body, digest_size=12).hexdigest()}"', modified)
    # Kept only when nothing changed while it was computed (status() may itself record an override).
    kept = snap if key is not None and _status_key(conn, flag_path) == key else None
    with _snapshot_lock:
        _snapshots[s.log_dir] = (flag_path, key, kept, stamp)
    return snap


def tick(*, s: Settings | None = None, now: float | None = None) -> SloTick:
    """Ingest new request lines, recompute every window, update state/gate, write the outputs.

    Returns `{"status": <status document>, "ingest": {...}, "gate_set": bool, "incident": dict|None}`
    (plus `source: {name, queries, duration_ms}` with SLO_SOURCE=prometheus). When the source
    cannot answer, the last good status is kept, marked `stale`, the gate is left as it is, a
    WARNING incident is raised, and SourceUnavailable (503 / exit 1) says why.
    """
    s = s or config.settings()
    now = clock.now_s(now)
    source = sources.for_settings(s)
    report = source.ingest(s, now=now)
    conn = aggregates.db(s)
    aggregates.prune(conn, s, now=now)
    if source.backfills:
        _backfill(conn, s, now)
    try:
        doc = compute(s, now=now, source=source)
    except SourceUnavailable as exc:
        _keep_stale(conn, s, exc, source.name, now)
        raise
    info = deploy_gate.apply(s, doc, now)
    gate_set = info is not None
    with store.transaction(conn):
        previous = _meta(conn, "state")
        _set_meta(conn, "state", doc["state"])
        _set_meta(conn, "status", orjson.dumps(doc).decode())
        # a new version of the status document for `status_snapshot` (the history changed too)
        # ("<n>:<now>", n counting up; read and written under the transaction's lock)
        version = _meta(conn, "status_version")
        count = int(version.split(":", 1)[0]) + 1 if version and version.split(":", 1)[0].isdigit() else 1
        _set_meta(conn, "status_version", f"{count}:{now!r}")
        conn.execute(_INSERT_TICK, _tick_row(now, doc, False))
    incident = None
    meta = {k: doc[k] for k in ("state", "p95_ms", "error_rate", "burn", "remaining_budget_pct", "burn_alert")}
    if info is not None:
        # One page for the tick that both turns red and sets the gate.
        incident = _raise(s, f"SLO deploy gate set: {info['reason']}", {**meta, "gate": info}, "slo:deploy_gate", now)
    elif doc["state"] == "red" and previous != "red":
        incident = _raise(s, "SLO state red: " + "; ".join(doc["reasons"][:3]), meta, "slo:red", now)
    full = _finish(conn, s, doc, now)
    files.write_json(s.log_path(STATUS_FILE), full)
    source_report = source.report()
    extra: dict[str, Any] = {}
    if source_report is not None:
        extra = {"source": source_report["name"], "queries": source_report["queries"]}
    resolved = _resolve_over(s, doc["state"], full["gate"]["set"], now)
    ndjson.append(
        s.log_path(BUDGET_LOG),
        "slo_tick",
        now=now,
        p95=doc["p95_ms"],
        p99=doc["p99_ms"],
        err_rate=doc["error_rate"],
        burn=doc["burn"]["24h"],
        burn_windows=doc["burn"],
        period=doc["period"],
        state=doc["state"],
        burn_alert=doc["burn_alert"],
        remaining_budget_pct=doc["remaining_budget_pct"],
        requests=doc["requests"],
        lines=report["lines"],
        bad=report["bad"],
        bad_reasons=report["bad_reasons"],
        too_old=report["too_old"],
        input_errors=report["errors"],
        gate_set=gate_set,
        gate=full["gate"]["set"],
        incident=None if incident is None else incident["id"],
        resolved=resolved,
        **extra,
    )
    result: SloTick = {
        "status": full,
        "ingest": report,
        "gate_set": gate_set,
        "incident": incident,
        "resolved": resolved,
    }
    if source_report is not None:
        result["source"] = source_report
    return result


def _first(conn: store.Conn, s: Settings, now: float) -> SloDocument:
    """The document before any tick: stored aggregates (request logs), or no traffic (Prometheus)."""
    source = sources.for_settings(s)
    if source.backfills:
        return compute(s, now=now, source=source)
    rb_at, _ = _rebaseline_minute(conn)
    doc = document.build(s, document.empty(), now=now, rebaseline_at=rb_at)
    doc["source"] = source.name
    return doc


def _keep_stale(conn: store.Conn, s: Settings, exc: SourceUnavailable, source: str, now: float) -> None:
    """The source failed: keep the last good status, mark it stale, log and raise a WARNING incident.

    Neither the state nor the deploy gate changes: an outage of the source is not a recovery."""
    raw = _meta(conn, "status")
    if raw is None:
        doc = _first(conn, s, now)
        doc["updated_at"] = None
        doc["notes"] = ["no tick has succeeded yet", *doc["notes"]]
    else:
        doc = orjson.loads(raw)
    before = doc.get("stale")
    doc["source"] = source
    doc["stale"] = {
        "since": before["since"] if before else clock.iso(now),
        "error": exc.detail,
        "last_good_at": doc["updated_at"],
        "failed_ticks": (before["failed_ticks"] if before else 0) + 1,
    }
    with store.transaction(conn):
        _set_meta(conn, "status", orjson.dumps(doc).decode())
    full = _finish(conn, s, doc, now)
    files.write_json(s.log_path(STATUS_FILE), full)
    from echoops.core.pager import raise_incident  # lazy: ~20 ms that `slo status`/`slo gate` never need

    incident = raise_incident(
        "WARNING",
        f"SLO source {source} unavailable: {exc.detail}",
        "slo",
        {"source": source, "stale_since": doc["stale"]["since"], "last_good_at": doc["updated_at"]},
        "slo:source",
        now=now,
        s=s,
    )
    ndjson.append(
        s.log_path(BUDGET_LOG),
        "slo_source_error",
        now=now,
        source=source,
        error=exc.detail,
        stale_since=doc["stale"]["since"],
        last_good_at=doc["updated_at"],
        failed_ticks=doc["stale"]["failed_ticks"],
        gate=full["gate"]["set"],
        incident=incident["id"],
    )


def _raise(s: Settings, msg: str, meta: dict[str, Any], fingerprint: str, now: float) -> Raised:
    from echoops.core.pager import raise_incident  # lazy: ~20 ms that `slo status`/`slo gate` never need

    return raise_incident("CRITICAL", msg, "slo", meta, fingerprint, now=now, s=s)


def _resolve_over(s: Settings, state: str, gate_set: bool, now: float) -> list[str]:
    """Resolve the SLO's incidents whose problem is over (the pager's auto-resolve: nothing when
    none is open): `slo:red` once the state is back to green or yellow, `slo:deploy_gate` once
    the gate is clear. Returns the ids of the incidents resolved."""
    from echoops.core.pager import auto_resolve  # lazy: ~20 ms that `slo status`/`slo gate` never need

    done = []
    if state != "red":
        result = auto_resolve("slo:red", by="auto:slo", note=f"SLO back to {state}", s=s, now=now)
        done += [result["id"]] if result else []
    if not gate_set:
        result = auto_resolve("slo:deploy_gate", by="auto:slo", note="deploy gate cleared", s=s, now=now)
        done += [result["id"]] if result else []
    return done


def rebaseline(reason: object = None, *, s: Settings | None = None, now: float | None = None) -> Rebaselined:
    """Restart every window at `now` (older data excluded from then on, nothing deleted); logs it, ticks."""
    s = s or config.settings()
    now = clock.now_s(now)
    text = validate_reason(reason, required=False)
    conn = aggregates.db(s)
    with store.transaction(conn):
        _set_meta(conn, "rebaseline_at", repr(now))
    ndjson.append(s.log_path(BUDGET_LOG), "slo_rebaseline", now=now, reason=text, rebaseline_at=clock.iso(now))
    result = tick(s=s, now=now)
    return {"rebaseline_at": clock.iso(now), "reason": text, "status": result["status"]}


def recent_p95_ms(*, s: Settings | None = None, now: float | None = None, minutes: int = 15) -> float | None:
    """p95 latency (ms) over the last `minutes` minutes (ingests new lines first); None without traffic.

    Not clipped by a rebaseline: it describes the service now, not the SLO windows. With
    SLO_SOURCE=prometheus it asks Prometheus (at most once a minute per process; None when
    Prometheus cannot answer).
    """
    s = s or config.settings()
    if isinstance(minutes, bool) or not isinstance(minutes, int) or not 1 <= minutes <= 1440:
        raise ValidationError("minutes must be a whole number from 1 to 1440", field="minutes")
    value = sources.for_settings(s).recent_p95_ms(s, now=clock.now_s(now), minutes=minutes)
    return None if value is None else round(value, 2)
