"""`echoops slo`: status, tick, rebaseline and the deploy gate (each one core call, then render)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer

from echoops.commands import jobs, render
from echoops.core import clock

if TYPE_CHECKING:  # the result types, for the printers (no import cost at run time)
    from echoops.core.slo.types import SloStatus

app = typer.Typer(
    help="SLOs and error budgets: burn rates, state, deploy gate.\n\nExample: echoops slo status --json | jq .state",
    no_args_is_help=True,
)


def _fmt(value: Any, unit: str = "") -> str:
    return "-" if value is None else f"{value:g}{unit}"


def _panel(doc: SloStatus) -> None:
    # lazy: rich costs ~15 ms; only human output needs it
    from rich.markup import escape

    target = doc["target"]
    lines = [
        f"state {render.state_text(doc['state'])}   burn alert: {escape(doc['burn_alert'])}",
        f"p95 {_fmt(doc['p95_ms'], ' ms')} / p99 {_fmt(doc['p99_ms'], ' ms')} over {doc['period']} "
        f"(target p95 <= {target['p95_ms']:g} ms)",
        f"error rate {doc['error_rate'] * 100:.3f}% over {doc['period']} of {doc['requests']:,} requests "
        f"(budget {target['error_budget_pct']:g}%)",
        f"remaining budget ({doc['budget']['window']}): {doc['remaining_budget_pct']:.1f}%",
    ]
    stale = doc.get("stale")
    if stale:
        good = render.when(stale["last_good_at"], zone=True) if stale["last_good_at"] else "no tick has succeeded yet"
        lines.append(
            f"[bold yellow]STALE[/] since {render.when(stale['since'], zone=True)} ({stale['failed_ticks']} failed "
            f"ticks): {escape(stale['error'])}; showing the last good status ({escape(good)})"
        )
    gate = doc["gate"]
    if gate["set"]:
        lines.append(
            f"[bold red]DEPLOY GATE SET[/] since {render.when(gate['since'], zone=True)}: {escape(gate['reason'])}"
        )
    else:
        lines.append("deploy gate: open")
    override = gate.get("override")
    if override:
        lines.append(
            f"[yellow]override[/] by {escape(override['by'])} since {render.when(override['since'], zone=True)}: "
            f"{escape(override['reason'])} (ends {escape(override['ends'])})"
        )
    lines.extend(f"- {escape(r)}" for r in doc["reasons"])
    lines.extend(f"[dim]note: {escape(n)}[/]" for n in doc["notes"])
    lines.append(
        f"[dim]updated {render.when(doc['updated_at'], seconds=True, zone=True) if doc['updated_at'] else 'never'}[/]"
    )
    out = render.console()
    render.panel("SLO & Error Budget", lines, state=doc["state"], out=out)
    cols = [render.Col(name, justify="right") for name in ("window", "requests", "errors", "error rate", "burn")]
    thin = not all(w["enough_traffic"] for w in doc["windows"].values())
    rows = []
    for name, w in doc["windows"].items():
        row = [name, f"{w['requests']:,}", f"{w['errors']:,}", f"{w['error_rate'] * 100:.3f}%", f"{w['burn']:.2f}"]
        if thin:
            row.append("" if w["enough_traffic"] else "[dim]too few requests to alarm[/]")
        rows.append(row)
    if thin:
        cols.append(render.Col("note", wide=True))
    render.table(cols, rows, out=out)


@app.command("status")
def status(json_out: bool = render.JSON_OPT) -> None:
    """Show SLO state, latency, error rate, burn and the gate.

    As of the last tick; --json prints exactly what GET /api/slo/status returns.

    Example: echoops slo status --json | jq '.burn'
    """
    from echoops.core import slo  # lazy: 15-45 ms a package, off --help and other commands

    with render.reading():
        doc = slo.status()
    if json_out:
        render.emit_json(doc)
        return
    _panel(doc)


@app.command("tick")
def tick(
    now: str | None = render.NOW_OPT,
    json_out: bool = render.JSON_OPT,
) -> None:
    """Ingest new requests; update budgets, state, gate, files.

    Writes slo_status.json and a slo_tick event to slo_budget.ndjson; sets deploy_gate.flag
    and pages when the error budget burns too fast. The scheduler runs it every 15 minutes.

    Example: echoops slo tick --now 2026-11-27T12:00:00Z
    """
    code = jobs.slo_tick(now, json_out)  # the same body `echoops slo tick` runs without Typer
    if code:
        raise typer.Exit(code)


@app.command("ingest")
def ingest(
    now: str | None = render.NOW_OPT,
    json_out: bool = render.JSON_OPT,
) -> None:
    """Fold this host's new request-log lines into per-minute aggregates (no status or gate).

    The host-local job of every host sharing a PostgreSQL store (ECHOOPS_DB_URL): each host
    ingests the logs it writes; the leader's `slo tick` computes over all of them.

    Example: */5 * * * * @local echoops slo ingest   (in schedule.cron)
    """
    code = jobs.slo_ingest(now, json_out)  # the same body `echoops slo ingest` runs without Typer
    if code:
        raise typer.Exit(code)


@app.command("rebaseline")
def rebaseline(
    reason: str = typer.Option(None, "--reason", help="Why (logged in slo_budget.ndjson)."),
    json_out: bool = render.JSON_OPT,
) -> None:
    """Restart the rolling windows now (nothing is deleted).

    Data before now is excluded from every window from then on; the event is logged.

    Example: echoops slo rebaseline --reason "fixed the bad deploy"
    """
    from echoops.core import slo  # lazy: 15-45 ms a package, off --help and other commands

    result = slo.rebaseline(reason)
    if json_out:
        render.emit_json(result)
        return
    render.console().print(
        f"SLO windows rebaselined at {result['rebaseline_at']}; state {render.state_text(result['status']['state'])}",
        highlight=False,
    )


@app.command("gate")
def gate(
    clear: bool = typer.Option(False, "--clear", help="Remove the deploy gate flag and keep it off (needs --reason)."),
    reason: str = typer.Option(None, "--reason", help="Why the gate is cleared (logged)."),
    for_: str = typer.Option(
        None, "--for", help="With --clear: how long the override may hold at most (30m, 6h, 2d; default 24h)."
    ),
    json_out: bool = render.JSON_OPT,
    now: str | None = render.NOW_OPT,
) -> None:
    """Deploy gate for CI: exit 0 open, 1 set; --clear removes it and keeps it off.

    When set, prints the reason on stderr. --clear records an override: the next ticks do not
    set the gate again until the burn has dropped to 2x or below and then stayed above 2x for
    a full 2h, or until --for (default 24h) has passed.

    Exit codes: 0 open (or cleared), 1 gate set, 2 --clear without --reason, a bad --for.

    Example: echoops slo gate || echo "deploys paused: error budget burning"
    Example: echoops slo gate --clear --reason "rolled back v42" --for 6h
    """
    from echoops.core import slo  # lazy: 15-45 ms a package, off --help and other commands
    from echoops.core.errors import ValidationError

    t = clock.parse_cli_time(now)
    if clear:
        result = slo.clear_gate(reason, for_s=for_, now=t)
        if json_out:
            render.emit_json(result)
            return
        word = "cleared" if result["cleared"] else "was not set"
        render.console().print(
            f"deploy gate {word} (reason: {result['reason']}); override until {result['override']['until']}",
            highlight=False,
            markup=False,
        )
        return
    if for_ is not None:
        raise ValidationError("--for goes with --clear", field="for")
    with render.reading():
        if json_out:
            render.emit_json(slo.gate(now=t))
        slo.require_gate_open()  # DeployGateSet -> "Error: deploy gate is set…: reason" on stderr, exit 1
    if not json_out:
        render.console().print("deploy gate open", highlight=False)
