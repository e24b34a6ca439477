"""`echoops costs`: AI spend and Stripe fees against daily caps (status, tick, set-cap, check)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from echoops.commands import jobs
from echoops.commands.render import (
    JSON_OPT,
    NOW_OPT,
    STATE_STYLE,
    Col,
    console,
    emit_json,
    panel,
    reading,
    state_text,
    table,
    when,
)
from echoops.commands.render import usd as dollars
from echoops.core import clock

if TYPE_CHECKING:  # the result types, for the printers (no import cost at run time)
    from echoops.core.costs.types import CostsStatus, Scope

app = typer.Typer(
    help="Cost guardrails: AI spend and Stripe fees per UTC day against caps; degrade AI calls, never admin.\n\n"
    "Exit codes: 0 ok, 1 throttled (costs check) or Stripe fees could not be read (costs tick), "
    "2 bad usage or config.\n\n"
    "Example: echoops costs status --json | jq .global",
    no_args_is_help=True,
)


def _bar(pct: float | None, width: int = 10) -> str:
    if pct is None:
        return " " * width
    filled = min(width, int(round(min(pct, 100) * width / 100)))
    return "█" * filled + "░" * (width - filled)


def _row(name: str, entry: Scope) -> list[str]:
    state = entry.get("state", "ok")
    pct = entry.get("pct")
    used = "-" if pct is None else f"[{STATE_STYLE.get(state, 'white')}]{_bar(pct)}[/] {pct:.1f}%"
    action = entry.get("action")
    shown = state_text(state) + (f"\n[dim]calls: {action}[/]" if action and action != "allow" else "")
    return [
        name,
        dollars(entry.get("spent_usd")),
        dollars(entry.get("cap_usd")),
        used,
        shown,
        dollars(entry.get("forecast_usd")),
    ]


def _sources(body: CostsStatus) -> str:
    """Where each cap came from and since when: `global env since …, gpt-4o api since …`."""
    parts = []
    for name, entry in [("global", body["global"]), *body["models"].items()]:
        if entry.get("cap_source"):
            since = entry.get("cap_since")
            parts.append(f"{name} {entry['cap_source']}" + (f" since {when(since, zone=True)}" if since else ""))
    return ", ".join(parts) or "no caps"


RANK = {"ok": 0, "warn": 1, "throttle": 2}


def _show(body: CostsStatus) -> None:
    # lazy: rich costs ~15 ms; only human output needs it
    from rich.markup import escape

    g = body["global"]
    worst = max([g["state"], *(m["state"] for m in body["models"].values())], key=lambda st: RANK.get(st, 0))
    lines = []
    if body.get("mode") == "monitor":
        lines.append(
            "[bold yellow]MONITORING ONLY[/] (COST_ENFORCE=false): caps are measured and alert; "
            "AI calls are never throttled"
        )
    cap = (
        f" of {dollars(g['cap_usd'])} ({g['pct']:.1f}%)"
        if g.get("cap_usd") is not None and g.get("pct") is not None
        else ""
    )
    forecast = dollars(g["forecast_usd"])
    lines.append(f"global {dollars(g['spent_usd'])}{cap} {state_text(g['state'])}; forecast {forecast} by midnight UTC")
    fees = body["stripe_fees"]
    fee_cap = f" of {dollars(fees['cap_usd'])} ({fees.get('state', 'ok').upper()})" if "cap_usd" in fees else ""
    fetched = f", fetched {when(fees['fetched_at'], zone=True)}" if fees.get("fetched_at") else ""
    source = escape(fees.get("source") or "none")
    lines.append(f"Stripe fees today: {dollars(fees['spent_usd'])}{fee_cap} (source: {source}{fetched})")
    if fees.get("error"):
        lines.append(
            f"[bold red]Stripe fee read failed[/] at {when(fees['error_at'], zone=True)}: {escape(fees['error'])}"
        )
    if body["unpriced"]:
        lines.append(
            f"[yellow]unpriced models (counted at the default price):[/] {escape(', '.join(body['unpriced']))}"
        )
    calls = body["calls"]
    expired = f", {calls['expired']} expired (settled at their estimate by the next tick)" if calls["expired"] else ""
    lines.append(
        f"per call: {calls['in_flight']} in flight ({dollars(calls['reserved_usd'])} reserved){expired}; "
        f"{calls['per_min']:g} calls/min recorded one by one (last 5 min); "
        f"unsettled reservations settle at their estimate after {calls['ttl_s']} s"
    )
    lines.append(f"caps from: {escape(_sources(body))}")
    updated = body["updated_at"]
    lines.append(
        f"[dim]updated {when(updated, seconds=True, zone=True) if updated else 'never (run: echoops costs tick)'}[/]"
    )
    out = console()
    panel(f"AI spend on {body['day']} (UTC)", lines, state=worst, out=out)
    rows = [_row("global", g)] + [_row(escape(name), entry) for name, entry in body["models"].items()]
    cols = [
        Col("scope"),
        Col("spent", "right"),
        Col("cap", "right"),
        Col("used"),
        Col("state"),
        Col("forecast", "right"),
    ]
    table(cols, rows, out=out)


@app.command("status")
def status_cmd(json_out: bool = JSON_OPT, now: str | None = NOW_OPT) -> None:
    """Show today's spend, caps, utilisation bars, forecast and Stripe fees (reads; ingests nothing).

    Example: echoops costs status --json | jq '.models["gpt-4o-mini"]'
    """
    from echoops.core import costs  # lazy: 15-45 ms a package, off --help and other commands

    with reading():
        body = costs.status(now=clock.parse_cli_time(now))
    if json_out:
        emit_json(body)
    else:
        _show(body)


@app.command("tick")
def tick_cmd(json_out: bool = JSON_OPT, now: str | None = NOW_OPT) -> None:
    """Ingest new AI usage and Stripe fees, recompute decisions, alert, log cost_tick (the scheduler's job).

    Exit 1 when the Stripe fees could not be read (AI spend was still ingested and the caps
    applied); the error is also in `costs status` until a read succeeds.

    Example: echoops costs tick   (schedule.cron: 0 * * * * echoops costs tick)
    """
    code = jobs.costs_tick(now, json_out)  # the same body `echoops costs tick` runs without Typer
    if code:
        raise typer.Exit(code)


@app.command("set-cap")
def set_cap_cmd(
    scope: str = typer.Option(..., "--scope", help="daily (global AI cap) or model."),
    key: str | None = typer.Option(None, "--key", help="The model name (required with --scope model)."),
    usd: str = typer.Option(..., "--usd", help="Cap in USD per UTC day, a finite number >= 0."),
    json_out: bool = JSON_OPT,
) -> None:
    """Set a daily cap that overrides the environment until changed (logged as cap_set). Exit 2 when invalid.

    Example: echoops costs set-cap --scope model --key gpt-4o-mini --usd 20
    """
    from echoops.core import costs  # lazy: 15-45 ms a package, off --help and other commands

    body = costs.set_cap(scope, key, usd)
    if json_out:
        emit_json(body)
        return
    cap = body["cap"]
    what = "global daily" if cap["scope"] == "daily" else f"{cap['key']}"
    console().print(
        f"{what} cap: {dollars(cap['old_usd_cap'])} ({cap['old_source'] or 'unset'}) -> {dollars(cap['usd_cap'])}",
        highlight=False,
        markup=False,
    )


@app.command("record")
def record_cmd(
    model: str = typer.Argument(..., help="The model the call went to."),
    input_tokens: int | None = typer.Option(None, "--input-tokens", help="Prompt tokens (priced from the table)."),
    output_tokens: int | None = typer.Option(None, "--output-tokens", help="Completion tokens."),
    usd: str | None = typer.Option(None, "--usd", help="The call's cost in USD instead of tokens."),
    json_out: bool = JSON_OPT,
    now: str | None = NOW_OPT,
) -> None:
    """Count one AI call against today's caps now (no tick needed); print the next call's decision.

    Give --input-tokens/--output-tokens (priced like ai_usage.ndjson lines) or --usd. Do not also
    write the call to ai_usage.ndjson: it would count twice. Exit 0 when recorded (whatever the
    decision), 2 when invalid. --json prints what POST /api/costs/usage returns.

    Example: echoops costs record gpt-4o-mini --input-tokens 812 --output-tokens 95
    Example: echoops costs record gpt-4o --usd 0.0123 --json | jq -r .decision.action
    """
    from echoops.core import costs  # lazy: 15-45 ms a package, off --help and other commands

    body = {"model": model, "input_tokens": input_tokens, "output_tokens": output_tokens, "usd": usd}
    recorded = costs.usage_request(body, now=clock.parse_cli_time(now))
    if json_out:
        emit_json(recorded)
        return
    d = recorded["decision"]
    target = f" -> {d['model']}" if d["action"] == "switch" else ""
    console().print(
        f"recorded ${recorded['recorded_usd']:.6f} on {model}; next call: {d['action'].upper()}{target}: {d['reason']}",
        highlight=False,
        markup=False,
        soft_wrap=True,
    )


@app.command("check")
def check_cmd(
    model: str = typer.Argument(..., help="The model the app wants to call."),
    json_out: bool = JSON_OPT,
    now: str | None = NOW_OPT,
):
    """Show the guard decision for one AI call; exit 0 allow/switch, 1 throttle.

    --json prints exactly what GET /api/costs/check?model=MODEL returns.

    Example: echoops costs check gpt-4o || echo "AI throttled until UTC midnight"
    Example: echoops costs check gpt-4o --json | jq -r .model
    """
    from echoops.core import costs  # lazy: 15-45 ms a package, off --help and other commands

    decision = costs.check(model, now=clock.parse_cli_time(now))
    if json_out:
        emit_json(decision)
    else:
        action = decision["action"]
        target = f" -> {decision['model']}" if action == "switch" else ""
        retry = f" (retry in {decision['retry_after_s']} s)" if action == "throttle" else ""
        console().print(f"{action.upper()}{target}: {decision['reason']}{retry}", highlight=False, markup=False)
    if decision["action"] == "throttle":
        raise typer.Exit(1)
