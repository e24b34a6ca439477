"""`echoops scheduler run|list|check|once`: the job file (schedule.cron) and the loop that runs it."""

from __future__ import annotations

import sys

import typer

from echoops.commands import render
from echoops.core import clock

app = typer.Typer(
    help="Run the jobs of schedule.cron (crontab syntax, UTC) as subprocesses.\n\n"
    "Jobs come from ./schedule.cron or ECHOOPS_SCHEDULE (the packaged default when that file is "
    "missing); comment a line out with # to disable a job. Events go to logs/scheduler.ndjson.\n\n"
    "Exit codes: 0 ok, 1 another scheduler runs on this log dir, 2 bad job file or unknown job.\n\n"
    "Example: echoops scheduler check && echoops scheduler run",
    no_args_is_help=True,
)


def _event_line(record: dict) -> None:
    """One human line on stderr per scheduler event (the NDJSON file has every field)."""
    event = record["event"]
    detail = {
        "scheduler_start": lambda r: f"{len(r['jobs'])} job(s) from {r['schedule']}",
        "job_start": lambda r: f"{r['job']} ({r['trigger']}, pid {r['pid']}, missed {r['missed']})",
        "job_skip": lambda r: f"{r['job']}: slot {r['slot']} skipped, still running",
        "job_end": lambda r: f"{r['job']}: {r['status']} rc={r['rc']} in {r['duration_ms']} ms",
        "schedule_reload": lambda r: f"{len(r['jobs'])} job(s) from {r['schedule']}",
        "schedule_invalid": lambda r: "; ".join(r["problems"]) + " (keeping the previous jobs)",
        "scheduler_error": lambda r: f"{r['error']} (retrying)",
        "leader_start": lambda r: f"{r['instance']} leads the schedule (epoch {r['epoch']}, lease {r['lease_s']:g} s)",
        "leader_lost": lambda r: f"{r['instance']} lost the lease; another instance leads",
        "scheduler_stop": lambda r: f"{r['reason']}" + (f", killed {', '.join(r['killed'])}" if r["killed"] else ""),
    }.get(event, lambda _r: "")(record)
    sys.stderr.write(f"{record['ts']} {event} {detail}\n")
    sys.stderr.flush()


@app.command("run")
def run(
    run_now: bool = typer.Option(False, "--run-now", help="Also run every enabled job once at start."),
    grace: float = typer.Option(30.0, "--grace", min=0, max=3600, help="Seconds running jobs get after SIGTERM."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No event lines on stderr (the NDJSON log has them)."),
    local_only: bool = typer.Option(
        False, "--local-only", help="Run only the @local jobs and never lead (an app host that ingests its logs)."
    ),
) -> None:
    """Run jobs on their schedule until SIGTERM/SIGINT (then wait up to --grace for running jobs; exit 0).

    A job never overlaps itself; after downtime a missed job runs once; each job has
    ECHOOPS_JOB_TIMEOUT_S (its whole process group is killed). Edits to the job file are
    picked up while running. With several instances on one PostgreSQL store (ECHOOPS_DB_URL),
    only the leader (lease ECHOOPS_LEASE_S) runs the jobs; `@local` jobs run on every instance.

    Example: echoops scheduler run --run-now
    """
    from echoops.core import scheduler  # lazy: 15-45 ms a package, off --help and other commands

    scheduler.run(run_now=run_now, grace_s=grace, on_event=None if quiet else _event_line, local_only=local_only)


@app.command("list")
def list_(
    json_out: bool = typer.Option(False, "--json", help="Print JSON for jq."),
    now: str = typer.Option(None, "--now", help="Compute next runs as of this time (ISO-8601 or epoch s)."),
) -> None:
    """Show each job: schedule, enabled or disabled, last result, next run (UTC), and the file in use.

    Example: echoops scheduler list --json | jq '.jobs[] | select(.enabled) | .name'
    """
    from echoops.core import scheduler  # lazy: 15-45 ms a package, off --help and other commands

    with render.reading():
        result = scheduler.list_jobs(now=clock.parse_cli_time(now))
    if json_out:
        render.emit_json(result)
        return
    # lazy: rich costs ~15 ms; only human output needs it
    from rich.markup import escape

    origin = " (packaged default: no schedule file found)" if result["source"] == "default" else ""
    leader = result["leader"]
    if leader is None:
        lead = "leader: none (no scheduler holds the lease)"
    else:
        me = " (this instance)" if result["is_leader"] else ""
        lead = f"leader: {leader['instance']}{me}, lease until {leader['until']}"
    rows = []
    for job in result["jobs"]:
        last = job["last"]
        if last is None:
            last_text = "-"
        else:
            style = {"ok": "green", "running": "yellow"}.get(last["status"], "bold red")
            rc = "" if last["rc"] is None else f" rc={last['rc']}"
            last_text = f"[{style}]{last['status']}[/]{rc}\n{render.when(last['ended'] or last['started'])}"
        state = "enabled" if job["enabled"] else "[dim]disabled[/]"
        if job["local"]:
            state += " @local"
        rows.append([escape(job["name"]), job["schedule"], state, last_text, render.when(job["next_run"])])
    cols = [
        render.Col("job", wide=True),
        render.Col("schedule"),
        render.Col("state"),
        render.Col("last result (UTC)"),
        render.Col("next run (UTC)"),
    ]
    render.table(cols, rows, title=f"{result['schedule']}{origin}\n{lead}")


@app.command("check")
def check(json_out: bool = typer.Option(False, "--json", help="Print JSON for jq.")) -> None:
    """Validate the job file: exit 0 when every line is good, 2 with each bad line's number and text.

    Example: ECHOOPS_SCHEDULE=./schedule.cron echoops scheduler check
    """
    from echoops.core import scheduler  # lazy: 15-45 ms a package, off --help and other commands

    result = scheduler.check()
    if json_out:
        render.emit_json(result)
        return
    origin = " (packaged default)" if result["source"] == "default" else ""
    sys.stdout.write(
        f"OK {result['schedule']}{origin}: {result['jobs']} job(s), "
        f"{result['enabled']} enabled, {result['disabled']} disabled\n"
    )


@app.command("once")
def once(
    name: list[str] = typer.Argument(..., help="Job name as `scheduler list` shows it (quotes optional)."),
) -> None:
    """Run one job now in the foreground and exit with its exit code (128+N when killed by signal N).

    Logged like a scheduled run (job_start/job_end, trigger "once"); the job's next slot is kept.

    Example: echoops scheduler once slo tick
    """
    from echoops.core import scheduler  # lazy: 15-45 ms a package, off --help and other commands

    record = scheduler.run_once(" ".join(name))
    if record["stderr_tail"]:
        sys.stderr.write(record["stderr_tail"] + "\n")
    sys.stderr.write(f"{record['job']}: {record['status']} rc={record['rc']} in {record['duration_ms']} ms\n")
    rc = record["rc"]
    raise typer.Exit(128 - rc if rc < 0 else rc)
