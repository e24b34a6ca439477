"""Predictive worker autoscale: ingest queue samples, decide, log, and (real mode) actuate.

Signals: `logs/queue.ndjson` read incrementally (consumer "scale") into a rolling
forecaster state (`forecast`), p95 latency from the SLO core, the deploy gate flag.
The decision is `policy.decide`, the same function `scale simulate` replays.

`actual`: the workers of the latest queue sample (SCALE_MIN before any sample), except
that a successful actuation newer than that sample wins until a later sample arrives.
Dry run (SCALE_DRY_RUN=true, the default) decides, logs and reports; it never runs the
actuator and never starts a cooldown. Real mode runs SCALE_CMD ({n} = target workers, no
shell, SCALE_CMD_TIMEOUT_S) and records the new `actual` only when it exits 0; a failure
leaves `actual` as it was and raises a WARNING incident.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import orjson

from echoops.core import clock, config, files, ndjson, parsers, store
from echoops.core.config import Settings
from echoops.core.errors import EchoopsError, NotConfigured, ValidationError
from echoops.core.scale.forecast import Forecaster, parse_sample, project_backlog
from echoops.core.scale.policy import Decision, PolicyConfig, decide
from echoops.core.scale.types import (
    Actuator,
    Context,
    HistoryPoint,
    ProjectionPoint,
    QueueIngest,
    ScaleApplied,
    ScaleStatus,
    SourceHealth,
)
from echoops.core.types import UnreadableInput

SCHEMA = store.Schema(
    "scale",
    (
        """
        CREATE TABLE scale_state (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            forecaster TEXT NOT NULL,
            bad INTEGER NOT NULL DEFAULT 0,
            applied_workers INTEGER,
            applied_at REAL,
            updated_at REAL NOT NULL
        );
        CREATE TABLE scale_decisions (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            ts REAL NOT NULL,
            desired INTEGER NOT NULL,
            recommended INTEGER NOT NULL,
            target INTEGER NOT NULL,
            actual INTEGER NOT NULL,
            backlog INTEGER NOT NULL,
            action TEXT NOT NULL,
            dry_run INTEGER NOT NULL,
            applied INTEGER NOT NULL,
            reason TEXT NOT NULL
        );
        CREATE INDEX scale_decisions_ts ON scale_decisions(ts);
        """,
        """
        CREATE TABLE scale_source (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            source TEXT NOT NULL,
            state TEXT NOT NULL,
            missed INTEGER NOT NULL DEFAULT 0,
            last_error TEXT,
            last_ok_at REAL,
            last_attempt_at REAL
        );
        """,
    ),
)

CONSUMER = "scale"
HISTORY = 48  # decisions in status (8 hours at the scheduler's 10 minutes)
P95_WINDOW_MIN = 15  # the latency the policy reacts to: the last 15 minutes (the SLO card shows 24 h)


class ActuatorFailed(EchoopsError):
    """SCALE_CMD exited non-zero, timed out or could not start; `actual` is unchanged."""

    code = "actuator_failed"
    status = 502
    exit_code = 1


def _conn(s: Settings):
    return store.db(s, SCHEMA)


def store_conn(s: Settings):
    """The store connection with the scale tables (the sampler keeps its source state there)."""
    return _conn(s)


def _load(conn, s: Settings) -> tuple[Forecaster, int, int | None, float | None]:
    """The stored forecaster, set to SCALE_FORECAST and SCALE_HORIZON_MIN (a change of either
    keeps the learnt level, trend and profiles)."""
    row = conn.execute("SELECT forecaster, bad, applied_workers, applied_at FROM scale_state WHERE id=1").fetchone()
    if row is None:
        return Forecaster().configure(s.scale_forecast, s.scale_horizon_min), 0, None, None
    fc = Forecaster.from_dict(orjson.loads(row[0])).configure(s.scale_forecast, s.scale_horizon_min)
    return fc, row[1], row[2], row[3]


def _save(conn, fc: Forecaster, bad: int, now: float) -> None:
    conn.execute(
        "INSERT INTO scale_state(id, forecaster, bad, updated_at) VALUES(1,?,?,?) ON CONFLICT(id) DO UPDATE SET "
        "forecaster=excluded.forecaster, bad=excluded.bad, updated_at=excluded.updated_at",
        (orjson.dumps(fc.to_dict()).decode(), bad, now),
    )


def ingest(*, s: Settings | None = None, now: float | None = None) -> QueueIngest:
    """Read new queue samples into the forecaster; returns what this call read:
    `{"samples", "bad", "bad_reasons", "events", "errors"}`.

    A sample stamped after now + clock.MAX_SKEW_S is bad (`future`), so the latest sample is
    the latest at or before now. An unreadable queue.ndjson is reported in `errors`
    (`{"source", "error", "detail"}`) and the decision goes on from the stored state.
    """
    s = s or config.settings()
    now = clock.now_s(now)
    conn = _conn(s)
    path = s.log_path("queue.ndjson")
    report: QueueIngest = {"samples": 0, "bad": 0, "bad_reasons": {}, "events": [], "errors": []}
    try:
        if not ndjson.pending(conn, path, CONSUMER):
            return report
        fallback = s.scale_jobs_per_worker_min
        with store.transaction(conn):
            fc, bad_total, _, _ = _load(conn, s)
            reader = ndjson.Reader(conn, path, CONSUMER)
            taken = 0
            for batch in reader.batches():
                for obj in batch:
                    parsed = parse_sample(obj, now)
                    if isinstance(parsed, str):
                        reader.count_bad(parsed)
                    elif fc.observe(*parsed, fallback):
                        taken += 1
                    else:
                        reader.count_bad("out_of_order")
            bad = sum(reader.bad.values())
            _save(conn, fc, bad_total + bad, now)
            reader.commit(now)
    except ndjson.InputError as exc:
        report["errors"].append(exc.as_dict())
        return report
    report["samples"], report["bad"] = taken, bad
    report["bad_reasons"], report["events"] = dict(reader.bad), list(reader.events)
    return report


def known_workers(s: Settings, now: float | None = None) -> int:
    """The workers echoops believes run now: the last applied count when newer than the last
    sample, else the last sample's, else SCALE_MIN (what a sample carries when its source
    cannot see the workers)."""
    conn = _conn(s)
    ingest(s=s, now=now)
    fc, _, applied, applied_at = _load(conn, s)
    return _actual(s, fc, applied, applied_at)[0]


def source_health(conn, s: Settings) -> SourceHealth:
    """How the queue source has answered `scale sample` (file: the app writes the samples)."""
    row = conn.execute("SELECT missed, last_error, last_ok_at, last_attempt_at FROM scale_source WHERE id=1").fetchone()
    missed, error, ok_at, attempt_at = row if row else (0, None, None, None)
    if s.scale_queue_source == "file":
        missed, error = 0, None
    return {
        "kind": s.scale_queue_source,
        "missed_in_row": missed,
        "last_error": error,
        "last_ok_at": None if ok_at is None else clock.iso(ok_at),
        "last_attempt_at": None if attempt_at is None else clock.iso(attempt_at),
    }


def _actual(s: Settings, fc: Forecaster, applied: int | None, applied_at: float | None) -> tuple[int, str]:
    if applied is not None and applied_at is not None and (fc.last_ts is None or applied_at >= fc.last_ts):
        return applied, "applied"
    if fc.last_ts is not None:
        return fc.workers, "sample"
    return s.scale_min, "scale_min"


def _evaluate(conn, s: Settings, now: float) -> tuple[Decision, Context]:
    """The decision for `now` from stored state (records nothing)."""
    fc, bad, applied, applied_at = _load(conn, s)
    cfg = PolicyConfig.from_settings(s)
    actual, actual_source = _actual(s, fc, applied, applied_at)
    tpw, tpw_source = fc.throughput(s.scale_jobs_per_worker_min)
    horizon = s.scale_horizon_min
    arrivals, method_reason, components = fc.forecast(horizon)
    window_start = now - cfg.cooldown_s
    recent = conn.execute("SELECT ts, recommended FROM scale_decisions WHERE ts>=?", (window_start,)).fetchall()
    gate = files.read_flag(s.log_path("deploy_gate.flag"))
    from echoops.core.slo import recent_p95_ms  # lazy: 25 ms, not for `scale sample`, which imports this module

    p95 = recent_p95_ms(s=s, now=now, minutes=P95_WINDOW_MIN)
    source = source_health(conn, s)
    decision = decide(
        backlog=fc.depth,
        forecast_arrivals=arrivals,
        jobs_per_worker_min=tpw,
        actual=actual,
        cfg=cfg,
        recent=[(r[0], r[1]) for r in recent],
        last_change_at=applied_at,
        gate=gate is not None,
        p95_ms=p95,
        sample_age_s=0.0 if fc.last_ts is None else max(0.0, now - fc.last_ts),
        source_missed=source["missed_in_row"],
        now=now,
    )
    context: Context = {
        "actual_source": actual_source,
        "forecast": {
            "backlog": fc.depth,
            "rate_now_per_min": round(fc.rate_now(), 2),
            "rate_in_horizon_per_min": round(fc.rate_in(horizon), 2),
            "arrivals_over_horizon": round(arrivals, 1),
            "horizon_min": horizon,
            "trend_per_min2": round(fc.trend, 4),
            "jobs_per_worker_min": round(tpw, 2),
            "throughput_source": tpw_source,
            "method": s.scale_forecast,
            "method_reason": method_reason,
            "components": {
                name: {"arrivals": round(c["arrivals"], 1), "weight": round(c["weight"], 3)}
                for name, c in components.items()
            },
            "history_days": round(fc.history_days(), 2),
        },
        "gate": {"set": gate is not None, "reason": (gate or {}).get("reason")},
        "p95_ms": None if p95 is None else round(p95, 1),
        "p95_window_min": P95_WINDOW_MIN,
        "p95_target_ms": s.slo_lat_p95_ms,
        "last_change_at": None if applied_at is None else clock.iso(applied_at),
        "samples": {
            "ingested": fc.samples,
            "bad": bad,
            "last_sample_at": None if fc.last_ts is None else clock.iso(fc.last_ts),
            "age_s": None if fc.last_ts is None else round(max(0.0, now - fc.last_ts)),
        },
        "bounds": {"min": s.scale_min, "max": s.scale_max},
        "cooldown_min": s.scale_cooldown_min,
        "source": source,
        "projection": _projection(fc, decision, tpw, horizon),
    }
    return decision, context


def _projection(fc: Forecaster, decision: Decision, tpw: float, horizon: int) -> list[ProjectionPoint]:
    """The queue every 5 minutes over the horizon, with the actual and with the desired workers,
    from the last sample (when the backlog was measured); none before the first sample. Anchored
    to the sample, not to `now`, so an unchanged queue gives an unchanged document (ETag/304)."""
    if fc.last_ts is None:
        return []
    start = fc.last_ts
    paths = [
        project_backlog(fc.depth, fc.arrivals_over, workers, tpw, horizon)
        for workers in (decision.actual, decision.desired)
    ]
    return [
        {
            "in_min": minute,
            "ts": clock.iso(start + minute * 60),
            "backlog_at_actual": round(at_actual, 1),
            "backlog_at_desired": round(at_desired, 1),
        }
        for (minute, at_actual), (_, at_desired) in zip(*paths, strict=True)
    ]


def _history(conn, limit: int = HISTORY) -> list[HistoryPoint]:
    rows = conn.execute(
        "SELECT ts, desired, target, actual, backlog, action, dry_run, applied FROM scale_decisions "
        "ORDER BY id DESC LIMIT ?",
        (limit,),
    ).fetchall()
    return [
        {
            "ts": clock.iso(r[0]),
            "desired": r[1],
            "target": r[2],
            "actual": r[3],
            "backlog": r[4],
            "action": r[5],
            "dry_run": bool(r[6]),
            "applied": bool(r[7]),
        }
        for r in reversed(rows)
    ]


def _body(
    decision: Decision,
    context: Context,
    dry_run: bool,
    history: list[HistoryPoint],
    input_errors: list[UnreadableInput],
) -> ScaleStatus:
    return {
        "desired": decision.desired,
        "actual": decision.actual,
        "reason": decision.reason,
        "dry_run": dry_run,
        "target": decision.target,
        "recommended": decision.recommended,
        "need": round(decision.need, 3),
        "action": decision.action,
        "held_by": decision.held_by,
        "cooldown_remaining_s": decision.cooldown_remaining_s,
        **context,
        "history": history,
        "input_errors": input_errors,
    }


def status(*, s: Settings | None = None, now: float | None = None) -> ScaleStatus:
    """`GET /api/scale/status`: the decision for now (not recorded), forecast, gate, cooldown, history,
    and `input_errors` (queue.ndjson could not be read: the decision uses the stored state)."""
    s = s or config.settings()
    now = clock.now_s(now)
    read = ingest(s=s, now=now)
    conn = _conn(s)
    decision, context = _evaluate(conn, s, now)
    return _body(decision, context, s.scale_dry_run, _history(conn), read["errors"])


def apply_options(body: dict[str, Any]) -> bool | None:
    """Validate a `POST /api/scale/apply` body: only `dry_run`, a JSON boolean (absent = SCALE_DRY_RUN)."""
    extra = sorted(set(body) - {"dry_run"})
    if extra:
        raise ValidationError(f"unknown field {extra[0]!r} (only dry_run is accepted)", field=extra[0])
    value = body.get("dry_run")
    if value is not None and not isinstance(value, bool):
        raise ValidationError("dry_run must be true or false", field="dry_run")
    return value


@contextmanager
def _apply_lock(s: Settings) -> Iterator[None]:
    # One decide-actuate-record at a time across the scheduler and every gunicorn worker,
    # without holding a SQLite write lock while the actuator runs.
    fd = files.lock_file(s.log_path("scale.lock"))
    try:
        yield
    finally:
        os.close(fd)


def _actuate(s: Settings, n: int) -> Actuator:
    argv = [a.replace("{n}", str(n)) for a in s.scale_cmd or ()]
    try:
        proc = subprocess.run(argv, capture_output=True, timeout=s.scale_cmd_timeout_s, check=False, shell=False)
    except subprocess.TimeoutExpired:
        return {"argv": argv, "ok": False, "rc": None, "error": f"timed out after {s.scale_cmd_timeout_s}s"}
    except OSError as exc:
        return {"argv": argv, "ok": False, "rc": None, "error": f"could not start: {exc.strerror or exc}"}
    out: Actuator = {"argv": argv, "ok": proc.returncode == 0, "rc": proc.returncode}
    if proc.returncode != 0:
        # the command's own words, made safe for the incident message (colour codes, stray CRs)
        tail = parsers.without_controls(
            (proc.stderr or proc.stdout or b"").decode("utf-8", "replace").strip()[-300:], multiline=True
        )
        out["error"] = f"exited {proc.returncode}" + (f": {tail}" if tail else "")
    return out


def apply(dry_run: bool | None = None, *, s: Settings | None = None, now: float | None = None) -> ScaleApplied:
    """Decide now, record and log the decision; in real mode run SCALE_CMD for a change.

    `dry_run=None` follows SCALE_DRY_RUN. Real mode without SCALE_CMD is a ValidationError
    (field dry_run). Returns the status body plus `applied`, `actuator` (None when not run) and
    `ingest` (what this call read, see `ingest`); raises ActuatorFailed after recording when
    the command fails.
    """
    s = s or config.settings()
    now = clock.now_s(now)
    dry = s.scale_dry_run if dry_run is None else dry_run
    if not dry and not s.scale_cmd:
        raise ValidationError("dry_run=false needs SCALE_CMD (the actuator command) to be set", field="dry_run")
    with _apply_lock(s):
        read = ingest(s=s, now=now)
        conn = _conn(s)
        decision, context = _evaluate(conn, s, now)
        actuator = None
        applied = False
        reason = decision.reason
        if decision.target != decision.actual:
            if dry:
                reason += "; dry run: not applied"
            else:
                actuator = _actuate(s, decision.target)
                applied = actuator["ok"]
                reason += "; applied" if applied else f"; actuator failed ({actuator['error']}), actual stays"
        with store.transaction(conn):
            conn.execute(
                "INSERT INTO scale_decisions(ts, desired, recommended, target, actual, backlog, action, dry_run, "
                "applied, reason) VALUES(?,?,?,?,?,?,?,?,?,?)",
                (
                    now,
                    decision.desired,
                    decision.recommended,
                    decision.target,
                    decision.actual,
                    context["forecast"]["backlog"],
                    decision.action,
                    int(dry),
                    int(applied),
                    reason,
                ),
            )
            if applied:
                conn.execute(
                    "INSERT INTO scale_state(id, forecaster, applied_workers, applied_at, updated_at) "
                    "VALUES(1,?,?,?,?) ON CONFLICT(id) DO UPDATE SET "
                    "applied_workers=excluded.applied_workers, applied_at=excluded.applied_at",
                    (orjson.dumps(Forecaster().to_dict()).decode(), decision.target, now, now),
                )
        body: ScaleApplied = {
            **_body(decision, context, dry, _history(conn), read["errors"]),
            "applied": applied,
            "actuator": actuator,
            "ingest": read,
        }
    body["reason"] = reason
    if applied:
        body["actual"] = decision.target
        body["last_change_at"] = clock.iso(now)
        body["cooldown_remaining_s"] = int(s.scale_cooldown_min * 60)
    event: dict[str, Any] = {
        "desired": body["desired"],
        "target": body["target"],
        "actual": body["actual"],
        "action": body["action"],
        "held_by": body["held_by"],
        "reason": body["reason"],
        "dry_run": body["dry_run"],
        "applied": body["applied"],
    }
    event["previous"] = decision.actual
    event["ingest"] = read
    event["forecast"] = context["forecast"]
    event["gate"] = context["gate"]["set"]
    if actuator is not None:
        event["actuator"] = {"rc": actuator["rc"], "ok": actuator["ok"]}
    ndjson.append(s.log_path("scale.ndjson"), "scale_decision", now=now, **event)
    if actuator is not None and not applied:
        from echoops.core.pager import raise_incident  # lazy: 40 ms, only when the actuator fails

        incident = raise_incident(
            "WARNING",
            f"scale actuator failed setting {decision.target} workers: {actuator['error']}",
            "scale",
            {"target": decision.target, "actual": decision.actual, "rc": actuator["rc"]},
            "scale-actuator-failed",
            now=now,
            s=s,
        )
        raise ActuatorFailed(
            f"actuator failed setting {decision.target} workers ({actuator['error']}); "
            f"actual stays {decision.actual}; incident {incident['id']}"
        )
    return body


def tick(*, s: Settings | None = None, now: float | None = None) -> ScaleApplied:
    """Scheduler entry (every 10 min): ingest, decide, log; apply when SCALE_DRY_RUN=false.

    Real mode without SCALE_CMD is NotConfigured (nothing decided).
    """
    s = s or config.settings()
    if not s.scale_dry_run and not s.scale_cmd:
        raise NotConfigured("SCALE_DRY_RUN=false needs SCALE_CMD (the actuator command)")
    return apply(None, s=s, now=now)
