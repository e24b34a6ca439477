"""`echoops page`: raise incidents, run the pager, summarise, test the channels."""

from __future__ import annotations

from typing import Any

import orjson
import typer

from echoops.commands import answer
from echoops.commands.render import (
    JSON_OPT,
    NOW_OPT,
    Col,
    console,
    emit_json,
    input_errors,
    panel,
    reading,
    state_text,
    table,
    when,
)
from echoops.core import clock
from echoops.core.errors import ValidationError

app = typer.Typer(
    help="Incident inbox and pager: dedup by fingerprint, page CRITICAL to Telegram and email; ack, resolve, "
    "silence.\n\n"
    "Exit codes: 0 ok, 1 a delivery attempt failed (retried up to 6 attempts in all; then `page retry`) or "
    "no such incident/silence, 2 bad usage or config.\n\n"
    "Example: echoops page raise --severity CRITICAL --msg 'SLO burn' --source slo",
    no_args_is_help=True,
)


def _meta(raw: str | None) -> Any:
    if raw is None:
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise ValidationError("--meta is not valid JSON", field="meta") from None


def _deliveries(states: dict[str, str], attempts: dict[str, dict] | None = None) -> str:
    parts = []
    for channel, state in states.items():
        a = (attempts or {}).get(channel) or {}
        text = f"{channel} {state_text(state)}"
        if a.get("attempts") and state != "ok":
            text += f" (attempt {a['attempts']}: {a.get('last_status')}"
            text += f"; retry at {a['retry_at']})" if a.get("retry_at") else ")"
        parts.append(text)
    return ", ".join(parts) or "not paged"


def _attempt_failed(body: dict[str, Any]) -> bool:
    """A delivery this command attempted did not get through (yet)."""
    attempts = body.get("attempts", {})
    return any(
        state in ("failed", "unconfirmed") or (state == "pending" and attempts.get(channel, {}).get("attempts"))
        for channel, state in body.get("deliveries", {}).items()
    )


@app.command("raise")
def raise_cmd(
    severity: str = typer.Option(..., "--severity", help="CRITICAL, ERROR, WARNING or INFO (CRITICAL pages)."),
    msg: str = typer.Option(..., "--msg", help="What happened (<= 4 KiB)."),
    source: str = typer.Option(..., "--source", help="What raised it (<= 100 chars)."),
    meta: str = typer.Option(None, "--meta", help="Extra context as a JSON object (<= 16 KiB)."),
    fingerprint: str = typer.Option(None, "--fingerprint", help="Dedup key (default: from source + msg)."),
    send: bool = typer.Option(True, "--send/--no-send", help="Make the first attempt now (default) or only enqueue."),
    json_out: bool = JSON_OPT,
    now: str | None = NOW_OPT,
) -> None:
    """Raise an incident; a CRITICAL is paged (once per fingerprint per PAGER_REPEAT_MIN).

    Makes the first delivery attempt now and returns: retries are left to the outbox
    (`page run`, or the server's drain thread). Exit 1 when that first attempt failed.

    Example: echoops page raise --severity CRITICAL --msg 'SLO burn' --source slo --meta '{"burn":14.4}'
    """
    from echoops.core import pager  # lazy: 15-45 ms a package, off --help and other commands

    t = clock.parse_cli_time(now)
    body = pager.raise_incident(severity, msg, source, _meta(meta), fingerprint, now=t, send=send)
    if json_out:
        emit_json(body)
    else:
        kind = "deduped into" if body["deduped"] else "new"
        console().print(
            f"{kind} incident [bold]{body['id']}[/] fingerprint {body['fingerprint'][:16]}: "
            f"{_deliveries(body.get('deliveries', body['channels']), body.get('attempts'))}",
            highlight=False,
        )
    if _attempt_failed(body):
        raise typer.Exit(1)


@app.command("retry")
def retry_cmd(
    incident_id: str = typer.Argument(None, help="The incident whose failed deliveries to re-drive."),
    all_failed: bool = typer.Option(False, "--all-failed", help="Every failed delivery instead of one incident's."),
    channel: str = typer.Option(None, "--channel", help="Only this channel (telegram or email)."),
    json_out: bool = JSON_OPT,
    now: str | None = NOW_OPT,
) -> None:
    """Re-drive failed deliveries by hand: a new series of up to 6 attempts, the first one now.

    By id it also re-sends an `unconfirmed` delivery (one whose result was never recorded:
    check the chat first). Exit 1 when nothing matched or a first attempt failed.

    Example: echoops page retry inc_0193a1b2c3d4e5f6a7b8c9 --channel telegram
    """
    from echoops.core import clock, pager  # lazy: 15-45 ms a package, off --help and other commands

    body = pager.retry(incident_id, all_failed=all_failed, channel=channel, now=clock.parse_cli_time(now))
    if json_out:
        emit_json(body)
    else:
        out = console()
        for iid, states in body["deliveries"].items():
            out.print(f"retried {iid}: {_deliveries(states)}", highlight=False)
    if any(state != "ok" for states in body["deliveries"].values() for state in states.values()):
        raise typer.Exit(1)


