"""Scheduler: job file parsing, the step(now) loop with real subprocesses, the CLI, SIGTERM."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from echoops.core import scheduler
from echoops.core.scheduler import Scheduler, crontab, runner
from tests.conftest import TEST_KEY, alive, wait_for

PY = shlex.quote(sys.executable)
# 12:07 UTC: 7 minutes after a */15 slot, so a new job waits for its next slot.
T0 = datetime(2026, 11, 27, 12, 7, tzinfo=UTC).timestamp()
ISO_RE = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$"


def write_schedule(settings, text: str) -> Path:
    path = Path(settings.schedule_file)
    path.write_text(text)
    return path


def py_job(code: str, name: str, when: str = "* * * * *") -> str:
    return f"{when} {PY} -c {shlex.quote(code)}  # name={name}\n"


def events(log_dir: Path) -> list[dict]:
    path = log_dir / "scheduler.ndjson"
    if not path.exists():
        return []
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def drive_until_idle(sched: Scheduler, now: float, timeout: float = 15) -> list[dict]:
    """Step at a fixed `now` until every job has been reaped (real time passes for the processes)."""
    out: list[dict] = []
    deadline = time.monotonic() + timeout
    while sched.running:
        assert time.monotonic() < deadline, f"jobs still running: {list(sched.running)}"
        out += sched.step(now)
        time.sleep(0.02)
    return out


# --- the job file ------------------------------------------------------------------------


def test_default_schedule_parses_to_the_four_phase_jobs_and_the_queue_sample():
    sched = crontab.parse(crontab.default_path().read_text(), source="default")
    assert [(j.name, j.schedule, j.enabled, j.local) for j in sched.jobs] == [
        ("slo tick", "*/15 * * * *", True, False),
        ("page run", "*/5 * * * *", True, False),
        ("costs tick", "0 * * * *", True, False),
        ("scale tick", "*/10 * * * *", True, False),
        ("scale sample", "* * * * *", True, False),
        # every instance ingests its own host's logs (the leader computes over all of them)
        ("slo ingest", "*/5 * * * *", True, True),
        ("page logs", "*/5 * * * *", True, True),
    ]
    assert sched.jobs[0].exec_argv() == [sys.executable, "-m", "echoops", "slo", "tick"]
    assert sched.jobs[6].exec_argv() == [sys.executable, "-m", "echoops", "page", "run", "--logs-only"]


def test_names_comments_and_disabled_jobs():
    text = (
        "# the jobs of echoops\n"
        "\n"
        "*/15 * * * * echoops slo tick --json   # every quarter hour\n"
        "# */10 * * * * echoops scale tick\n"
        "#0 3 * * * /usr/bin/python3 /opt/backup.py --full # name=backup\n"
        "@hourly echoops costs tick\n"
        "# 5 4 is not a job line\n"
    )
    sched = crontab.parse(text)
    assert [(j.name, j.schedule, j.enabled, j.line) for j in sched.jobs] == [
        ("slo tick", "*/15 * * * *", True, 3),
        ("scale tick", "*/10 * * * *", False, 4),
        ("backup", "0 3 * * *", False, 5),
        ("costs tick", "@hourly", True, 6),
    ]
    assert sched.jobs[0].argv == ("echoops", "slo", "tick", "--json")
    assert sched.jobs[2].exec_argv() == ["/usr/bin/python3", "/opt/backup.py", "--full"]


def test_every_bad_line_is_reported_with_number_and_text():
    text = (
        "*/5 * * * * echoops page run\n"
        "61 * * * * echoops slo tick\n"
        "* * * * \n"
        "* * * * * echo 'unclosed\n"
        "0 */15 * * * * echoops scale tick\n"
        "*/5 * * * * echoops page run --verbose\n"
        "@reboot echoops costs tick\n"
        "* * * * * echoops x # name=bad!name\n"
    )
    with pytest.raises(crontab.ScheduleInvalid) as info:
        crontab.parse(text, path=Path("/etc/echoops/schedule.cron"))
    problems = info.value.problems
    assert [p.split(":")[0] for p in problems] == ["line 2", "line 3", "line 4", "line 5", "line 6", "line 7", "line 8"]
    assert problems[0].startswith("line 2: bad cron expression '61 * * * *'")
    assert problems[0].endswith(": '61 * * * * echoops slo tick'")
    assert problems[1] == "line 3: expected 5 schedule fields (minute hour day month weekday) then a command: '* * * *'"
    assert "cannot split the command (No closing quotation)" in problems[2]
    assert "a sixth time field?" in problems[3]
    assert "job name 'page run' is already used on line 1" in problems[4]
    assert "unknown schedule '@reboot'" in problems[5]
    assert "bad job name 'bad!name'" in problems[6]
    assert info.value.exit_code == 2
    assert str(info.value).startswith("/etc/echoops/schedule.cron: 7 bad line(s):\n  line 2: ")


def test_check_cli_exit_codes(cli, settings):
    write_schedule(settings, "*/5 * * * * echoops page run\n# 0 * * * * echoops costs tick\n")
    result = cli("scheduler", "check", "--json")
    assert result.exit_code == 0
    assert orjson.loads(result.stdout) == {
        "schedule": str(Path(settings.schedule_file).absolute()),
        "source": "file",
        "jobs": 2,
        "enabled": 1,
        "disabled": 1,
    }
    write_schedule(settings, "*/5 * * * * echoops page run\n*/5 * * * echoops slo tick\n")
    result = cli("scheduler", "check")
    assert result.exit_code == 2
    assert result.stdout == ""
    assert "line 2: bad cron expression '*/5 * * * echoops'" in result.stderr
    assert "'*/5 * * * echoops slo tick'" in result.stderr


def test_missing_file_falls_back_to_the_packaged_default(cli, settings):
    assert not Path(settings.schedule_file).exists()
    result = cli("scheduler", "list", "--json", "--now", "2026-11-27T12:07:00Z")
    assert result.exit_code == 0
    body = orjson.loads(result.stdout)
    assert body["source"] == "default"
    assert body["schedule"] == str(crontab.default_path())
    assert [(j["name"], j["next_run"]) for j in body["jobs"]] == [
        ("slo tick", "2026-11-27T12:15:00.000Z"),
        ("page run", "2026-11-27T12:10:00.000Z"),
        ("costs tick", "2026-11-27T13:00:00.000Z"),
        ("scale tick", "2026-11-27T12:10:00.000Z"),
        ("scale sample", "2026-11-27T12:08:00.000Z"),
        ("slo ingest", "2026-11-27T12:10:00.000Z"),
        ("page logs", "2026-11-27T12:10:00.000Z"),
    ]


# --- the loop, with real subprocesses and an injected `now` --------------------------------


def test_job_start_and_job_end_records_have_exact_fields(settings, log_dir):
    code = "import sys; sys.stderr.write('x' * 3000 + 'END\\n'); sys.exit(3)"
    write_schedule(settings, py_job(code, "noisy", when="*/15 * * * *"))
    sched = Scheduler(s=settings)
    assert [e["event"] for e in sched.start(T0)] == ["scheduler_start"]  # 12:07: waits for 12:15
    slot = T0 + 8 * 60
    started = sched.step(slot + 2.5)
    pid = sched.running["noisy"].proc.pid
    ended = drive_until_idle(sched, slot + 3)
    assert started == [
        {
            "ts": "2026-11-27T12:15:02.500Z",
            "event": "job_start",
            "job": "noisy",
            "trigger": "schedule",
            "slot": "2026-11-27T12:15:00.000Z",
            "pid": pid,
            "late_s": 2.5,
            "missed": 0,
        }
    ]
    assert len(ended) == 1
    end = ended[0]
    assert set(end) == {
        "ts",
        "event",
        "job",
        "trigger",
        "pid",
        "rc",
        "status",
        "duration_ms",
        "timed_out",
        "stderr_tail",
    }
    assert {k: end[k] for k in ("ts", "event", "job", "trigger", "pid", "rc", "status", "timed_out")} == {
        "ts": "2026-11-27T12:15:03.000Z",
        "event": "job_end",
        "job": "noisy",
        "trigger": "schedule",
        "pid": pid,
        "rc": 3,
        "status": "failed",
        "timed_out": False,
    }
    assert isinstance(end["duration_ms"], int) and 0 <= end["duration_ms"] < 10_000
    assert end["stderr_tail"] == "…" + ("x" * 3000 + "END")[-2048:]
    assert events(log_dir)[-2:] == [started[0], end]


def test_stderr_tail_masks_secrets_even_when_cut(settings):
    assert settings.dashboard_key == TEST_KEY
    code = f"import sys; sys.stderr.write('GET /bot123:abc/sendMessage {TEST_KEY}' + 'y' * 2030)"
    write_schedule(settings, py_job(code, "leaky"))
    sched = Scheduler(s=settings)
    sched.start(T0 + 1)
    (end,) = drive_until_idle(sched, T0 + 2)
    assert TEST_KEY[-8:] not in end["stderr_tail"] and "abc" not in end["stderr_tail"]
    # Raw, the last 2048 characters would start inside the key; redacted, they start before it.
    raw_tail = (f"GET /bot123:abc/sendMessage {TEST_KEY}" + "y" * 2030)[-2048:]
    assert TEST_KEY not in raw_tail and TEST_KEY[-8:] in raw_tail
    assert end["stderr_tail"] == "…" + ("GET /bot<redacted>/sendMessage <redacted>" + "y" * 2030)[-2048:]


def test_no_overlap_slot_skipped_and_logged(settings, log_dir):
    write_schedule(settings, py_job("import time; time.sleep(30)", "slow"))
    sched = Scheduler(s=settings)
    first = sched.start(T0 + 10)  # 10 s into a minute slot: a new job runs at once
    assert [e["event"] for e in first] == ["scheduler_start", "job_start"]
    pid = sched.running["slow"].proc.pid
    assert sched.step(T0 + 30) == []
    skipped = sched.step(T0 + 65)
    assert skipped == [
        {
            "ts": "2026-11-27T12:08:05.000Z",
            "event": "job_skip",
            "job": "slow",
            "slot": "2026-11-27T12:08:00.000Z",
            "reason": "still_running",
            "pid": pid,
            "running_s": 55.0,
        }
    ]
    assert sched.step(T0 + 70) == []  # the slot is consumed: one skip per slot
    assert list(sched.running) == ["slow"] and sched.running["slow"].proc.pid == pid
    stop = sched.shutdown(grace_s=0, reason="test")
    assert [(e["event"], e.get("status")) for e in stop] == [("job_end", "killed"), ("scheduler_stop", None)]
    assert stop[-1]["killed"] == ["slow"]
    assert not alive(pid)


def test_timeout_kills_the_whole_process_group(settings, tmp_path):
    pid_file = tmp_path / "grandchild.pid"
    code = (
        "import subprocess, sys, time, pathlib; "
        "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
        f"pathlib.Path({str(pid_file)!r}).write_text(str(p.pid)); "
        "time.sleep(60)"
    )
    write_schedule(settings, py_job(code, "tree"))
    sched = Scheduler(s=settings, timeout_s=5, kill_after_s=2)
    sched.start(T0 + 1)
    child = sched.running["tree"].proc.pid
    wait_for(lambda: pid_file.exists() and pid_file.read_text(), what="grandchild pid")
    grandchild = int(pid_file.read_text())
    assert alive(child) and alive(grandchild)
    assert sched.step(T0 + 5.5) == []  # not yet
    ended = drive_until_idle(sched, T0 + 6.5)
    assert [(e["event"], e["status"], e["timed_out"], e["rc"]) for e in ended] == [
        ("job_end", "timeout", True, -signal.SIGTERM)
    ]
    wait_for(lambda: not alive(grandchild), timeout=5, what="grandchild to die")
    assert not alive(child)


def test_timeout_escalates_to_sigkill_when_sigterm_is_ignored(settings, tmp_path):
    ready, shrugged = tmp_path / "ready", tmp_path / "shrugged"
    code = (  # the job notes each SIGTERM and carries on: it ignores it, observably
        "import pathlib, signal, time; "
        f"signal.signal(signal.SIGTERM, lambda *_: pathlib.Path({str(shrugged)!r}).touch()); "
        f"pathlib.Path({str(ready)!r}).touch(); time.sleep(60)"  # the handler returns: sleep resumes (PEP 475)
    )
    write_schedule(settings, py_job(code, "stubborn"))
    sched = Scheduler(s=settings, timeout_s=5, kill_after_s=1)
    sched.start(T0 + 1)
    wait_for(ready.exists, what="the job to install its SIGTERM handler")
    sched.step(T0 + 6)  # the timeout: SIGTERM
    wait_for(shrugged.exists, what="the job to receive SIGTERM and carry on")
    assert sched.step(T0 + 6.5) == [], "a job that ignores SIGTERM runs on until kill_after_s"
    ended = drive_until_idle(sched, T0 + 7.5)  # kill_after_s passed: SIGKILL
    assert [(e["status"], e["rc"]) for e in ended] == [("timeout", -signal.SIGKILL)]


def test_misfire_after_downtime_runs_once_and_state_survives_restart(settings, log_dir):
    write_schedule(settings, py_job("pass", "quarter", when="*/15 * * * *"))
    first = Scheduler(s=settings)
    first.start(T0)  # 12:07: baseline 12:00, nothing runs
    assert first.step(T0 + 60) == []
    del first  # the scheduler goes down for three hours
    second = Scheduler(s=settings)
    later = T0 + 3 * 3600  # 15:07
    started = second.start(later)
    assert [(e["event"], e.get("slot"), e.get("missed")) for e in started] == [
        ("scheduler_start", None, None),
        ("job_start", "2026-11-27T15:00:00.000Z", 11),  # 12:15 … 14:45 stood in for
    ]
    drive_until_idle(second, later + 1)
    assert second.step(later + 120) == []
    assert [e["event"] for e in second.step(later + 8 * 60)] == ["job_start"]  # 15:15, on time
    drive_until_idle(second, later + 8 * 60 + 1)
    starts = [e for e in events(log_dir) if e["event"] == "job_start"]
    assert len(starts) == 2


def test_a_crashed_schedulers_running_job_shows_as_interrupted(settings):
    write_schedule(settings, py_job("import time; time.sleep(30)", "orphan"))
    crashed = Scheduler(s=settings)
    crashed.start(T0 + 1)
    assert scheduler.list_jobs(s=settings, now=T0 + 2)["jobs"][0]["last"]["status"] == "running"
    os.killpg(crashed.running["orphan"].proc.pid, signal.SIGKILL)  # the crash took its job along
    crashed.running["orphan"].proc.wait()
    restarted = Scheduler(s=settings)
    restarted.start(T0 + 30)  # same slot: nothing to run
    assert restarted.running == {}
    last = scheduler.list_jobs(s=settings, now=T0 + 31)["jobs"][0]["last"]
    assert (last["status"], last["ended"], last["rc"]) == ("interrupted", None, None)


def test_commented_job_is_not_run(settings, log_dir):
    write_schedule(settings, py_job("pass", "on") + "# " + py_job("pass", "off"))
    sched = Scheduler(s=settings)
    sched.start(T0 + 5, run_now=True)
    assert list(sched.running) == ["on"]
    drive_until_idle(sched, T0 + 6)
    sched.step(T0 + 120)
    drive_until_idle(sched, T0 + 121)
    assert {e["job"] for e in events(log_dir) if e["event"] == "job_start"} == {"on"}
    listed = scheduler.list_jobs(s=settings, now=T0 + 200)["jobs"]
    assert [(j["name"], j["enabled"], j["next_run"]) for j in listed] == [
        ("on", True, "2026-11-27T12:11:00.000Z"),
        ("off", False, None),
    ]


def test_editing_the_file_while_running_reloads_it(settings, log_dir):
    path = write_schedule(settings, py_job("pass", "edited"))
    sched = Scheduler(s=settings)
    sched.start(T0 + 30)  # 30 s into the slot: runs now
    drive_until_idle(sched, T0 + 31)
    path.write_text("# " + path.read_text())  # the brief's rollback: comment the job
    reloaded = sched.step(T0 + 90)
    assert [(e["event"], e["jobs"]) for e in reloaded] == [("schedule_reload", [])]
    path.write_text("61 * * * * echoops slo tick\n")
    invalid = sched.step(T0 + 150)
    assert [e["event"] for e in invalid] == ["schedule_invalid"]
    assert invalid[0]["problems"][0].startswith("line 1: bad cron expression")
    assert [e["event"] for e in events(log_dir)].count("job_start") == 1


def test_missing_program_ends_with_rc_127(settings):
    write_schedule(settings, "* * * * * /nonexistent/bin/tool --flag  # name=ghost\n")
    sched = Scheduler(s=settings)
    out = sched.start(T0 + 5)
    assert [(e["event"], e.get("rc"), e.get("status")) for e in out] == [
        ("scheduler_start", None, None),
        ("job_start", None, None),
        ("job_end", 127, "failed"),
    ]
    assert out[-1]["stderr_tail"].startswith("cannot start '/nonexistent/bin/tool': ")


def test_list_json_exact_shape(cli, settings):
    write_schedule(
        settings,
        "*/15 * * * * echoops slo tick\n# */10 * * * * echoops scale tick\n"
        + py_job("import sys; sys.exit(4)", "four", when="0 * * * *"),
    )
    sched = Scheduler(s=settings)
    sched.start(T0)
    sched.step(T0 + 53 * 60)  # 13:00: "four" runs; "slo tick" (echoops, 12:15 …) runs too
    drive_until_idle(sched, T0 + 53 * 60 + 2)
    result = cli("scheduler", "list", "--json", "--now", "2026-11-27T13:00:10Z")
    assert result.exit_code == 0
    body = orjson.loads(result.stdout)
    slo_last = body["jobs"][0]["last"]
    assert slo_last["status"] in ("ok", "failed")  # depends on whether `slo tick` exists yet
    assert body == {
        "schedule": str(Path(settings.schedule_file).absolute()),
        "source": "file",
        "timezone": "UTC",
        # SQLite: the one scheduler of the log dir leads (its lease renewed at 13:00:00)
        "instance": settings.instance,
        "leader": {
            "instance": settings.instance,
            "until": "2026-11-27T13:00:30.000Z",
            "since": "2026-11-27T12:07:00.000Z",
            "epoch": 1,
        },
        "is_leader": True,
        "jobs": [
            {
                "name": "slo tick",
                "schedule": "*/15 * * * *",
                "command": "echoops slo tick",
                "line": 1,
                "enabled": True,
                "local": False,
                "next_run": "2026-11-27T13:15:00.000Z",
                "last": slo_last,
            },
            {
                "name": "scale tick",
                "schedule": "*/10 * * * *",
                "command": "echoops scale tick",
                "line": 2,
                "enabled": False,
                "local": False,
                "next_run": None,
                "last": None,
            },
            {
                "name": "four",
                "schedule": "0 * * * *",
                "command": f"{PY} -c {shlex.quote('import sys; sys.exit(4)')}",
                "line": 3,
                "enabled": True,
                "local": False,
                "next_run": "2026-11-27T14:00:00.000Z",
                "last": {
                    "status": "failed",
                    "trigger": "schedule",
                    "started": "2026-11-27T13:00:00.000Z",
                    "ended": "2026-11-27T13:00:02.000Z",
                    "rc": 4,
                    "duration_ms": body["jobs"][2]["last"]["duration_ms"],
                    "instance": settings.instance,
                },
            },
        ],
    }
    assert set(slo_last) == {"status", "trigger", "started", "ended", "rc", "duration_ms", "instance"}
    human = cli("scheduler", "list")
    assert human.exit_code == 0
    assert "disabled" in human.stdout and "four" in human.stdout


def test_once_runs_in_the_foreground_and_exits_with_the_job_rc(cli, settings, log_dir):
    write_schedule(settings, py_job("import sys; print('out'); sys.exit(5)", "five"))
    result = cli("scheduler", "once", "five")
    assert result.exit_code == 5
    assert result.stderr.endswith("five: failed rc=5 in " + result.stderr.rsplit(" in ", 1)[1])
    assert [(e["event"], e["trigger"]) for e in events(log_dir)] == [("job_start", "once"), ("job_end", "once")]
    unknown = cli("scheduler", "once", "nope")
    assert unknown.exit_code == 2
    assert "no job named 'nope'" in unknown.stderr


def test_only_one_scheduler_per_log_dir(cli, settings):
    write_schedule(settings, py_job("pass", "x"))
    fd = runner._take_lock(settings)
    try:
        result = cli("scheduler", "run")
        assert result.exit_code == 1
        assert f"another scheduler (pid {os.getpid()}) is running" in result.stderr
    finally:
        os.close(fd)


# --- the real `echoops scheduler run` process --------------------------------------------


def start_scheduler(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "echoops", "scheduler", "run", *args],
        env=dict(os.environ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )


def signal_once_a_job_started(log_dir: Path, sig: int, *args: str) -> subprocess.Popen:
    """Run `scheduler run --run-now *args`, send `sig` once a job has started; the process, exited 0."""
    proc = start_scheduler("--run-now", *args)
    try:
        wait_for(lambda: any(e["event"] == "job_start" for e in events(log_dir)), timeout=15, what="job_start")
        proc.send_signal(sig)
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    return proc


def test_sigterm_waits_for_the_running_job_then_exits_0(settings, log_dir):
    write_schedule(settings, py_job("import time; time.sleep(2)", "two"))
    proc = signal_once_a_job_started(log_dir, signal.SIGTERM)
    log = events(log_dir)
    assert [e["event"] for e in log] == ["scheduler_start", "job_start", "job_end", "scheduler_stop"]
    assert (log[2]["status"], log[2]["rc"]) == ("ok", 0)
    assert log[2]["duration_ms"] >= 1900
    assert (log[3]["reason"], log[3]["killed"]) == ("SIGTERM", [])
    assert "job_end two: ok rc=0" in proc.stderr.read().decode()


def test_sigterm_kills_jobs_that_outlive_the_grace(settings, log_dir):
    write_schedule(settings, py_job("import time; time.sleep(60)", "long"))
    proc = signal_once_a_job_started(log_dir, signal.SIGINT, "--grace", "0.5", "--quiet")
    log = events(log_dir)
    job_pid = next(e["pid"] for e in log if e["event"] == "job_start")
    assert [(e["event"], e.get("status")) for e in log[-2:]] == [("job_end", "killed"), ("scheduler_stop", None)]
    assert (log[-1]["reason"], log[-1]["killed"]) == ("SIGINT", ["long"])
    assert not alive(job_pid)
    assert proc.stderr.read() == b""


def test_every_scheduler_command_has_help_with_an_example(cli):
    for args in (("scheduler",), ("scheduler", "run"), ("scheduler", "list"), ("scheduler", "check"), ("up",)):
        out = cli(*args, "--help")
        assert out.exit_code == 0
        assert "Example:" in out.stdout
    assert "Exit codes: 0 ok, 1 another scheduler" in cli("scheduler", "--help").stdout
    once = cli("scheduler", "once", "--help")
    assert once.exit_code == 0 and "Example: echoops scheduler once slo tick" in once.stdout
