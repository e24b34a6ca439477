"""`echoops scale`: predictive worker autoscale (status, tick, apply, simulate)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from echoops.commands import jobs
from echoops.commands.render import (
    JSON_OPT,
    NOW_OPT,
    Col,
    console,
    emit_json,
    input_errors,
    panel,
    plain_table,
    reading,
    table,
    when,
)
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
    """status, tick and apply print the same document: JSON for jq or the human panel."""
    if json_out:
        emit_json(body)
        return
    # lazy: rich costs ~15 ms; only human output needs it
    from rich.markup import escape

    input_errors(body.get("input_errors", []))
    mode = "[yellow]DRY RUN[/]" if body["dry_run"] else "[green]LIVE[/]"
    f = body["forecast"]
    gate = body["gate"]
    lines = [
        f"{mode}  desired [bold]{body['desired']}[/]  actual [bold]{body['actual']}[/]  "
        f"({body['action'].replace('_', ' ')})",
        f"reason: {escape(body['reason'])}",
        f"backlog {f['backlog']:,g} jobs; arrivals {f['rate_now_per_min']:g}/min now -> "
        f"{f['rate_in_horizon_per_min']:g}/min in {f['horizon_min']} min",
        f"throughput {f['jobs_per_worker_min']:g} jobs/min per worker ({f['throughput_source']})",
        f"forecast: {escape(f['method_reason'])}",
    ]
    projection = body.get("projection") or []
    if projection:
        end = projection[-1]
        lines.append(
            f"queue in {end['in_min']} min: {end['backlog_at_actual']:,.0f} with {body['actual']} workers, "
            f"{end['backlog_at_desired']:,.0f} with {body['desired']}"
        )
    src = body["source"]
    if src["kind"] != "file":
        health = "ok" if not src["missed_in_row"] else f"{src['missed_in_row']} missed in a row: {src['last_error']}"
        lines.append(f"queue source {src['kind']}: {escape(health)}")
    p95 = "no data" if body["p95_ms"] is None else f"{body['p95_ms']:g} ms"
    lines.append(f"p95 last {body['p95_window_min']} min: {p95} (target {body['p95_target_ms']:g} ms)")
    lines.append(
        f"cooldown {body['cooldown_remaining_s']}s left, deploy gate "
        + (f"[bold red]SET[/]: no scale-up ({escape(gate['reason'] or 'no reason')})" if gate["set"] else "clear")
    )
    changed = when(body["last_change_at"], zone=True) if body["last_change_at"] else "never"
    lines.append(f"bounds {body['bounds']['min']}..{body['bounds']['max']} workers, last change {changed}")
    if body.get("actuator"):
        a = body["actuator"]
        lines.append(f"actuator: {escape(' '.join(a['argv']))} -> rc {a['rc']}")
    state = "yellow" if gate["set"] or body["desired"] != body["actual"] else "green"
    panel("Autoscale", lines, state=state)


@app.command("status")
def status_cmd(json_out: bool = JSON_OPT, now: str | None = NOW_OPT) -> None:
    """Show desired vs actual workers, the forecast and why (decides, records nothing).

    Example: echoops scale status --json | jq .forecast
    """
    from echoops.core import scale  # lazy: 15-45 ms a package, off --help and other commands

    with reading():
        body = scale.status(now=clock.parse_cli_time(now))
    _emit(body, json_out)


@app.command("sample")
def sample_cmd(json_out: bool = JSON_OPT, now: str | None = NOW_OPT) -> None:
    """Read the queue (SCALE_QUEUE_SOURCE) once and append a sample to queue.ndjson (the scheduler's job).

    Exits 1 when the source cannot be read (the sample is skipped, the autoscaler holds),
    2 when the source lacks its settings. With SCALE_QUEUE_SOURCE=file it does nothing.

    Example: SCALE_QUEUE_SOURCE=rq SCALE_REDIS_URL=redis://localhost:6379/0 echoops scale sample --json
    """
    jobs.scale_sample(now, json_out)  # the same body `echoops scale sample` runs without Typer


@app.command("tick")
def tick_cmd(json_out: bool = JSON_OPT, now: str | None = NOW_OPT) -> None:
    """Ingest queue samples, decide and log; applies only when SCALE_DRY_RUN=false (the scheduler's job).

    Example: echoops scale tick   (schedule.cron: */10 * * * * echoops scale tick)
    """
    jobs.scale_tick(now, json_out)  # the same body `echoops scale tick` runs without Typer


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


@app.command("systemd-units")
def systemd_units_cmd(
    unit: str = typer.Option(..., "--unit", help="Template unit prefix, e.g. worker@ (for worker@.service)."),
    to: int = typer.Option(..., "--to", help="Run instances 1..N of it (0 stops them all)."),
    user: bool = typer.Option(False, "--user", help="Talk to the user's service manager (systemctl --user)."),
    json_out: bool = JSON_OPT,
) -> None:
    """Start/stop systemd template instances so exactly UNIT1..UNITn run: an actuator for SCALE_CMD.

    Exits 1 when systemctl fails (the autoscaler then keeps its worker count), 2 on bad usage.

    Example: SCALE_CMD='echoops scale systemd-units --unit worker@ --to {n}'
    """
    from echoops.core.scale import systemd  # lazy: only this actuator needs it

    body = systemd.reach(unit, to, user=user)
    if json_out:
        emit_json(body)
        return
    sys.stdout.write(
        f"{unit}: {len(body['running_before'])} running -> 1..{to}; "
        f"started {' '.join(body['started']) or 'none'}; stopped {' '.join(body['stopped']) or 'none'}\n"
    )


@app.command("simulate")
def simulate_cmd(
    file: Path = typer.Argument(..., help="Queue history, NDJSON like logs/queue.ndjson."),
    tick_min: float = typer.Option(10.0, "--tick-min", help="Minutes between decisions (the scheduler's 10)."),
    jobs_per_worker: float | None = typer.Option(
        None, "--jobs-per-worker", help="Real jobs/min per worker (default: measured from the trace)."
    ),
    method: str | None = typer.Option(
        None, "--method", help="Replay only this method: reactive, holt, damped or damped+seasonal (default: all)."
    ),
    phases: int = typer.Option(
        1, "--phases", help="Average the summary over this many decision phases within a tick (1-60)."
    ),
    all_decisions: bool = typer.Option(False, "--all", help="Print every decision, not only the changes."),
    json_out: bool = JSON_OPT,
) -> None:
    """Backtest the forecast methods on a queue history: reactive (HPA-style), holt, damped, damped+seasonal.

    Prints every change each method makes, then per method changes, backlog-minutes,
    worker-minutes, peak backlog and the forecast's MAPE over the horizon.

    Example: echoops scale simulate logs/queue.ndjson --json | jq '.methods[].summary'
    """
    from echoops.core.scale import backtest  # lazy: 15-45 ms a package, off --help and other commands

    result = backtest.simulate(
        file,
        tick_min=tick_min,
        jobs_per_worker=jobs_per_worker,
        all_decisions=all_decisions,
        method=method,
        phases=phases,
    )
    if json_out:
        emit_json(result)
        return
    changes = [
        [when(e["ts"]), e["method"], f"{e['from']} -> {e['to']}", f"{e['backlog']:,}", e["reason"]]
        for e in backtest.timeline(result)
    ]
    what = "every decision" if all_decisions else "changes"
    cols = [Col("time (UTC)"), Col("method"), Col("workers"), Col("backlog", "right"), Col("reason", wide=True)]
    sys.stdout.write(plain_table(cols, changes, title=f"{what} ({len(changes)})"))
    m, t = result["model"], result["trace"]
    out = console()
    out.print(
        f"\ntrace {t['samples']:,} samples ({t['bad']} bad), {t['minutes']:g} min, {t['arrivals']:g} arrivals; "
        f"{m['jobs_per_worker_min']:g} jobs/min per worker ({m['capacity_source']}), decision every "
        f"{m['tick_min']:g} min" + (f", mean of {m['phases']} phases" if m["phases"] > 1 else ""),
        highlight=False,
    )
    rows = []
    for name, part in result["methods"].items():
        s = part["summary"]
        label = name + ("*" if name == m["production_method"] else "")
        mape = "n/a" if s["mape_pct"] is None else f"{s['mape_pct']:g}"
        rows.append([
            label, f"{s['changes']:g}", f"{s['backlog_minutes']:g}", f"{s['worker_minutes']:g}",
            f"{s['peak_backlog']:g}", mape,
        ])  # fmt: skip
    names = ("changes", "backlog-min", "worker-min", "peak backlog", "MAPE %")
    table([Col("method"), *(Col(n, "right") for n in names)], rows, title="summary", out=out)
    out.print(f"* the method scale tick uses (SCALE_FORECAST={m['production_method']})", highlight=False)
    for name, c in result.get("comparison", {}).items():
        out.print(
            f"{name} vs holt: backlog-minutes {_signed(c['backlog_minutes_change_pct'])}, "
            f"worker-minutes {_signed(c['worker_minutes_change_pct'])}, changes {_signed(c['changes_change_pct'])}, "
            f"MAPE {_signed(c['mape_pct_change_pct'])}",
            highlight=False,
        )


def _signed(pct: float | None) -> str:
    return "n/a" if pct is None else f"{pct:+g}%"