@app.command("run")
def run_cmd(
    drain_only: bool = typer.Option(False, "--drain-only", help="Only deliver what is queued; read no logs."),
    logs_only: bool = typer.Option(
        False, "--logs-only", help="Only turn this host's new CRITICAL log lines into incidents; deliver nothing."
    ),
    json_out: bool = JSON_OPT,
    now: str | None = NOW_OPT,
) -> None:
    """Turn new CRITICAL lines of logs/*.ndjson into incidents and deliver queued pages (the scheduler's job).

    Also rewrites logs/incident_summary.json with the last 24h. With --now the clock is
    simulated: what is due at that instant is attempted, nothing is waited for.
    --logs-only is the host-local job of a host sharing a PostgreSQL store: its own logs
    become incidents; the servers' delivery threads send them.

    Example: echoops page run   (schedule.cron: */5 * * * * echoops page run)
    """
    from rich.markup import escape  # lazy: rich costs ~15 ms; only human output needs it

    from echoops.core import pager  # lazy: 15-45 ms a package, off --help and other commands

    if drain_only and logs_only:
        raise typer.BadParameter("--drain-only and --logs-only exclude each other", param_hint="--logs-only")
    if logs_only:
        read = pager.ingest_logs(now=clock.parse_cli_time(now))
        if json_out:
            emit_json(read)
            return
        input_errors(read["errors"])
        console().print(
            f"read {read['lines']} new lines in {read['files']} files: {read['critical']} CRITICAL, "
            f"{read['new_incidents']} new incidents, {read['bad']} bad lines skipped",
            highlight=False,
        )
        return
    body = pager.run(now=clock.parse_cli_time(now), ingest=not drain_only)
    if json_out:
        emit_json(body)
    else:
        ingest = body["ingest"]
        out = console()
        if ingest is not None:
            input_errors(ingest["errors"])
            out.print(
                f"read {ingest['lines']} new lines in {ingest['files']} files: {ingest['critical']} CRITICAL, "
                f"{ingest['new_incidents']} new incidents, {ingest['bad']} bad lines skipped",
                highlight=False,
            )
        kept, pressed = body["upkeep"], body["buttons"]
        if pressed["polled"]:
            out.print(
                f"telegram buttons: {pressed['acted']} presses acted on, {pressed['ignored']} ignored"
                + (f"; [yellow]getUpdates failed:[/] {escape(pressed['error'])}" if pressed["error"] else ""),
                highlight=False,
                soft_wrap=True,
            )
        if any(kept.values()):
            out.print(
                f"escalated {kept['escalated']}, acks expired {kept['acks_expired']}, "
                f"silences ended {kept['silences_expired']}",
                highlight=False,
            )
        done = ", ".join(f"{n} {state_text(state)}" for state, n in body["deliveries"].items())
        out.print(f"delivery attempts: {done or 'none due'}")
        waiting = body["summary"]["deliveries"]
        if waiting.get("failed") or waiting.get("unconfirmed"):
            out.print(
                f"[red]needs attention:[/] {waiting['failed']} failed, {waiting['unconfirmed']} unconfirmed "
                "(echoops page summarize; echoops page retry ID)",
                highlight=False,
            )
    if body["deliveries"].get("failed") or body["deliveries"].get("unconfirmed"):
        raise typer.Exit(1)


@app.command("summarize")
def summarize_cmd(
    hours: float = typer.Option(24, "--hours", help="Window in hours (0 < h <= 744)."),
    json_out: bool = JSON_OPT,
    now: str | None = NOW_OPT,
) -> None:
    """Incidents of the last N hours grouped by fingerprint, with delivery state per channel.

    Failed and unconfirmed deliveries are listed below the table with the command that re-drives
    them. The 24h summary is also written to logs/incident_summary.json.
    Example: echoops page summarize --hours 6 --json | jq .totals
    """
    from echoops.core import pager  # lazy: 15-45 ms a package, off --help and other commands

    with reading():
        body = pager.summarize(hours=hours, now=clock.parse_cli_time(now))
    if json_out:
        emit_json(body)
        return
    _summary(body)


