"""One scheduler leader among instances sharing a store: the lease, @local jobs, slot claims,
`scheduler list`/`/healthz` naming the leader, and a real hand-over after SIGKILL."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import orjson
import pytest

from echoops.core import scheduler, store
from echoops.core.scheduler import Scheduler, crontab, lease
from tests.test_scheduler import PY, T0, drive_until_idle, py_job, write_schedule

pytestmark = pytest.mark.parametrize("db_backend", ["postgres"], indirect=True)

JOBS = py_job("pass", "leader job") + "* * * * * @local " + py_job("pass", "local job").split(" ", 5)[5]


def starts(events: list[dict]) -> list[str]:
    return [e["job"] for e in events if e["event"] == "job_start"]


def two(settings, lease_s: int = 30) -> tuple[Scheduler, Scheduler]:
    a = Scheduler(s=dataclasses.replace(settings, instance="host-a", lease_s=lease_s))
    b = Scheduler(s=dataclasses.replace(settings, instance="host-b", lease_s=lease_s))
    return a, b


def test_local_marker_parses_and_is_refused_alone():
    sched = crontab.parse("*/5 * * * * @local echoops slo ingest\n@hourly @local echoops page run --logs-only\n")
    assert [(j.name, j.schedule, j.local, j.argv) for j in sched.jobs] == [
        ("slo ingest", "*/5 * * * *", True, ("echoops", "slo", "ingest")),
        ("page run", "@hourly", True, ("echoops", "page", "run", "--logs-only")),
    ]
    with pytest.raises(crontab.ScheduleInvalid, match=r"line 1: missing command after the schedule and @local"):
        crontab.parse("* * * * * @local\n")


def test_only_the_leader_runs_leader_jobs_every_instance_runs_local_ones(settings, log_dir):
    write_schedule(settings, JOBS)
    a, b = two(settings)
    first = a.start(T0 + 5)  # 12:07:05: both jobs' 12:07 slot began 5 s ago
    assert [e["event"] for e in first][:2] == ["scheduler_start", "leader_start"]
    assert first[1]["instance"] == "host-a" and first[1]["epoch"] == 1
    assert sorted(starts(first)) == ["leader job", "local job"]
    second = b.start(T0 + 6)
    assert "leader_start" not in [e["event"] for e in second]
    assert starts(second) == ["local job"]  # host-b's own files; the leader job is host-a's
    drive_until_idle(a, T0 + 7)
    drive_until_idle(b, T0 + 7)
    assert a.leading(T0 + 7) and not b.leading(T0 + 7)
    # the next minute: same split
    assert sorted(starts(a.step(T0 + 60))) == ["leader job", "local job"]
    assert starts(b.step(T0 + 61)) == ["local job"]
    drive_until_idle(a, T0 + 62)
    drive_until_idle(b, T0 + 62)
    # each instance keeps its own state for the local job; the leader job has one row
    rows = store.connect(settings).execute("SELECT host, name, instance FROM scheduler_jobs ORDER BY host, name")
    assert [tuple(r) for r in rows] == [
        ("", "leader job", "host-a"),
        ("host-a", "local job", "host-a"),
        ("host-b", "local job", "host-b"),
    ]


def test_a_dead_leader_is_replaced_within_one_lease_and_no_slot_runs_twice(settings, log_dir):
    write_schedule(settings, JOBS)
    a, b = two(settings, lease_s=30)
    a.start(T0 + 5)
    b.start(T0 + 5)
    drive_until_idle(a, T0 + 6)
    drive_until_idle(b, T0 + 6)
    a.step(T0 + 20)  # host-a's last renewal (a third of the lease passed): until 12:07:50
    # host-a dies here (it is never stepped again). Until its lease ends host-b waits...
    assert starts(b.step(T0 + 49)) == [] and not b.leading(T0 + 49)
    assert lease.leader(b.conn, "host-b", T0 + 49)["leader"]["instance"] == "host-a"
    # ... then takes over at its first step after 12:07:50, within one lease of the death
    took = b.step(T0 + 51)
    assert [e["event"] for e in took] == ["leader_start"]
    assert took[0]["epoch"] == 2 and b.leading(T0 + 51)
    # the 12:07 slot host-a ran is not run again; the 12:08 slot runs once, on host-b
    assert sorted(starts(b.step(T0 + 61))) == ["leader job", "local job"]
    drive_until_idle(b, T0 + 62)
    # host-a comes back (it was frozen, not dead): its renewal fails, it starts nothing
    back = a.step(T0 + 62)
    assert [e["event"] for e in back if e["event"] != "job_start"] == ["leader_lost"]
    assert starts(back) == ["local job"]  # its own host's job still runs (12:08)
    drive_until_idle(a, T0 + 63)
    runs = [(r["job"], r["slot"]) for r in _claims(settings)]
    assert runs == [("leader job", T0), ("leader job", T0 + 60)]
    assert lease.leader(a.conn, "host-a", T0 + 63) == {
        "instance": "host-a",
        "leader": {
            "instance": "host-b",
            "until": "2026-11-27T12:08:31.000Z",  # renewed at 12:08:01
            "since": "2026-11-27T12:07:51.000Z",
            "epoch": 2,
        },
        "is_leader": False,
    }


def _claims(settings) -> list[dict]:
    rows = store.connect(settings).execute("SELECT job, slot, instance FROM scheduler_slots ORDER BY slot")
    return [dict(zip(("job", "slot", "instance"), r, strict=True)) for r in rows]


def test_a_claimed_slot_is_never_started_again(settings, log_dir):
    """Two schedulers that both believe they lead (a clock jump) still run a slot once."""
    write_schedule(settings, py_job("pass", "leader job"))
    a, b = two(settings)
    assert starts(a.start(T0 + 5)) == ["leader job"]
    drive_until_idle(a, T0 + 6)
    b.lease.held_until = T0 + 1000  # as if it had taken the lease by its own (wrong) clock
    b.lease.renewed_at = T0 + 5
    skipped = b.start(T0 + 7)
    assert [(e["event"], e.get("job"), e.get("reason")) for e in skipped][1:] == [
        ("job_skip", "leader job", "slot_claimed")
    ]
    assert [(r["job"], r["instance"]) for r in _claims(settings)] == [("leader job", "host-a")]


def test_local_only_never_bids_for_the_lease(settings, log_dir):
    write_schedule(settings, JOBS)
    app_host = Scheduler(s=dataclasses.replace(settings, instance="app-1"), local_only=True)
    out = app_host.start(T0 + 5)
    assert starts(out) == ["local job"]
    assert out[0]["local_only"] is True and not app_host.leading(T0 + 5)
    drive_until_idle(app_host, T0 + 6)
    assert lease.leader(app_host.conn, "app-1", T0 + 6) == {"instance": "app-1", "leader": None, "is_leader": False}
    # a clean stop hands the lease over at once
    a, b = two(settings)
    a.start(T0 + 70)
    drive_until_idle(a, T0 + 71)
    a.shutdown(grace_s=0, wall=lambda: T0 + 72)
    assert [e["event"] for e in b.start(T0 + 73)][:2] == ["scheduler_start", "leader_start"]
    drive_until_idle(b, T0 + 74)


def test_list_names_the_leader(cli, settings, log_dir, monkeypatch):
    write_schedule(settings, JOBS)
    a, _ = two(settings)
    now = time.time()
    a.start(now)
    drive_until_idle(a, now)
    monkeypatch.setenv("ECHOOPS_INSTANCE", "host-b")
    body = orjson.loads(cli("scheduler", "list", "--json").stdout)
    assert body["instance"] == "host-b" and body["is_leader"] is False
    assert body["leader"]["instance"] == "host-a" and body["leader"]["epoch"] == 1
    assert [(j["name"], j["local"]) for j in body["jobs"]] == [("leader job", False), ("local job", True)]
    assert body["jobs"][1]["last"] is None  # host-b never ran its local job
    human = cli("scheduler", "list").stdout
    assert "leader: host-a, lease until" in human and "@local" in human
    monkeypatch.setenv("ECHOOPS_INSTANCE", "host-a")
    body = orjson.loads(cli("scheduler", "list", "--json").stdout)
    assert body["is_leader"] is True and body["jobs"][1]["last"]["instance"] == "host-a"


@pytest.mark.slow
def test_sigkill_of_the_leader_process_hands_over_within_the_lease(tmp_path, settings, live_server):
    """Two real `echoops scheduler run` processes (two hosts: own log dirs, one database),
    ECHOOPS_LEASE_S=5: SIGKILL the leader; the other leads within 5 s of its death, and
    /healthz of a server on the same database says so."""
    schedule = tmp_path / "two.cron"
    schedule.write_text(f"* * * * * {PY} -c pass  # name=leader job\n")
    procs: dict[str, subprocess.Popen] = {}
    dirs = {}
    for name in ("host-a", "host-b"):
        dirs[name] = tmp_path / name
        dirs[name].mkdir()
        env = {
            **os.environ,
            "ECHOOPS_INSTANCE": name,
            "ECHOOPS_LEASE_S": "5",
            "ECHOOPS_LOG_DIR": str(dirs[name]),
            "ECHOOPS_SCHEDULE": str(schedule),
        }
        procs[name] = subprocess.Popen(
            [sys.executable, "-m", "echoops", "scheduler", "run", "--quiet"],
            env=env,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        if name == "host-a":  # host-a first, so it leads
            _wait(lambda: _events(dirs["host-a"], "leader_start"), "host-a to lead")
    try:
        server = live_server(ECHOOPS_INSTANCE="web-1")
        health = httpx.get(server.url + "/healthz").json()
        assert health["leader"]["instance"] == "host-a" and health["is_leader"] is False
        assert health["instance"] == "web-1"
        time.sleep(1.5)  # host-b steps at least once while host-a leads: it does not take over
        assert _events(dirs["host-b"], "leader_start") == []
        os.killpg(procs["host-a"].pid, signal.SIGKILL)
        killed = time.time()
        procs["host-a"].wait()
        took = _wait(lambda: _events(dirs["host-b"], "leader_start"), "host-b to take over")
        took_at = _ts(took[0]["ts"])
        assert took_at - killed <= 5 + 1.5  # one lease, plus host-b's step interval (<= 1 s)
        assert took[0]["epoch"] == 2
        health = httpx.get(server.url + "/healthz").json()
        assert health["leader"]["instance"] == "host-b" and health["leader"]["epoch"] == 2
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(30)
    stops = _events(dirs["host-b"], "scheduler_stop")
    assert [e["reason"] for e in stops] == ["SIGTERM"]


def _events(log_dir: Path, event: str) -> list[dict]:
    path = log_dir / "scheduler.ndjson"
    if not path.exists():
        return []
    found = [orjson.loads(line) for line in path.read_bytes().splitlines()]
    return [e for e in found if e["event"] == event]


def _ts(iso: str) -> float:
    from echoops.core import clock  # lazy: only this helper

    return clock.parse_ts(iso)


def _wait(fn, what: str, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while True:
        found = fn()
        if found:
            return found
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_scheduler_leadership_without_a_scheduler(settings):
    assert scheduler.leadership(s=settings) == {"instance": settings.instance, "leader": None, "is_leader": False}
