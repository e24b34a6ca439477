"""`echoops portal`: purchase ledger, signed receipt/invoice links, unsubscribe, access audit."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from echoops.commands.render import JSON_OPT, NOW_OPT, Col, console, emit_json, panel, reading, table, when
from echoops.core import clock
from echoops.core.errors import ValidationError

if TYPE_CHECKING:  # the result types, for the printers (no import cost at run time)
    from echoops.core.portal.types import ImportReport

app = typer.Typer(
    help="Customer portal: purchase ledger, signed 24h receipt/invoice links, unsubscribe, access audit.\n\n"
    "Exit codes: 0 ok, 1 domain failure (token invalid, rows rejected, Stripe error), 2 bad usage or config.\n\n"
    "Example: echoops portal receipts qa@echopilot.ai --json | jq '.purchases[0].receipt_url'",
    no_args_is_help=True,
)


@app.command("receipts")
def receipts_cmd(
    email: str = typer.Argument(..., help="Customer email (case and spaces ignored)."),
    limit: int = typer.Option(100, min=1, max=500, help="Newest purchases to list."),
    json_out: bool = JSON_OPT,
    now: str | None = NOW_OPT,
) -> None:
    """List a customer's purchases with signed receipt/invoice links (same body as GET /api/portal/receipts).

    Example: echoops portal receipts qa@echopilot.ai --json | jq '.purchases[].receipt_url'
    """
    # lazy: rich costs ~15 ms; only human output needs it
    from rich.markup import escape

    from echoops.core import portal  # lazy: 15-45 ms a package, off --help and other commands

    with reading():
        t = clock.parse_cli_time(now)
        body = portal.receipts(email, limit=limit, ip="cli", route="echoops portal receipts", now=t)
    if json_out:
        emit_json(body)
        return
    out = console()
    purchases = body["purchases"]
    lines = [
        f"{len(purchases)} purchase(s), "
        + ("[bold red]UNSUBSCRIBED[/] (echoops portal resubscribe)" if body["unsubscribed"] else "[green]subscribed[/]")
    ]
    if purchases:
        lines.append(f"links valid until {when(purchases[0]['expires_at'], zone=True)}")
    panel(f"Customer {body['email']}", lines, state="warn" if body["unsubscribed"] else "ok", out=out)
    rows = [
        [
            when(p["created"]),
            escape(p["id"]) + (f"\n[dim]{escape(p['invoice_number'])}[/]" if p["invoice_number"] else ""),
            p["amount_display"] + (f"\n[dim]refunded {p['refunded_display']}[/]" if p.get("refunded") else ""),
            escape(p["description"] or "") + ("\n[dim]invoice link below[/]" if p["invoice_url"] else ""),
        ]
        for p in purchases
    ]
    if rows:
        cols = [Col("created (UTC)"), Col("id / invoice"), Col("amount", "right"), Col("description", wide=True)]
        table(cols, rows, out=out)
    # Each link alone on its line, never wrapped, so it can be copied whole.
    for p in purchases:
        out.print(f"{escape(p['id'])} receipt:", highlight=False)
        out.print(p["receipt_url"], soft_wrap=True, highlight=False, markup=False)
        if p["invoice_url"]:
            out.print(f"{escape(p['id'])} invoice:", highlight=False)
            out.print(p["invoice_url"], soft_wrap=True, highlight=False, markup=False)
    if body["unsubscribe_url"]:
        out.print("unsubscribe:", highlight=False)
        out.print(body["unsubscribe_url"], soft_wrap=True, highlight=False, markup=False)


@app.command("link")
def link_cmd(
    purchase_id: str = typer.Argument(..., help="Ledger id of the purchase."),
    kind: str = typer.Option("receipt", "--kind", help="receipt or invoice."),
    json_out: bool = JSON_OPT,
    now: str | None = NOW_OPT,
) -> None:
    """Print a fresh signed download link for one purchase (valid PORTAL_LINK_TTL_HRS).

    Example: echoops portal link ch_3PqK2 --kind invoice
    """
    from echoops.core import portal  # lazy: 15-45 ms a package, off --help and other commands

    with reading():
        body = portal.link(purchase_id, kind, ip="cli", route="echoops portal link", now=clock.parse_cli_time(now))
    if json_out:
        emit_json(body)
    else:
        typer.echo(body["url"])


@app.command("verify")
def verify_cmd(
    token: str = typer.Argument(..., help="A token, or a whole download/unsubscribe link."),
    json_out: bool = JSON_OPT,
    now: str | None = NOW_OPT,
) -> None:
    """Tell support why a link works or not: valid, expired at …, tampered, wrong purpose, unknown key.

    Exits 0 when valid, 1 when not.
    Example: echoops portal verify 'http://localhost:5000/api/portal/download?token=v1.eyJ...'
    """
    from echoops.core import portal  # lazy: 15-45 ms a package, off --help and other commands

    body = portal.verify(token, now=clock.parse_cli_time(now))
    if json_out:
        emit_json(body)
    else:
        line = "valid" if body["valid"] else f"invalid: {body['reason']}"
        if "purpose" in body:
            line += f" ({body['purpose']} {body['resource']} for {body['email']}, expires {body['expires_at']})"
        typer.echo(line)
    raise typer.Exit(0 if body["valid"] else 1)


def _print_import(body: ImportReport) -> None:
    out = console()
    out.print(
        f"{body['rows']} row(s) read ({body['format']}), {body['landed']} landed, {body['bad']} bad"
        + (" (strict: nothing landed)" if body["strict"] and body["bad"] else "")
        + (f", {body['rows_per_s']:,} rows/s" if body["rows_per_s"] else ""),
        highlight=False,
    )
    # lazy: rich costs ~15 ms; only human output needs it
    from rich.markup import escape

    for err in body["errors"]:
        out.print(f"  line {err['line']}: {escape(err['error'])}", highlight=False)
    if body["errors_truncated"]:
        out.print(f"  … and {body['bad'] - len(body['errors'])} more", highlight=False)


@app.command("import")
def import_cmd(
    file: Path = typer.Argument(..., help="NDJSON or CSV: id,email,created,amount_cents,currency,description[,…]."),
    strict: bool = typer.Option(False, "--strict", help="Land nothing when any row is bad."),
    fmt: str = typer.Option("auto", "--format", help="auto (by extension/content), csv or ndjson."),
    json_out: bool = JSON_OPT,
) -> None:
    """Upsert purchases by id from a file; bad rows are reported with line numbers.

    Optional columns: invoice_number, fee_cents, document, invoice_document, status. A document
    is a path relative to logs/receipts/ or an http(s) URL. Exits 1 when any row was bad.
    Example: echoops portal import purchases.csv --strict
    """
    from echoops.core import portal  # lazy: 15-45 ms a package, off --help and other commands

    body = portal.import_purchases(file, strict=strict, fmt=fmt)
    if json_out:
        emit_json(body)
    else:
        _print_import(body)
    raise typer.Exit(1 if body["bad"] else 0)


@app.command("sync-stripe")
def sync_stripe_cmd(
    since: str | None = typer.Option(None, "--since", help="Only objects created at/after this (ISO or epoch s)."),
    json_out: bool = JSON_OPT,
) -> None:
    """Pull paid invoices and charges from Stripe into the ledger, one purchase per payment (needs STRIPE_API_KEY).

    Re-running is safe: a sync that finds nothing new adds and changes nothing. Purchases
    without any email (charge, invoice or Customer) are skipped and their ids listed.
    Exit 1 when Stripe refuses or stays down (nothing lands then).

    Example: echoops portal sync-stripe --since 2026-11-01 --json
    """
    from echoops.core.portal.stripe import sync  # lazy: 15-45 ms a package, off --help and other commands

    try:
        since_ts = clock.parse_cli_time(since)
    except ValidationError:  # parse_cli_time names --now; this option is --since
        raise ValidationError(f"--since: {since!r} is not an ISO-8601 time or epoch seconds", field="since") from None
    body = sync.sync_stripe(since=since_ts)
    if json_out:
        emit_json(body)
        return
    labels = {
        "invoices": "invoice",
        "invoice_payments": "invoice payment",
        "charges": "charge",
        "refunds": "refund",
        "refunded_charges": "refunded older charge",
        "customers": "customer",
    }
    read = ", ".join(f"{n} {labels.get(k, k)}(s)" for k, n in body["read"].items()) or "nothing"
    merged = f", {body['removed']} merged into their invoice" if body["removed"] else ""
    typer.echo(f"read {read}; {body['landed']} purchase(s): {body['added']} added, {body['updated']} updated{merged}")
    skipped = []
    for reason, n in body["skipped"].items():
        ids = body["skipped_ids"].get(reason)
        skipped.append(f"{reason} {n}" + (f" ({', '.join(ids)}{', …' if len(ids) < n else ''})" if ids else ""))
    typer.echo(f"skipped: {', '.join(skipped) or 'none'}")


@app.command("audit")
def audit_cmd(
    email: str | None = typer.Option(None, "--email", help="Only this customer's attempts."),
    limit: int = typer.Option(50, min=1, max=10000, help="Newest entries to show."),
    json_out: bool = JSON_OPT,
) -> None:
    """List recent access attempts to signed links (logs/portal_access.ndjson), newest first.

    Example: echoops portal audit --email qa@echopilot.ai --json | jq '.entries[] | select(.status==403)'
    """
    # lazy: rich costs ~15 ms; only human output needs it
    from rich.markup import escape

    from echoops.core import portal  # lazy: 15-45 ms a package, off --help and other commands

    body = portal.audit(email=email, limit=limit)
    if json_out:
        emit_json(body)
        return
    out = console()
    title = f"Portal access, {body['email']}" if body.get("email") else "Portal access"
    if not body["entries"]:
        panel(title, ["no access attempts recorded"], out=out)
        return
    rows = []
    for e in body["entries"]:
        status = e.get("status")
        style = "green" if status in (200, 302) else "bold red"
        what = escape(f"{e.get('action') or ''} {e.get('resource') or ''}".strip() or "-")
        if e.get("reason"):
            what += f"\n[red]{escape(str(e['reason']))}[/]"
        rows.append([
            when(e.get("ts"), seconds=True).replace(" ", "\n", 1),
            f"[{style}]{status}[/]",
            escape(str(e.get("email") or "-")) + f"\n[dim]{escape(str(e.get('ip') or '-'))}[/]",
            what,
        ])  # fmt: skip
    cols = [Col("time (UTC)"), Col("status", "right"), Col("who"), Col("what", wide=True)]
    table(cols, rows, title=f"{title} (newest first)", out=out)


@app.command("unsubscribe")
def unsubscribe_cmd(
    email: str = typer.Argument(..., help="Customer email."),
    json_out: bool = JSON_OPT,
) -> None:
    """Put an email on the suppression list (idempotent).

    Example: echoops portal unsubscribe qa@echopilot.ai
    """
    from echoops.core import portal  # lazy: 15-45 ms a package, off --help and other commands

    body = portal.set_subscription(email, True, ip="cli", route="echoops portal unsubscribe")
    if json_out:
        emit_json(body)
    else:
        typer.echo(f"{body['email']} unsubscribed" + ("" if body["changed"] else " (already)"))


@app.command("resubscribe")
def resubscribe_cmd(
    email: str = typer.Argument(..., help="Customer email."),
    json_out: bool = JSON_OPT,
) -> None:
    """Take an email off the suppression list (idempotent).

    Example: echoops portal resubscribe qa@echopilot.ai
    """
    from echoops.core import portal  # lazy: 15-45 ms a package, off --help and other commands

    body = portal.set_subscription(email, False, ip="cli", route="echoops portal resubscribe")
    if json_out:
        emit_json(body)
    else:
        typer.echo(f"{body['email']} resubscribed" + ("" if body["changed"] else " (was not unsubscribed)"))
