"""`echoops scale`: predictive worker autoscale (status, tick, apply, simulate)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from echoops.commands.render import JSON_OPT, NOW_OPT, console, emit_json, reading
from echoops.core import clock

if TYPE_CHECKING:  # the result types, for the printers (no import cost at run time)
    from echoops.core.scale.types import ScaleStatus

app = typer.Typer(
    help="Predictive worker autoscale: forecast 30 min ahead within bounds, cooldown and the deploy gate.\n\n"
    "Exit codes: 0 ok, 1 actuator failed, 2 bad usage or config.\n\n"
    "Example: echoops scale status --json | jq '{desired, actual, reason}'",
    no_args_is_help=True,
)


def _emit(body: ScaleStatus, json_out: bool) -> None:
    """status, tick and apply print the same document: JSON for jq or the human summary."""
    if json_out:
        emit_json(body)
        return
    out = console()
    mode = "[yellow]DRY RUN[/]" if body["dry_run"] else "[green]LIVE[/]"
    f = body["forecast"]
    out.print(f"{mode}  desired [bold]{body['desired']}[/]  actual [bold]{body['actual']}[/]  ({body['action']})")
    out.print(f"reason: {body['reason']}", highlight=False, markup=False)
    out.print(
        f"backlog {f['backlog']}, arrivals {f['rate_now_per_min']}/min now -> {f['rate_in_horizon_per_min']}/min "
        f"in {f['horizon_min']}m, {f['jobs_per_worker_min']} jobs/min per worker ({f['throughput_source']})",
        highlight=False,
    )
    p95 = "no data" if body["p95_ms"] is None else f"{body['p95_ms']:g} ms"
    out.print(f"p95 {p95} (target {body['p95_target_ms']:g} ms)", highlight=False)
    gate = body["gate"]
    out.print(
        f"cooldown {body['cooldown_remaining_s']}s left, gate {'SET' if gate['set'] else 'clear'}, "
        f"bounds {body['bounds']['min']}..{body['bounds']['max']}, last change {body['last_change_at'] or 'never'}",
        highlight=False,
    )
    if body.get("actuator"):
        a = body["actuator"]
        out.print(f"actuator: {' '.join(a['argv'])} -> rc {a['rc']}", highlight=False, markup=False)


@app.command("status")
def status_cmd(json_out: bool = JSON_OPT, now: str | None = NOW_OPT) -> None:
    """Show desired vs actual workers, the forecast and why (decides, records nothing).

    Example: echoops scale status --json | jq .forecast
    """
    from echoops.core import scale  # lazy: 15-45 ms a package, off --help and other commands

    with reading():
        body = scale.status(now=clock.parse_cli_time(now))
    _emit(body, json_out)


@app.command("tick")
def tick_cmd(json_out: bool = JSON_OPT, now: str | None = NOW_OPT) -> None:
    """Ingest queue samples, decide and log; applies only when SCALE_DRY_RUN=false (the scheduler's job).

    Example: echoops scale tick   (schedule.cron: */10 * * * * echoops scale tick)
    """
    from echoops.core import scale  # lazy: 15-45 ms a package, off --help and other commands

    _emit(scale.tick(now=clock.parse_cli_time(now)), json_out)


@app.command("apply")
def apply_cmd(
    dry_run: bool | None = typer.Option(
        None, "--dry-run/--no-dry-run", help="Override SCALE_DRY_RUN; --no-dry-run runs SCALE_CMD."
    ),
    json_out: bool = JSON_OPT,
    now: str | None = NOW_OPT,
) -> None:
    """Decide now and (with --no-dry-run) run the actuator, within cooldown, bounds and the gate.

    Exits 1 when the actuator fails (actual is unchanged), 2 when --no-dry-run lacks SCALE_CMD.

    Example: SCALE_CMD='kubectl scale deploy/worker --replicas={n}' echoops scale apply --no-dry-run
    """
    from echoops.core import scale  # lazy: 15-45 ms a package, off --help and other commands

    _emit(scale.apply(dry_run, now=clock.parse_cli_time(now)), json_out)


@app.command("simulate")
def simulate_cmd(
    file: Path = typer.Argument(..., help="Queue history, NDJSON like logs/queue.ndjson."),
    tick_min: float = typer.Option(10.0, "--tick-min", help="Minutes between decisions (the scheduler's 10)."),
    jobs_per_worker: float | None = typer.Option(
        None, "--jobs-per-worker", help="Real jobs/min per worker (default: measured from the trace)."
    ),
    all_decisions: bool = typer.Option(False, "--all", help="Print every decision, not only the changes."),
    json_out: bool = JSON_OPT,
) -> None:
    """Backtest the policy on a queue history next to a reactive HPA-style baseline.

    Prints every change each policy makes, then changes, backlog-minutes and worker-minutes.

    Example: echoops scale simulate logs/queue.ndjson --json | jq .comparison
    """
    from echoops.core.scale import backtest  # lazy: 15-45 ms a package, off --help and other commands

    result = backtest.simulate(file, tick_min=tick_min, jobs_per_worker=jobs_per_worker, all_decisions=all_decisions)
    if json_out:
        emit_json(result)
        return
    write = sys.stdout.write
    for e in backtest.timeline(result):
        write(
            f"{e['ts']}  {e['policy']:<10}  {e['from']:>3} -> {e['to']:<3}  backlog {e['backlog']:<6}  {e['reason']}\n"
        )
    m, t = result["model"], result["trace"]
    write(
        f"\ntrace {t['samples']} samples ({t['bad']} bad), {t['minutes']:g} min, {t['arrivals']:g} arrivals; "
        f"{m['jobs_per_worker_min']:g} jobs/min per worker ({m['capacity_source']}), decision every "
        f"{m['tick_min']:g} min\n"
    )
    # lazy: rich costs ~15 ms; only human output needs it
    from rich.table import Table

    table = Table(title="summary")
    for col in ("policy", "changes", "backlog-minutes", "worker-minutes", "peak backlog"):
        table.add_column(col, justify="right" if col != "policy" else "left")
    for name in backtest.POLICIES:
        s = result[name]["summary"]
        table.add_row(
            name, str(s["changes"]), f"{s['backlog_minutes']:g}", f"{s['worker_minutes']:g}", str(s["peak_backlog"])
        )
    out = console()
    out.print(table)
    c = result["comparison"]
    out.print(
        f"predictive vs reactive: backlog-minutes {_signed(c['backlog_minutes_change_pct'])}, "
        f"worker-minutes {_signed(c['worker_minutes_change_pct'])}",
        highlight=False,
    )


def _signed(pct: float | None) -> str:
    return "n/a" if pct is None else f"{pct:+g}%"
