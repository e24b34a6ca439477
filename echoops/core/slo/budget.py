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
import sqlite3
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from echoops.core import clock, config, files, ndjson, store
from echoops.core.config import Settings
from echoops.core.errors import ValidationError
from echoops.core.slo import aggregates, deploy_gate, rules, sketch
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
from echoops.core.slo.types import HistoryPoint, Rebaselined, SloDocument, SloStatus, SloTick, Window

__all__ = [
    "GATE_FLAG",
    "DeployGateSet",
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


def _rebaseline_minute(conn: sqlite3.Connection) -> tuple[float | None, int | None]:
    raw = _meta(conn, "rebaseline_at")
    if raw is None:
        return None, None
    at = float(raw)
    return at, math.ceil(at / 60)


# --- the computation ----------------------------------------------------------------------


def _r(x: float | None, digits: int) -> float | None:
    return None if x is None else round(x, digits)


def compute(s: Settings, *, now: float) -> SloDocument:
    """The SLO document (without `gate` and `history`) from stored aggregates as of `now`."""
    conn = aggregates.db(s)
    cur = aggregates.last_minute(now)
    rb_at, rb_min = _rebaseline_minute(conn)
    budget_minutes = s.slo_window_days * 1440
    span = max(budget_minutes, max(rules.WINDOWS.values()))
    floor = cur - span + 1 if rb_min is None else max(cur - span + 1, rb_min)
    wins = aggregates.Windows(conn, floor, cur)
    budget = s.slo_err_budget_pct
    minimum = s.slo_min_requests

    def start(minutes: int) -> int:
        return max(cur - minutes + 1, floor)

    windows: dict[str, Window] = {}
    for name, minutes in rules.WINDOWS.items():
        t, e, sl = wins.sums(start(minutes), cur)
        windows[name] = {
            "requests": t,
            "errors": e,
            "slow": sl,
            "error_rate": round(rules.ratio(e, t), 6),
            "burn": round(rules.burn_rate(e, t, budget), 4),
            "enough_traffic": t >= minimum,
        }
    cuts = []
    for i in reversed(range(rules.GATE_SLICES)):  # oldest first
        hi = cur - i * rules.GATE_SLICE_MIN
        lo = hi - rules.GATE_SLICE_MIN + 1
        t, e, _ = wins.sums(max(lo, floor), hi)
        cuts.append((t, e))
    slices = rules.judge_slices(cuts, budget, minimum)
    bt, be, _ = wins.sums(start(budget_minutes), cur)
    remaining = round(rules.remaining_budget_pct(be, bt, budget), 3)
    period = windows[rules.PERIOD]
    p95, p99 = sketch.quantiles(wins.merged(start(rules.WINDOWS[rules.PERIOD]), cur), (0.95, 0.99))
    p95, p99 = _r(p95, 2), _r(p99, 2)
    verdict = rules.evaluate(
        windows,
        p95_ms=p95,
        period_enough=period["enough_traffic"],
        remaining_pct=remaining,
        budget_enough=bt >= minimum,
        target_ms=s.slo_lat_p95_ms,
        slices=slices,
    )
    notes: list[str] = []
    thin = [name for name, w in windows.items() if not w["enough_traffic"]]
    if thin:
        notes.append(
            f"insufficient traffic (< {minimum} requests) in {', '.join(thin)}: those windows raise no burn alarm"
        )
    if bt < minimum:
        notes.append(f"insufficient traffic in the {s.slo_window_days}d budget window: the budget is not judged")
    if not period["enough_traffic"]:
        notes.append(f"insufficient traffic in {rules.PERIOD}: p95 is not judged against the target")
    return {
        "state": verdict["state"],
        "reasons": verdict["reasons"],
        "p95_ms": p95,
        "p99_ms": p99,
        "error_rate": period["error_rate"],
        "period": rules.PERIOD,
        "requests": period["requests"],
        "errors": period["errors"],
        "remaining_budget_pct": remaining,
        "budget": {
            "window": f"{s.slo_window_days}d",
            "requests": bt,
            "errors": be,
            "allowed_errors": round(budget / 100.0 * bt, 3),
            "remaining_budget_pct": remaining,
        },
        "burn_alert": verdict["burn_alert"],
        "alerts": verdict["alerts"],
        "burn": {name: w["burn"] for name, w in windows.items()},
        "windows": windows,
        "gate_condition": verdict["gate_condition"],
        "gate_slices_burning": slices["burning"],
        "gate_slices": slices,
        "target": {
            "p95_ms": s.slo_lat_p95_ms,
            "error_budget_pct": budget,
            "window_days": s.slo_window_days,
            "min_requests": minimum,
        },
        "rebaseline_at": None if rb_at is None else clock.iso(rb_at),
        "notes": notes,
        "updated_at": clock.iso(now),
    }


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


_INSERT_TICK = f"INSERT OR REPLACE INTO slo_ticks(ts, {', '.join(_TICK_COLUMNS)}, backfilled) VALUES(?,?,?,?,?,?,?,?,?)"


def _history(conn: sqlite3.Connection) -> list[HistoryPoint]:
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


def _backfill(conn: sqlite3.Connection, s: Settings, now: float) -> int:
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
    t = math.floor((now - 86400) / BACKFILL_STEP_S) * BACKFILL_STEP_S + BACKFILL_STEP_S
    while t < now:
        if t > first * 60:
            rows.append(_tick_row(t, compute(s, now=t), True))
        t += BACKFILL_STEP_S
    with store.transaction(conn):
        conn.executemany(_INSERT_TICK, rows)
    return len(rows)


def _finish(conn: sqlite3.Connection, s: Settings, doc: SloDocument, now: float) -> SloStatus:
    return {**doc, "gate": {**gate(s=s, now=now), "condition": doc["gate_condition"]}, "history": _history(conn)}


def status(*, s: Settings | None = None, now: float | None = None) -> SloStatus:
    """The SLO status as of the last tick (the `GET /api/slo/status` body), gate read live.

    Before the first tick it is computed from whatever is stored, with a note saying so.
    """
    s = s or config.settings()
    conn = aggregates.db(s)
    raw = _meta(conn, "status")
    doc: SloDocument
    if raw is None:
        doc = compute(s, now=clock.now_s(now))
        doc["updated_at"] = None
        doc["notes"] = ["no tick has run yet: run `echoops slo tick`", *doc["notes"]]
    else:
        doc = orjson.loads(raw)
    return _finish(conn, s, doc, clock.now_s(now))


@dataclass(frozen=True)
class StatusSnapshot:
    """The status document as served over HTTP, computed once per change of what it is made of."""

    doc: SloStatus
    body: bytes  # the JSON `GET /api/slo/status` sends
    etag: str  # quoted, a hash of `body`: the same in every process for the same document
    modified: float  # epoch seconds: the last tick, override or change of the flag file


# per log dir, in this process: (the flag file's path, the key the snapshot was made at, it)
_snapshots: dict[Any, tuple[str, tuple | None, StatusSnapshot | None]] = {}
_snapshot_lock = threading.Lock()
_KEY_SQL = (
    "SELECT (SELECT value FROM slo_meta WHERE key='status_version'), "
    "(SELECT value FROM slo_meta WHERE key='gate_override'), (SELECT value FROM slo_meta WHERE key='gate_flag')"
)


def _status_key(conn: sqlite3.Connection, flag_path: str) -> tuple | None:
    """What the status document is made of, cheaply: the tick's version (the stored document and
    the history), the operator's override, the flag this process wrote and the flag file's
    identity; None before the first tick (the document is then computed for `now`)."""
    row = tuple(conn.execute(_KEY_SQL).fetchone())
    if row[0] is None:
        return None
    try:
        st = os.stat(flag_path)
        flag: tuple | None = (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    except FileNotFoundError:
        flag = None
    return (*row, flag)


def status_snapshot(*, s: Settings | None = None, now: float | None = None) -> StatusSnapshot:
    """`status()`, served from this process's cache while nothing it is made of has changed
    (one indexed query and a stat a request; `GET /api/slo/status` sends its body, ETag and
    Last-Modified). Before the first tick it is computed each time."""
    s = s or config.settings()
    conn = aggregates.db(s)
    entry = _snapshots.get(s.log_dir)
    flag_path = entry[0] if entry is not None else str(gate_path(s))
    key = _status_key(conn, flag_path)
    if key is not None and entry is not None and entry[1] == key and entry[2] is not None:
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
        _snapshots[s.log_dir] = (flag_path, key, kept)
    return snap


def tick(*, s: Settings | None = None, now: float | None = None) -> SloTick:
    """Ingest new request lines, recompute every window, update state/gate, write the outputs.

    Returns `{"status": <status document>, "ingest": {...}, "gate_set": bool, "incident": dict|None}`.
    """
    s = s or config.settings()
    now = clock.now_s(now)
    report = aggregates.ingest(s, now=now)
    conn = aggregates.db(s)
    aggregates.prune(conn, s, now=now)
    _backfill(conn, s, now)
    doc = compute(s, now=now)
    info = deploy_gate.apply(s, doc, now)
    gate_set = info is not None
    with store.transaction(conn):
        previous = _meta(conn, "state")
        _set_meta(conn, "state", doc["state"])
        _set_meta(conn, "status", orjson.dumps(doc).decode())
        # a new version of the status document for `status_snapshot` (the history changed too)
        conn.execute(
            "INSERT INTO slo_meta(key, value) VALUES('status_version', ?) ON CONFLICT(key) "
            "DO UPDATE SET value = (CAST(value AS INTEGER) + 1) || ':' || excluded.value",
            (f"1:{now!r}",),
        )
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
    )
    return {"status": full, "ingest": report, "gate_set": gate_set, "incident": incident}


def _raise(s: Settings, msg: str, meta: dict[str, Any], fingerprint: str, now: float) -> Raised:
    from echoops.core.pager import raise_incident  # lazy: ~20 ms that `slo status`/`slo gate` never need

    return raise_incident("CRITICAL", msg, "slo", meta, fingerprint, now=now, s=s)


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

    Not clipped by a rebaseline: it describes the service now, not the SLO windows.
    """
    s = s or config.settings()
    if isinstance(minutes, bool) or not isinstance(minutes, int) or not 1 <= minutes <= 1440:
        raise ValidationError("minutes must be a whole number from 1 to 1440", field="minutes")
    now = clock.now_s(now)
    aggregates.ingest(s, now=now)
    cur = aggregates.last_minute(now)
    wins = aggregates.Windows(aggregates.db(s), cur - minutes + 1, cur)
    return _r(sketch.quantiles(wins.merged(cur - minutes + 1, cur), (0.95,))[0], 2)
