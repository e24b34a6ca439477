"""The scheduler's entry points: `run` (the real loop), `run_once`, `check`, `list_jobs`.

How jobs are timed, skipped, killed and remembered is in `loop` (the `Scheduler`
driven by `step(now)`); the job file format is in `crontab`.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

from echoops.core import clock, config, files, store
from echoops.core.config import Settings
from echoops.core.errors import Conflict, ValidationError
from echoops.core.scheduler import crontab, lease
from echoops.core.scheduler.loop import DEFAULT_GRACE_S, SCHEMA, Scheduler
from echoops.core.scheduler.types import Leadership

ERROR_BACKOFF_S = 5.0

__all__ = ["check", "last_successes", "leadership", "list_jobs", "run", "run_once"]


def run(
    *,
    s: Settings | None = None,
    run_now: bool = False,
    grace_s: float = DEFAULT_GRACE_S,
    on_event: Callable[[dict], None] | None = None,
    local_only: bool = False,
) -> dict:
    """Run the scheduler until SIGTERM/SIGINT; {"stopped_by": signal name}. One per log dir (Conflict).

    It runs the leader's jobs while it holds the leader lease and its `@local` jobs always;
    `local_only`: only the `@local` jobs, never bidding for the lease (an app host)."""
    s = s or config.settings()
    lock = _take_lock(s)
    signals: list[int] = []
    previous: dict[signal.Signals, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, lambda signum, _frame: signals.append(signum))
    try:
        sched = Scheduler(s=s, on_event=on_event, local_only=local_only)
        sched.start(time.time(), run_now=run_now)
        while not signals:
            try:
                sched.step(time.time())
            except store.errors(OSError) as exc:
                # A full disk or a locked store must not take running jobs down with the
                # loop: report it, back off, try again (timeouts and reaping resume).
                record = {"ts": clock.iso(time.time()), "event": "scheduler_error", "error": str(exc)}
                if on_event is not None:
                    on_event(record)
                time.sleep(ERROR_BACKOFF_S)
            time.sleep(sched.sleep_for(time.time()))
        reason = signal.Signals(signals[0]).name
        sched.shutdown(grace_s=grace_s, reason=reason, hurry=lambda: len(signals) > 1)
        return {"stopped_by": reason}
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        os.close(lock)


def _take_lock(s: Settings) -> int:
    """Hold `scheduler.lock` in the log dir for the life of the process (one scheduler per dir)."""
    path = s.log_path("scheduler.lock")
    try:
        fd = files.lock_file(path, wait=False)
    except BlockingIOError:
        holder = path.read_text(errors="replace").strip()[:32] or "?"
        raise Conflict(f"another scheduler (pid {holder}) is running on {s.log_dir}") from None
    os.ftruncate(fd, 0)
    os.write(fd, str(os.getpid()).encode())
    return fd


def run_once(name: str, *, s: Settings | None = None, now: float | None = None) -> dict:
    """Run job `name` now in the foreground (stdout inherited, timeout applied); its job_end record.

    Does not consume a slot: the scheduler still runs the job at its next one.
    """
    s = s or config.settings()
    sched = Scheduler(s=s, stdout=None)
    job = sched.schedule.find(name)
    if job is None:
        known = ", ".join(repr(j.name) for j in sched.schedule.jobs) or "none"
        raise ValidationError(f"no job named {name!r} in {sched.schedule.path} (jobs: {known})", field="name")
    return sched.run_in_foreground(job, clock.now_s(now))


def check(*, s: Settings | None = None) -> dict:
    """Validate the job file: {"schedule", "source", "jobs", "enabled", "disabled"}; ScheduleInvalid (exit 2)."""
    sched = crontab.load(s or config.settings())
    enabled = len(sched.enabled)
    return {
        "schedule": str(sched.path),
        "source": sched.source,
        "jobs": len(sched.jobs),
        "enabled": enabled,
        "disabled": len(sched.jobs) - enabled,
    }


def list_jobs(*, s: Settings | None = None, now: float | None = None) -> dict:
    """Every job with its schedule, enabled flag, last result and next run (UTC) — `scheduler list --json`."""
    s = s or config.settings()
    t = clock.now_s(now)
    sched = crontab.load(s)
    conn = store.db(s, SCHEMA)
    host = store.host(conn)
    rows = conn.execute("SELECT * FROM scheduler_jobs WHERE host IN (?, '')", (host,)).fetchall()
    by_key = {(r["host"], r["name"]): r for r in rows}
    enabled_names = {j.name for j in sched.enabled}
    jobs = []
    for job in sched.jobs:
        # A disabled line that shares its name with an enabled job (an old version kept
        # beside its replacement) does not show the enabled job's results.
        st = None
        if job.enabled or job.name not in enabled_names:
            st = by_key.get((host if job.local else "", job.name))
        last = None
        if st is not None and st["last_start"] is not None:
            last = {
                "status": st["last_status"],
                "trigger": st["last_trigger"],
                "started": clock.iso(st["last_start"]),
                "ended": None if st["last_end"] is None else clock.iso(st["last_end"]),
                "rc": st["last_rc"],
                "duration_ms": st["last_duration_ms"],
                "instance": st["instance"],
            }
        jobs.append(
            {
                "name": job.name,
                "schedule": job.schedule,
                "command": job.command,
                "line": job.line,
                "enabled": job.enabled,
                "local": job.local,
                "next_run": clock.iso(job.next_after(t)) if job.enabled else None,
                "last": last,
            }
        )
    return {
        "schedule": str(sched.path),
        "source": sched.source,
        "timezone": "UTC",
        **lease.leader(conn, s.instance, t),
        "jobs": jobs,
    }


def leadership(*, s: Settings | None = None, now: float | None = None) -> Leadership:
    """Who leads the schedule now and whether this instance does (GET /healthz)."""
    s = s or config.settings()
    return lease.leader(store.db(s, SCHEMA), s.instance, clock.now_s(now))


def last_successes(*, s: Settings | None = None) -> dict[str, float]:
    """When each job last exited 0 (epoch s), by job name; jobs that never succeeded are absent."""
    s = s or config.settings()
    conn = store.db(s, SCHEMA)
    rows = conn.execute("SELECT name, last_success FROM scheduler_jobs WHERE last_success IS NOT NULL ORDER BY name")
    return {r["name"]: r["last_success"] for r in rows}