MSG_SHOWN = 300  # characters of a message the table shows (--json has all of it)
SEV_STYLE = {"CRITICAL": "bold red", "ERROR": "red", "WARNING": "yellow", "INFO": "blue"}


def _msg(text: str) -> str:
    # lazy: rich costs ~15 ms; only human output needs it
    from rich.markup import escape

    if len(text) <= MSG_SHOWN:
        return escape(text)
    return f"{escape(text[:MSG_SHOWN])} [dim](+{len(text) - MSG_SHOWN} characters: --json has them)[/]"


def worst_open(groups: list[dict[str, Any]]) -> str | None:
    """The worst severity among groups still open (not acked, silenced or resolved), or None."""
    from echoops.core.pager.model import SEVERITIES  # lazy: only the summary needs the order

    open_ = [g["severity"] for g in groups if g["state"] == "open"]
    return min(open_, key=SEVERITIES.index) if open_ else None


def _summary(body: dict[str, Any]) -> None:
    # lazy: rich costs ~15 ms; only human output needs it
    from rich.markup import escape

    t = body["totals"]
    worst = worst_open(body["groups"])
    states = ", ".join(f"{n} {state}" for state, n in t["by_state"].items() if n) or "none"
    sent = ", ".join(f"{n} {state_text(state)}" for state, n in t["deliveries"].items() if n) or "none"
    lines = [
        (f"worst open: [{SEV_STYLE[worst]}]{worst}[/]" if worst else "[green]nothing open[/]")
        + f"   {t['groups']} groups, {t['incidents']} incidents ({states})",
        f"pages: {t['pages_raised']} raised, {t['pages']} taken by a channel; deliveries: {sent}",
    ]
    for a in body["attention"]:
        error = escape(str(a["last_error"] or a["last_status"]))
        lines.append(
            f"[red]{a['state'].upper()}[/] {a['channel']} delivery of {a['severity']} {escape(a['source'])}: "
            f"{_msg(a['msg'])} after {a['attempts']} attempt(s): {error}  ->  echoops page retry {a['id']}"
        )
    out = console()
    panel_state = "red" if worst in ("CRITICAL", "ERROR") or body["attention"] else "yellow" if worst else "green"
    panel(f"Incidents, last {body['hours']:g}h", lines, state=panel_state, out=out)
    if not body["groups"]:
        return
    rows = []
    for g in body["groups"]:
        who = g["acked_by"] if g["state"] == "acked" else g["resolved_by"] if g["state"] == "resolved" else None
        what = f"[dim]{escape(g['source'])}[/] {_msg(g['msg'])}" + (
            f"\n[dim]{g['state']} by {escape(who)}[/]" if who else ""
        )
        d = g["deliveries"]
        delivery = "\n".join(f"{c} {state_text(st)}" for c, st in d.items()) or "[dim]not paged[/]"
        if g["pages_raised"] > 1:
            delivery += f"\n{g['pages']} of {g['pages_raised']} pages taken"
        rows.append([
            when(g["last_seen"], zone=True).replace(" ", "\n", 1),
            f"{state_text(g['state'])}\n[{SEV_STYLE.get(g['severity'], 'white')}]{g['severity']}[/]",
            what,
            f"{g['count']:,}",
            delivery,
        ])  # fmt: skip
    cols = [Col("last seen"), Col("state"), Col("incident", wide=True), Col("count", justify="right"), Col("delivery")]
    table(cols, rows, out=out)
    for g in body["groups"]:
        if g["pages_raised"] and g["state"] in ("open", "acked"):  # what a person can still answer, and how
            verb = "resolve" if g["state"] == "acked" else "ack"
            out.print(
                f"{state_text(g['state'])} {escape(g['source'])}: echoops page {verb} {g['latest_id']}", highlight=False
            )


@app.command("test")
def test_cmd(
    channel: str = typer.Option(None, "--channel", help="telegram or email (default: every configured one)."),
    json_out: bool = JSON_OPT,
) -> None:
    """Send a real test message now and print what the channel answered (exit 1 if it refused).

    Example: echoops page test --channel telegram
    """
    # lazy: rich costs ~15 ms; only human output needs it
    from rich.markup import escape

    from echoops.core import pager  # lazy: 15-45 ms a package, off --help and other commands

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


# Answering pages (issue 15) lives in its own module; wired here, on the same `page` group.
app.command("ack")(answer.ack_cmd)
app.command("resolve")(answer.resolve_cmd)
app.command("silence")(answer.silence_cmd)
app.command("silences")(answer.silences_cmd)
app.command("unsilence")(answer.unsilence_cmd)
