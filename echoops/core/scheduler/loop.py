"""The scheduler loop: runs the job file's commands on their cron slots (UTC) as subprocesses.

The loop is a `Scheduler` whose `step(now)` does one round: reload the job file if it
changed, reap finished jobs, kill timed-out ones, start the jobs that are due. The real
loop (`scheduler.run`) calls `step(time.time())` about once a second; tests call it with any `now`.

Rules, and how they hold:
- Slot bookkeeping: each job's `last_slot` (the latest slot it ran or skipped) is kept in
  the store (schema "scheduler"), so a restart knows what already ran. A job is due when
  its latest slot at `now` is newer than `last_slot`; starting it (or skipping it) sets
  `last_slot` to that latest slot. So after downtime a job runs once, not once per missed
  slot (`job_start.missed` counts the slots it stood in for).
- A job seen for the first time (or whose cron expression changed) starts from its latest
  slot: it waits for its next one, unless that slot began less than a minute ago.
- No overlap: a job still running when its next slot comes is not started again; the slot
  is consumed and a `job_skip` event logged.
- Timeout (ECHOOPS_JOB_TIMEOUT_S): the job's whole process group (each job runs in its own
  session) gets SIGTERM, then SIGKILL `kill_after_s` later.
- Shutdown (`shutdown`, on SIGTERM/SIGINT in `run`): no new jobs; running jobs get
  `grace_s` to finish, then their groups are terminated. A second signal skips the wait.
- Leader (`lease`): jobs run only on the instance holding the leader lease, except `@local`
  jobs, which every instance runs (state per host). Before starting a leader job's slot,
  the slot is claimed in the store (`scheduler_slots`): a slot claimed once is never started
  again, by any instance. On taking the lease the leader reloads the jobs' state (what the
  previous leader ran). `local_only` (`scheduler run --local-only`) runs only the `@local`
  jobs and never bids for the lease.
- Events go to `logs/scheduler.ndjson`: scheduler_start, job_start, job_skip, job_end,
  schedule_reload, schedule_invalid, leader_start, leader_lost, scheduler_stop.
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, Any

from croniter import croniter

from echoops.core import clock, config, ndjson, store
from echoops.core.config import Settings
from echoops.core.errors import ValidationError
from echoops.core.redact import redact
from echoops.core.scheduler import crontab
from echoops.core.scheduler.crontab import Job, Schedule
from echoops.core.scheduler.lease import Lease, claim_slot, prune_slots

SCHEMA = store.Schema(
    "scheduler",
    (
        """
        CREATE TABLE IF NOT EXISTS scheduler_jobs (
            name TEXT PRIMARY KEY,
            schedule TEXT,
            last_slot REAL,
            last_trigger TEXT,
            last_start REAL,
            last_end REAL,
            last_rc INTEGER,
            last_duration_ms INTEGER,
            last_status TEXT,
            updated_at REAL NOT NULL
        );
        """,
        # v2: when each job last succeeded (rc 0), kept through later failures (GET /metrics)
        """
        ALTER TABLE scheduler_jobs ADD COLUMN last_success REAL;
        UPDATE scheduler_jobs SET last_success = last_end WHERE last_status = 'ok';
        """,
        # v3 (several instances on one PostgreSQL store): job state per host ('' for the
        # leader's jobs, the instance for its @local jobs), the leader lease, slot claims.
        """
        CREATE TABLE scheduler_jobs_v3 (
            host TEXT NOT NULL DEFAULT '',
            name TEXT NOT NULL,
            schedule TEXT,
            last_slot REAL,
            last_trigger TEXT,
            last_start REAL,
            last_end REAL,
            last_rc INTEGER,
            last_duration_ms INTEGER,
            last_status TEXT,
            updated_at REAL NOT NULL,
            last_success REAL,
            instance TEXT,
            PRIMARY KEY (host, name)
        );
        INSERT INTO scheduler_jobs_v3(host, name, schedule, last_slot, last_trigger, last_start, last_end, last_rc,
                                      last_duration_ms, last_status, updated_at, last_success)
        SELECT '', name, schedule, last_slot, last_trigger, last_start, last_end, last_rc,
               last_duration_ms, last_status, updated_at, last_success FROM scheduler_jobs;
        DROP TABLE scheduler_jobs;
        ALTER TABLE scheduler_jobs_v3 RENAME TO scheduler_jobs;
        CREATE TABLE scheduler_lease (
            name TEXT PRIMARY KEY,
            holder TEXT NOT NULL,
            token TEXT NOT NULL,
            until REAL NOT NULL,
            epoch INTEGER NOT NULL,
            acquired_at REAL NOT NULL,
            renewed_at REAL NOT NULL
        );
        CREATE TABLE scheduler_slots (
            job TEXT NOT NULL,
            slot REAL NOT NULL,
            instance TEXT NOT NULL,
            claimed_at REAL NOT NULL,
            PRIMARY KEY (job, slot)
        );
        """,
    ),
)

LOG_NAME = "scheduler.ndjson"
STDERR_TAIL_CHARS = 2048
REDACT_MARGIN = 1024  # longer than any secret
KILL_AFTER_S = 5.0
DEFAULT_GRACE_S = 30.0
MAX_MISSED_COUNT = 10_000  # counting missed slots stops here (a per-minute job down for a week)
SLOT_CLAIMS_KEPT_S = 86400.0  # slot claims older than this are pruned (last_slot covers them)


@dataclass
class Run:
    """A job process the scheduler started and has not reaped yet."""

    job: Job
    proc: subprocess.Popen
    trigger: str
    started: float  # `now` when started (epoch s)
    started_mono: float
    deadline: float  # `now`-based time at which the job times out
    stderr: IO[bytes]
    term_at: float | None = None
    kill_sent: bool = False
    killed: str | None = None  # "timeout" | "shutdown"


@dataclass
class Scheduler:
    """Drive with `start(now)`, then `step(now)` repeatedly, then `shutdown()`; see the module doc."""

    s: Settings = field(default_factory=config.settings)
    timeout_s: float | None = None  # None: ECHOOPS_JOB_TIMEOUT_S
    kill_after_s: float = KILL_AFTER_S
    on_event: Callable[[dict], None] | None = None
    stdout: Any = subprocess.DEVNULL  # where job stdout goes (None: inherit, for `once`)
    local_only: bool = False  # run only the @local jobs; never bid for the leader lease

    def __post_init__(self) -> None:
        self.job_timeout_s = float(self.s.job_timeout_s if self.timeout_s is None else self.timeout_s)
        self.schedule: Schedule = crontab.load(self.s)
        self._file_sig = _file_sig(self.schedule.path)
        self.running: dict[str, Run] = {}
        self.accepting = True
        self.log_path = self.s.log_path(LOG_NAME)
        self.conn = store.db(self.s, SCHEMA)
        self.host = store.host(self.conn)  # the key of this instance's @local jobs ('' on SQLite)
        # SQLite: one scheduler per log dir (scheduler.lock), so it may take the lease at once,
        # even from a predecessor killed before its lease ran out.
        self.lease = None if self.local_only else Lease(self.conn, self.s.instance, float(self.s.lease_s))
        self._force = not store.shared(self.conn)
        self._pruned_at = 0.0
        self.state: dict[str, dict] = {}
        self._load_state(local=True, leader=True)

    def _host_of(self, job: Job | None, name: str) -> str:
        local = job.local if job is not None else self.state.get(name, {}).get("host", "") != ""
        return self.host if local else ""

    def _load_state(self, *, local: bool, leader: bool) -> None:
        """(Re)read job state rows: this host's @local jobs, and/or the leader's jobs."""
        jobs = {j.name: j for j in self.schedule.jobs}
        rows = self.conn.execute("SELECT * FROM scheduler_jobs WHERE host IN (?, '')", (self.host,)).fetchall()
        for r in rows:
            job = jobs.get(r["name"])
            want = self._host_of(job, r["name"]) if job is not None else r["host"]
            if r["host"] != want or (r["host"] and not local) or (not r["host"] and not leader):
                continue
            self.state[r["name"]] = dict(r)

    def leading(self, now: float) -> bool:
        """True while this scheduler holds the leader lease."""
        return self.lease is not None and self.lease.leading(now)

    def _lead(self, now: float, events: list[dict]) -> bool:
        """Take or renew the lease; on taking it, reload the leader jobs' state."""
        if self.lease is None:
            return False
        leading, changed = self.lease.hold(now, force=self._force)
        if self._force:  # SQLite: always the leader (one scheduler per log dir); nothing to tell
            changed = False
        if changed and leading:
            self._load_state(local=False, leader=True)
            stale = [
                n
                for n, st in self.state.items()
                if not st["host"] and st["last_status"] == "running" and n not in self.running
            ]
            for name in stale:
                self._save(name, self.schedule.find(name), now, last_status="interrupted")
            self._emit(
                events, now, "leader_start", instance=self.s.instance, epoch=self.lease.epoch,
                lease_s=self.lease.lease_s, pid=os.getpid(),
            )  # fmt: skip
        elif changed:
            self._emit(events, now, "leader_lost", instance=self.s.instance, pid=os.getpid())
        if leading and now - self._pruned_at > 3600:
            self._pruned_at = now
            prune_slots(self.conn, now - SLOT_CLAIMS_KEPT_S)
        return leading

    def _runs_here(self, job: Job, leading: bool) -> bool:
        return job.local or (leading and not self.local_only)

    # --- the loop -------------------------------------------------------------------------

    def start(self, now: float, *, run_now: bool = False) -> list[dict]:
        """Log the start, mark jobs a crashed scheduler left 'running' as interrupted, then step.

        `run_now` starts every enabled job at once (and counts as their latest slot).
        """
        events: list[dict] = []
        stale = [n for n, st in self.state.items() if st["host"] and st["last_status"] == "running"]
        if self._force:  # SQLite: this is the only scheduler; its leader jobs were this log dir's
            stale += [n for n, st in self.state.items() if not st["host"] and st["last_status"] == "running"]
        for name in stale:
            self._save(name, self.schedule.find(name), now, last_status="interrupted")
        self._emit(
            events,
            now,
            "scheduler_start",
            schedule=str(self.schedule.path),
            source=self.schedule.source,
            jobs=[j.name for j in self.schedule.enabled],
            run_now=run_now,
            pid=os.getpid(),
            instance=self.s.instance,
            local_only=self.local_only,
        )
        leading = self._lead(now, events)
        if run_now:
            for job in self.schedule.enabled:
                if self._runs_here(job, leading):
                    self._set_slot(job, job.latest_at(now), now)
                    self._launch(job, now, events, trigger="run_now", slot=None, missed=0)
        return events + self.step(now)

    def step(self, now: float) -> list[dict]:
        """One round at `now` (epoch s): reload the file, reap, enforce timeouts, start due jobs."""
        events: list[dict] = []
        self._reload_if_changed(now, events)
        self._reap(now, events)
        self._enforce_timeouts(now)
        if self.accepting:
            leading = self._lead(now, events)
            for job in self.schedule.enabled:
                if self._runs_here(job, leading):
                    self._consider(job, now, events)
        return events

    def sleep_for(self, now: float) -> float:
        """Seconds the real loop may sleep before the next step (short while jobs run)."""
        if self.running:
            return 0.1
        upcoming = [j.next_after(now) for j in self.schedule.enabled]
        return max(0.05, min([1.0, *(t - now for t in upcoming)]))

    def shutdown(
        self,
        *,
        grace_s: float = DEFAULT_GRACE_S,
        reason: str = "stop",
        hurry: Callable[[], bool] = lambda: False,
        wall: Callable[[], float] = time.time,
    ) -> list[dict]:
        """Stop starting jobs, wait up to `grace_s` for running ones, then kill their groups."""
        self.accepting = False
        events: list[dict] = []
        deadline = time.monotonic() + grace_s
        while self.running and time.monotonic() < deadline and not hurry():
            self._reap(wall(), events)
            self._enforce_timeouts(wall())
            time.sleep(0.05)
        killed = sorted(self.running)
        self._terminate_all(events, wall)
        if self.lease is not None:
            self.lease.release(wall())  # the next instance leads at its next step, not a lease later
        self._emit(events, wall(), "scheduler_stop", reason=reason, killed=killed, pid=os.getpid())
        return events

    def run_in_foreground(self, job: Job, now: float, *, trigger: str = "once") -> dict:
        """Start `job` at `now`, block until it ends (timeout applied); its job_end record.

        Consumes no slot. Ctrl-C terminates the job's group and re-raises KeyboardInterrupt.
        """
        mono = time.monotonic()

        def wall() -> float:
            return now + (time.monotonic() - mono)

        events: list[dict] = []
        self._launch(job, now, events, trigger=trigger, slot=None, missed=0)
        try:
            while self.running:
                self._reap(wall(), events)
                self._enforce_timeouts(wall())
                time.sleep(0.02)
        except KeyboardInterrupt:
            self._terminate_all(events, wall)
            raise
        return next(e for e in reversed(events) if e["event"] == "job_end")

    # --- internals ------------------------------------------------------------------------

    def _terminate_all(self, events: list[dict], wall: Callable[[], float]) -> None:
        """SIGTERM every running job's group, SIGKILL what is left after `kill_after_s`, reap all."""
        for run in self.running.values():
            run.killed = run.killed or "shutdown"
            _signal_group(run.proc, signal.SIGTERM)
        deadline = time.monotonic() + self.kill_after_s
        while self.running and time.monotonic() < deadline:
            self._reap(wall(), events)
            time.sleep(0.05)
        for run in self.running.values():
            _signal_group(run.proc, signal.SIGKILL)
            run.proc.wait()
        self._reap(wall(), events)

    def _consider(self, job: Job, now: float, events: list[dict]) -> None:
        st = self.state.get(job.name)
        latest = job.latest_at(now)
        if st is None or st["last_slot"] is None or st["schedule"] != job.schedule:
            # New (or rescheduled) job: wait for its next slot, unless this one just began.
            self._set_slot(job, latest - 1 if now - latest < 60 else latest, now)
            if now - latest >= 60:
                return
            st = self.state[job.name]
        if latest <= st["last_slot"]:
            return
        missed = _count_between(job, st["last_slot"], latest)
        self._set_slot(job, latest, now)
        if not job.local and not claim_slot(self.conn, job.name, latest, self.s.instance, now):
            # another instance's leader started this slot (a lease handed over mid-slot)
            self._emit(events, now, "job_skip", job=job.name, slot=clock.iso(latest), reason="slot_claimed")
            return
        run = self.running.get(job.name)
        if run is not None:
            self._emit(
                events,
                now,
                "job_skip",
                job=job.name,
                slot=clock.iso(latest),
                reason="still_running",
                pid=run.proc.pid,
                running_s=round(now - run.started, 3),
            )
            return
        self._launch(job, now, events, trigger="schedule", slot=latest, missed=missed)

    def _launch(
        self, job: Job, now: float, events: list[dict], *, trigger: str, slot: float | None, missed: int
    ) -> None:
        stderr = tempfile.TemporaryFile(prefix="echoops-job-")
        mono = time.monotonic()
        proc: subprocess.Popen[bytes] | None = None
        try:
            proc = subprocess.Popen(
                job.exec_argv(),
                stdin=subprocess.DEVNULL,
                stdout=self.stdout,
                stderr=stderr,
                start_new_session=True,  # own process group: a timeout kills the whole tree
                close_fds=True,
            )
        except OSError as exc:
            failure = f"cannot start {job.exec_argv()[0]!r}: {exc.strerror or exc}"
        else:  # tracked before anything else can fail, so the timeout always applies
            self.running[job.name] = Run(job, proc, trigger, now, mono, now + self.job_timeout_s, stderr)
        started = {"last_trigger": trigger, "last_start": now, "last_end": None, "last_rc": None}
        self._save(job.name, job, now, **started, last_duration_ms=None, last_status="running")
        self._emit(
            events,
            now,
            "job_start",
            job=job.name,
            trigger=trigger,
            slot=None if slot is None else clock.iso(slot),
            pid=proc.pid if proc else None,
            late_s=None if slot is None else round(now - slot, 3),
            missed=missed,
        )
        if proc is None:  # 127: the shell's "command not found"
            stderr.close()
            self._finish(events, job, now, trigger=trigger, pid=None, rc=127, duration_ms=0, tail=failure)

    def _reap(self, now: float, events: list[dict]) -> None:
        for name, run in list(self.running.items()):
            rc = run.proc.poll()
            if rc is None:
                continue
            del self.running[name]
            if run.killed:
                _signal_group(run.proc, signal.SIGKILL)  # stragglers that ignored SIGTERM
            self._finish(
                events,
                run.job,
                now,
                trigger=run.trigger,
                pid=run.proc.pid,
                rc=rc,
                duration_ms=round((time.monotonic() - run.started_mono) * 1000),
                tail=_tail(run.stderr, self.s),
                killed=run.killed,
            )

    def _finish(
        self,
        events: list[dict],
        job: Job,
        now: float,
        *,
        trigger: str,
        pid: int | None,
        rc: int,
        duration_ms: int,
        tail: str,
        killed: str | None = None,
    ) -> None:
        status = {"timeout": "timeout", "shutdown": "killed"}.get(killed or "", "ok" if rc == 0 else "failed")
        ended: dict[str, Any] = {"last_end": now, "last_rc": rc, "last_duration_ms": duration_ms, "last_status": status}
        if status == "ok":
            ended["last_success"] = now
        self._save(job.name, job, now, **ended)
        self._emit(
            events,
            now,
            "job_end",
            job=job.name,
            trigger=trigger,
            pid=pid,
            rc=rc,
            status=status,
            duration_ms=duration_ms,
            timed_out=killed == "timeout",
            stderr_tail=tail,
        )

    def _enforce_timeouts(self, now: float) -> None:
        for run in self.running.values():
            if run.term_at is None and now >= run.deadline:
                run.killed, run.term_at = "timeout", now
                _signal_group(run.proc, signal.SIGTERM)
            elif run.term_at is not None and not run.kill_sent and now >= run.term_at + self.kill_after_s:
                run.kill_sent = True
                _signal_group(run.proc, signal.SIGKILL)

    def _reload_if_changed(self, now: float, events: list[dict]) -> None:
        path, _ = crontab.resolve(self.s)
        sig = _file_sig(path)
        if sig == self._file_sig:
            return
        self._file_sig = sig
        try:
            self.schedule = crontab.load(self.s)
        except ValidationError as exc:
            problems = getattr(exc, "problems", [exc.detail])
            self._emit(events, now, "schedule_invalid", schedule=str(path), problems=problems, kept="previous jobs")
            return
        jobs = [j.name for j in self.schedule.enabled]
        self._emit(events, now, "schedule_reload", schedule=str(self.schedule.path), jobs=jobs)

    def _set_slot(self, job: Job, slot: float, now: float) -> None:
        self._save(job.name, job, now, schedule=job.schedule, last_slot=slot)

    def _save(self, name: str, job: Job | None, now: float, **cols: Any) -> None:
        """Upsert the job's state row with `cols` (and keep the in-memory copy in step)."""
        row = self.state.get(name)
        host = self._host_of(job, name)
        if row is not None and row["host"] != host:  # the line gained or lost @local: a new job
            row = None
        insert = {
            "schedule": cols.get("schedule", job.schedule if job else None),
            **cols,
            "instance": self.s.instance,
            "updated_at": now,
        }
        if row is None:
            row = self.state[name] = {
                "host": host, "name": name, "last_slot": None, "last_status": None, "last_trigger": None,
            }  # fmt: skip
            row["schedule"] = insert["schedule"]
        row.update(cols, updated_at=now)
        sets = ", ".join(f"{c}=excluded.{c}" for c in [*cols, "instance", "updated_at"])
        with store.transaction(self.conn):
            self.conn.execute(
                f"INSERT INTO scheduler_jobs(host, name, {', '.join(insert)}) VALUES(?, ?{', ?' * len(insert)}) "
                f"ON CONFLICT(host, name) DO UPDATE SET {sets}",
                (host, name, *insert.values()),
            )

    def _emit(self, events: list[dict], now: float, event: str, **fields: Any) -> None:
        record = ndjson.append(self.log_path, event, now=now, **fields)
        events.append(record)
        if self.on_event is not None:
            self.on_event(record)


def _count_between(job: Job, after: float, until: float) -> int:
    """Slots strictly between `after` and `until` (the ones a misfire run stands in for)."""
    slots = croniter(job.schedule, after)
    count = 0
    while slots.get_next(float) < until and count < MAX_MISSED_COUNT:
        count += 1
    return count


def _tail(fh: IO[bytes], s: Settings) -> str:
    """The last STDERR_TAIL_CHARS of a job's stderr, secrets masked; closes `fh`.

    A margin beyond the tail is read and redacted first, so a secret cut by the tail's
    start is masked before the cut instead of leaking its end.
    """
    try:
        size = fh.seek(0, os.SEEK_END)
        fh.seek(max(0, size - STDERR_TAIL_CHARS - REDACT_MARGIN))
        data = fh.read()
    finally:
        fh.close()
    text = redact(data.decode("utf-8", errors="replace"), s).rstrip()
    return "…" + text[-STDERR_TAIL_CHARS:] if len(text) > STDERR_TAIL_CHARS else text


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _file_sig(path) -> tuple | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (str(path), st.st_mtime_ns, st.st_size, st.st_ino)
