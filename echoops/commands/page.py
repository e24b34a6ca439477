"""`echoops page`: raise incidents, run the pager, summarise, test the channels."""

from __future__ import annotations

from typing import Any

import typer

from echoops.commands.render import JSON_OPT, NOW_OPT, console, emit_json, input_errors, state_text

app = typer.Typer(
    help="Incident inbox and pager: dedup by fingerprint, page CRITICAL to Telegram and email.\n\n"
    "Exit codes: 0 ok, 1 a delivery failed (it is retried later), 2 bad usage or config.\n\n"
    "Example: echoops page raise --severity CRITICAL --msg 'SLO burn' --source slo",
    no_args_is_help=True,
)


def _meta(raw: str | None) -> Any:
    if raw is None:
        return None
    import orjson

    from echoops.core.errors import ValidationError

    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise ValidationError("--meta is not valid JSON", field="meta") from None


def _deliveries(states: dict[str, str]) -> str:
    return ", ".join(f"{channel} {state_text(state)}" for channel, state in states.items()) or "not paged"


@app.command("raise")
def raise_cmd(
    severity: str = typer.Option(..., "--severity", help="CRITICAL, ERROR, WARNING or INFO (CRITICAL pages)."),
    msg: str = typer.Option(..., "--msg", help="What happened (<= 4 KiB)."),
    source: str = typer.Option(..., "--source", help="What raised it (<= 100 chars)."),
    meta: str = typer.Option(None, "--meta", help="Extra context as a JSON object (<= 16 KiB)."),
    fingerprint: str = typer.Option(None, "--fingerprint", help="Dedup key (default: from source + msg)."),
    send: bool = typer.Option(True, "--send/--no-send", help="Deliver now (default) or only enqueue."),
    json_out: bool = JSON_OPT,
    now: str | None = NOW_OPT,
) -> None:
    """Raise an incident; a CRITICAL is paged (once per fingerprint per PAGER_REPEAT_MIN).

    Example: echoops page raise --severity CRITICAL --msg 'SLO burn' --source slo --meta '{"burn":14.4}'
    """
    from echoops.core import clock, pager

    t = clock.parse_cli_time(now)
    body = pager.raise_incident(severity, msg, source, _meta(meta), fingerprint, now=t, send=send)
    if json_out:
        emit_json(body)
    else:
        kind = "deduped into" if body["deduped"] else "new"
        console().print(
            f"{kind} incident [bold]{body['id']}[/] fingerprint {body['fingerprint'][:16]}: "
            f"{_deliveries(body.get('deliveries', body['channels']))}",
            highlight=False,
        )
    if "failed" in body.get("deliveries", {}).values():
        raise typer.Exit(1)


@app.command("run")
def run_cmd(
    drain_only: bool = typer.Option(False, "--drain-only", help="Only deliver what is queued; read no logs."),
    json_out: bool = JSON_OPT,
    now: str | None = NOW_OPT,
) -> None:
    """Turn new CRITICAL lines of logs/*.ndjson into incidents and deliver queued pages (the scheduler's job).

    Example: echoops page run   (schedule.cron: */5 * * * * echoops page run)
    """
    from echoops.core import clock, pager

    body = pager.run(now=clock.parse_cli_time(now), ingest=not drain_only)
    if json_out:
        emit_json(body)
    else:
        ingest = body["ingest"]
        out = console()
        if ingest is not None:
            input_errors(ingest["errors"])
            new = sum(1 for i in ingest["incidents"] if not i["deduped"])
            out.print(
                f"read {ingest['lines']} new lines in {ingest['files']} files: {ingest['critical']} CRITICAL, "
                f"{new} new incidents, {ingest['bad']} bad lines skipped",
                highlight=False,
            )
        done = ", ".join(f"{n} {state_text(state)}" for state, n in body["deliveries"].items())
        out.print(f"delivery attempts: {done or 'none due'}")
    if body["deliveries"].get("failed"):
        raise typer.Exit(1)


@app.command("summarize")
def summarize_cmd(
    hours: float = typer.Option(24, "--hours", help="Window in hours (0 < h <= 744)."),
    json_out: bool = JSON_OPT,
    now: str | None = NOW_OPT,
) -> None:
    """Incidents of the last N hours grouped by fingerprint, with delivery state per channel.

    Also writes logs/incident_summary.json.
    Example: echoops page summarize --hours 6 --json | jq .totals
    """
    from rich.markup import escape
    from rich.table import Table

    from echoops.core import clock, pager

    body = pager.summarize(hours=hours, now=clock.parse_cli_time(now))
    if json_out:
        emit_json(body)
        return
    table = Table(title=f"Incidents, last {body['hours']:g}h", title_justify="left")
    for col in ("last seen", "sev", "source", "msg", "count", "pages", "telegram", "email"):
        table.add_column(col, justify="right" if col in ("count", "pages") else "left")
    for g in body["groups"]:
        d = g["deliveries"]
        table.add_row(
            g["last_seen"][:19].replace("T", " "),
            g["severity"],
            escape(g["source"]),
            escape(g["msg"][:60]),
            str(g["count"]),
            str(g["pages"]),
            state_text(d["telegram"]) if "telegram" in d else "-",
            state_text(d["email"]) if "email" in d else "-",
        )
    out = console()
    out.print(table)
    t = body["totals"]
    out.print(
        f"{t['groups']} groups, {t['incidents']} incidents, {t['pages']} pages; deliveries "
        + ", ".join(f"{k} {v}" for k, v in t["deliveries"].items()),
        highlight=False,
    )


@app.command("test")
def test_cmd(
    channel: str = typer.Option(None, "--channel", help="telegram or email (default: every configured one)."),
    json_out: bool = JSON_OPT,
) -> None:
    """Send a real test message now and print what the channel answered (exit 1 if it refused).

    Example: echoops page test --channel telegram
    """
    from rich.markup import escape

    from echoops.core import pager

    body = pager.send_test(channel)
    if json_out:
        emit_json(body)
    else:
        out = console()
        for name, r in body["results"].items():
            word = state_text("ok" if r["ok"] else "failed")
            out.print(f"{name}: {word} {escape(str(r['status']))} {escape(r['detail'])}", highlight=False)
    if not all(r["ok"] for r in body["results"].values()):
        raise typer.Exit(1)
