"""`echoops page ack|resolve|silence|silences|unsilence`: answering pages (wired in page.py).

Each parses, makes one core call (`pager.ack`, `resolve`, `add_silence`, `list_silences`,
`remove_silence`) and renders; `--json` prints the body of the matching endpoint.
"""

from __future__ import annotations

import getpass
from typing import Any

import typer

from echoops.commands.render import JSON_OPT, NOW_OPT, Col, console, emit_json, state_text, table, when
from echoops.core import clock
from echoops.core.errors import ValidationError
from echoops.core.parsers import duration_s

BY_OPT = typer.Option(None, "--by", help="Who does it (default: your login name).")


def _login() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name (a container without a passwd entry)
        return "cli"


def _action_line(body: dict[str, Any], verb: str) -> str:
    if body["changed"]:
        if verb == "acked":
            return f"acked {body['id']} as {body['acked_by']}: repeats held until {body['ack_until']}"
        notices = ", ".join(f"{k} {v}" for k, v in body["notices"].items()) or "no channel had delivered the page"
        return f"resolved {body['id']} as {body['resolved_by']}; RESOLVED notice: {notices}"
    if body["state"] == "resolved":
        return f"{body['id']} was already resolved by {body['resolved_by']} at {body['resolved_at']}"
    return f"{body['id']} was already acked by {body['acked_by']} (until {body['ack_until']})"


def ack_cmd(
    target: str = typer.Argument(..., help="An incident id (inc_...) or a fingerprint (its latest incident)."),
    by: str = BY_OPT,
    json_out: bool = JSON_OPT,
    now: str | None = NOW_OPT,
) -> None:
    """Acknowledge an incident ("I'm on it"): its repeats are counted, not paged, nor escalated.

    Holds until it is resolved or PAGER_ACK_HOURS pass. A repeat changes nothing (exit 0);
    exit 1 for an unknown incident or fingerprint.

    Example: echoops page ack inc_0193a1b2c3d4e5f6a7b8c9 --by alice
    """
    from echoops.core import pager  # lazy: 15-45 ms a package, off --help and other commands

    body = pager.ack(target, by=by or _login(), now=clock.parse_cli_time(now), send=True)
    if json_out:
        emit_json(body)
    else:
        console().print(_action_line(dict(body), "acked"), highlight=False, soft_wrap=True)


def resolve_cmd(
    target: str = typer.Argument(..., help="An incident id (inc_...) or a fingerprint (its latest incident)."),
    note: str = typer.Option(None, "--note", help="What fixed it (<= 500 characters), shown in the notice."),
    by: str = BY_OPT,
    json_out: bool = JSON_OPT,
    now: str | None = NOW_OPT,
) -> None:
    """Resolve an incident ("it's fixed"): one RESOLVED notice to each channel that got its page.

    The notice carries the message, how long it lasted and the note; the fingerprint's next raise
    pages again at once. A repeat changes nothing (exit 0); exit 1 for an unknown one.

    Example: echoops page resolve inc_0193a1b2c3d4e5f6a7b8c9 --note 'rolled back v42'
    """
    from echoops.core import pager  # lazy: 15-45 ms a package, off --help and other commands

    body = pager.resolve(target, by=by or _login(), note=note, now=clock.parse_cli_time(now), send=True)
    if json_out:
        emit_json(body)
    else:
        console().print(_action_line(dict(body), "resolved"), highlight=False, soft_wrap=True)


def silence_cmd(
    match: list[str] = typer.Option(
        ..., "--match", help="key=value: source, severity, fingerprint, or msg~=text (repeat to AND them)."
    ),
    for_: str = typer.Option(..., "--for", help="How long: 30m, 2h, 1d (1 minute to 30 days)."),
    reason: str = typer.Option(..., "--reason", help="Why (shown with the silence)."),
    by: str = BY_OPT,
    json_out: bool = JSON_OPT,
    now: str | None = NOW_OPT,
) -> None:
    """Silence matching incidents for a while: they are recorded (state silenced), not paged or escalated.

    Example: echoops page silence --match source=db --match msg~=replication --for 2h --reason 'db migration'
    """
    from echoops.core import pager  # lazy: 15-45 ms a package, off --help and other commands

    try:
        seconds = duration_s(for_, lo=60, hi=30 * 86400)
    except ValueError as exc:
        raise ValidationError(f"--for: {exc}", field="for") from None
    body = pager.add_silence(match, seconds, reason, by=by or _login(), now=clock.parse_cli_time(now))
    if json_out:
        emit_json(body)
    else:
        console().print(
            f"silence {body['id']} ({_describe(body['match'])}) until {body['ends_at']}: {body['reason']}",
            highlight=False,
        )


def _describe(match: dict[str, str]) -> str:
    return " ".join(f"{k}{'' if k.endswith('~') else '='}{v}" for k, v in match.items())


def _left(seconds: int) -> str:
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h {rest // 60:02d}m" if hours else f"{rest // 60}m {rest % 60:02d}s"


def silences_cmd(
    all_recent: bool = typer.Option(False, "--all", help="Also silences that ended in the last 7 days."),
    json_out: bool = JSON_OPT,
    now: str | None = NOW_OPT,
) -> None:
    """The silences in force, with time left (and with --all the recently ended ones).

    Example: echoops page silences --json | jq '.silences[].id'
    """
    # lazy: rich costs ~15 ms; only human output needs it
    from rich.markup import escape

    from echoops.core import pager  # lazy: 15-45 ms a package, off --help and other commands

    body = pager.list_silences(all_recent=all_recent, now=clock.parse_cli_time(now))
    if json_out:
        emit_json(body)
        return
    out = console()
    if not body["silences"]:
        out.print("no silences in force" + (" or ended in the last 7 days" if all_recent else ""), highlight=False)
        return
    rows = [
        [
            f"{x['id']}\n{state_text(x['state'])} [dim]by {escape(x['created_by'])}[/]",
            (f"{_left(x['left_s'])} left\n" if x["state"] == "active" else "") + f"[dim]to[/] {when(x['ends_at'])}",
            f"[bold]{escape(_describe(x['match']))}[/] [dim]({x['matched']:,} kept quiet)[/]\n{escape(x['reason'])}",
        ]
        for x in body["silences"]
    ]
    cols = [Col("silence"), Col("time (UTC)"), Col("match / reason", wide=True)]
    table(cols, rows, title="Silences", out=out)


def unsilence_cmd(
    silence_id: str = typer.Argument(..., help="The silence (sil_...)."),
    by: str = BY_OPT,
    json_out: bool = JSON_OPT,
    now: str | None = NOW_OPT,
) -> None:
    """End a silence now (exit 1 when there is no such silence; ending an ended one changes nothing).

    Example: echoops page unsilence sil_0193a1b2c3d4a1b2c3
    """
    from echoops.core import pager  # lazy: 15-45 ms a package, off --help and other commands

    body = pager.remove_silence(silence_id, by=by or _login(), now=clock.parse_cli_time(now))
    if json_out:
        emit_json(body)
    else:
        console().print(
            f"silence {body['id']} {body['state']} ({_describe(body['match'])})", highlight=False, soft_wrap=True
        )
