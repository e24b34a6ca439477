"""`echoops slo`: status, tick, rebaseline and the deploy gate (each one core call, then render)."""

from __future__ import annotations

from typing import Any

import typer

from echoops.commands import render

app = typer.Typer(
    help="SLOs and error budgets: burn rates, state, deploy gate.\n\nExample: echoops slo status --json | jq .state",
    no_args_is_help=True,
)


def _fmt(value: Any, unit: str = "") -> str:
    return "-" if value is None else f"{value:g}{unit}"


def _panel(doc: dict[str, Any]) -> None:
    from rich.markup import escape
    from rich.panel import Panel
    from rich.table import Table

    style = render.STATE_STYLE.get(doc["state"], "white")
    target = doc["target"]
    lines = [
        f"state {render.state_text(doc['state'])}   burn alert: {escape(doc['burn_alert'])}",
        f"p95 {_fmt(doc['p95_ms'], ' ms')} / p99 {_fmt(doc['p99_ms'], ' ms')} over {doc['period']} "
        f"(target p95 <= {target['p95_ms']:g} ms)",
        f"error rate {doc['error_rate'] * 100:.3f}% over {doc['period']} of {doc['requests']} requests "
        f"(budget {target['error_budget_pct']:g}%)",
        f"remaining budget ({doc['budget']['window']}): {doc['remaining_budget_pct']:.1f}%",
    ]
    gate = doc["gate"]
    if gate["set"]:
        lines.append(f"[bold red]DEPLOY GATE SET[/] since {escape(str(gate['since']))}: {escape(gate['reason'])}")
    else:
        lines.append("deploy gate: open")
    lines.extend(f"- {escape(r)}" for r in doc["reasons"])
    lines.extend(f"[dim]note: {escape(n)}[/]" for n in doc["notes"])
    lines.append(f"[dim]updated {doc['updated_at'] or 'never'}[/]")
    table = Table(show_header=True, box=None)
    for col in ("window", "requests", "errors", "error rate", "burn"):
        table.add_column(col, justify="right")
    for name, w in doc["windows"].items():
        burn = f"{w['burn']:.2f}" + ("" if w["enough_traffic"] else " (low traffic)")
        table.add_row(name, str(w["requests"]), str(w["errors"]), f"{w['error_rate'] * 100:.3f}%", burn)
    out = render.console()
    out.print(Panel("\n".join(lines), title="SLO & Error Budget", border_style=style), highlight=False)
    out.print(table)


@app.command("status")
def status(json_out: bool = render.JSON_OPT) -> None:
    """Show SLO state, latency, error rate, burn and the gate.

    As of the last tick; --json prints exactly what GET /api/slo/status returns.

    Example: echoops slo status --json | jq '.burn'
    """
    from echoops.core import slo

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
    from echoops.core import clock, slo

    result = slo.tick(now=clock.parse_cli_time(now))
    if json_out:
        render.emit_json(result)
        return
    doc, ing = result["status"], result["ingest"]
    render.input_errors(ing["errors"])
    out = render.console()
    out.print(
        f"slo tick: {ing['lines']} new lines ({ing['bad']} bad), state {render.state_text(doc['state'])}, "
        f"p95 {_fmt(doc['p95_ms'], ' ms')}, error rate {doc['error_rate'] * 100:.3f}%, "
        f"burn 1h {doc['burn']['1h']:.2f}, remaining {doc['remaining_budget_pct']:.1f}%",
        highlight=False,
    )
    if result["gate_set"]:
        out.print(f"[bold red]deploy gate set:[/] {doc['gate']['reason']}", highlight=False)


@app.command("rebaseline")
def rebaseline(
    reason: str = typer.Option(None, "--reason", help="Why (logged in slo_budget.ndjson)."),
    json_out: bool = render.JSON_OPT,
) -> None:
    """Restart the rolling windows now (nothing is deleted).

    Data before now is excluded from every window from then on; the event is logged.

    Example: echoops slo rebaseline --reason "fixed the bad deploy"
    """
    from echoops.core import slo

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
    clear: bool = typer.Option(False, "--clear", help="Remove the deploy gate flag (needs --reason)."),
    reason: str = typer.Option(None, "--reason", help="Why the gate is cleared (logged)."),
    json_out: bool = render.JSON_OPT,
) -> None:
    """Deploy gate for CI: exit 0 open, 1 set; --clear removes it.

    When set, prints the reason on stderr.

    Exit codes: 0 open (or cleared), 1 gate set, 2 --clear without --reason.

    Example: echoops slo gate || echo "deploys paused: error budget burning"
    """
    from echoops.core import slo

    if clear:
        result = slo.clear_gate(reason)
        if json_out:
            render.emit_json(result)
            return
        word = "cleared" if result["cleared"] else "was not set"
        render.console().print(f"deploy gate {word} (reason: {result['reason']})", highlight=False)
        return
    if json_out:
        render.emit_json(slo.gate())
    slo.require_gate_open()  # DeployGateSet -> "Error: deploy gate is set…: reason" on stderr, exit 1
    if not json_out:
        render.console().print("deploy gate open", highlight=False)
