"""The scheduler's frequent jobs (`slo tick`, `slo ingest`, `costs tick`, `scale tick`, `scale sample`) run
without building the Typer app.

`echoops` and `python -m echoops` look here first (echoops/__main__.py): a command line that is
exactly one of these jobs with `--json` and/or `--now T` runs its body straight away, which
saves Typer, pydantic (Typer's parameter coercion) and rich: about 0.15-0.2 s of a process
that runs every minute. Anything else (`--help`, another option, a typo) goes to the Typer app,
which parses, reports usage errors and calls the same bodies, so the output and the exit codes
are the same either way (tests/test_cli_jobs.py).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from echoops.commands.output import emit_json, error, fmt, input_errors, note_log_dir, say, state, usd
from echoops.core import clock, config
from echoops.core.errors import EchoopsError


def slo_tick(now: str | None, json_out: bool) -> int:
    """`echoops slo tick`: ingest, recompute, gate, outputs; prints the result."""
    from echoops.core import slo  # lazy: the job's own work, off `--help`

    result = slo.tick(now=clock.parse_cli_time(now))
    if json_out:
        emit_json(result)
        return 0
    doc, ing = result["status"], result["ingest"]
    input_errors(ing["errors"])
    say(
        f"slo tick: {ing['lines']} new lines ({ing['bad']} bad), state ",
        state(doc["state"]),
        f", p95 {fmt(doc['p95_ms'], ' ms')}, error rate {doc['error_rate'] * 100:.3f}%, "
        f"burn 1h {doc['burn']['1h']:.2f}, remaining {doc['remaining_budget_pct']:.1f}%",
    )
    if result["gate_set"]:
        say(("deploy gate set:", "bold red"), f" {doc['gate']['reason']}")
    return 0


def slo_ingest(now: str | None, json_out: bool) -> int:
    """`echoops slo ingest`: this host's new request lines into its minute rows (the @local job)."""
    from echoops.core import slo  # lazy: the job's own work, off `--help`

    ing = slo.ingest(now=clock.parse_cli_time(now))
    if json_out:
        emit_json(ing)
        return 0
    input_errors(ing["errors"])
    say(
        f"slo ingest: {ing['lines']} new lines ({ing['bad']} bad, {ing['too_old']} too old) "
        f"from {len(ing['sources'])} sources, {ing['minutes_touched']} minutes updated"
    )
    return 0


def costs_tick(now: str | None, json_out: bool) -> int:
    """`echoops costs tick`: 1 when the Stripe fees could not be read (AI spend was still ingested)."""
    from echoops.core import costs  # lazy: the job's own work, off `--help`

    body = costs.tick(now=clock.parse_cli_time(now))
    if json_out:
        emit_json(body)
    else:
        input_errors(body["input_errors"])
        g = body["global"]
        say(
            f"{body['day']}: {body['lines']} new lines, {body['calls']} calls; global {usd(g['spent_usd'])} of "
            f"{usd(g['cap_usd'])} ({g['state'].upper()}); alerts: {len(body['alerts'])}"
        )
    failure = body["stripe_fees"].get("error")
    if failure:
        error(f"Stripe fees could not be read: {failure}")
        return 1
    return 0


def scale_tick(now: str | None, json_out: bool) -> int:
    """`echoops scale tick`: ingest queue samples, decide, log (and apply when not a dry run)."""
    from echoops.core import scale  # lazy: the job's own work, off `--help`

    scale_summary(scale.tick(now=clock.parse_cli_time(now)), json_out)
    return 0


def scale_summary(body, json_out: bool) -> None:
    """`scale status`, `tick` and `apply` print the same document: JSON for jq or the human summary."""
    if json_out:
        emit_json(body)
        return
    input_errors(body.get("input_errors", []))
    mode = ("DRY RUN", "yellow") if body["dry_run"] else ("LIVE", "green")
    f = body["forecast"]
    say(
        mode,
        "  desired ",
        (str(body["desired"]), "bold"),
        "  actual ",
        (str(body["actual"]), "bold"),
        f"  ({body['action']})",
    )
    say(f"reason: {body['reason']}")
    say(
        f"backlog {f['backlog']}, arrivals {f['rate_now_per_min']}/min now -> {f['rate_in_horizon_per_min']}/min "
        f"in {f['horizon_min']}m, {f['jobs_per_worker_min']} jobs/min per worker ({f['throughput_source']})"
    )
    say(f"forecast: {f['method_reason']}")
    src = body["source"]
    if src["kind"] != "file":
        health = "ok" if not src["missed_in_row"] else f"{src['missed_in_row']} missed in a row: {src['last_error']}"
        say(f"queue source {src['kind']}: {health}")
    projection = body.get("projection") or []
    if projection:
        end = projection[-1]
        say(
            f"queue in {end['in_min']} min: {end['backlog_at_actual']:,.0f} with {body['actual']} workers, "
            f"{end['backlog_at_desired']:,.0f} with {body['desired']}"
        )
    p95 = "no data" if body["p95_ms"] is None else f"{body['p95_ms']:g} ms"
    say(f"p95 last {body['p95_window_min']} min: {p95} (target {body['p95_target_ms']:g} ms)")
    gate = body["gate"]
    say(
        f"cooldown {body['cooldown_remaining_s']}s left, gate {'SET' if gate['set'] else 'clear'}, "
        f"bounds {body['bounds']['min']}..{body['bounds']['max']}, last change {body['last_change_at'] or 'never'}"
    )
    if body.get("actuator"):
        a = body["actuator"]
        say(f"actuator: {' '.join(a['argv'])} -> rc {a['rc']}")


def scale_sample(now: str | None, json_out: bool) -> int:
    """`echoops scale sample`: read the queue once, append a sample (errors raise, exit 1 or 2)."""
    from echoops.core import scale  # lazy: the job's own work, off `--help`

    body = scale.sample(now=clock.parse_cli_time(now))
    if json_out:
        emit_json(body)
        return 0
    line = body["sample"]
    if line is None:
        say(body["detail"])
        return 0
    parts = [
        f"depth {line['depth']}",
        f"workers {line['workers']}" + ("" if line.get("workers_known", True) else " (known to echoops)"),
    ]
    parts += [f"{k} {line[k]}" for k in ("busy", "idle", "arrivals", "completed") if line.get(k) is not None]
    say(f"{body['source']} sample at {line['ts']}: " + ", ".join(parts))
    if line.get("estimate"):
        say(f"estimate: {line['estimate']}")
    return 0


JOBS: dict[tuple[str, str], Callable[[str | None, bool], int]] = {
    ("slo", "tick"): slo_tick,
    ("slo", "ingest"): slo_ingest,
    ("costs", "tick"): costs_tick,
    ("scale", "tick"): scale_tick,
    ("scale", "sample"): scale_sample,
}


def parse(argv: Sequence[str]) -> tuple[Callable[[str | None, bool], int], str | None, bool] | None:
    """(job, --now value, --json) when `argv` is exactly a job with those options, else None."""
    if len(argv) < 2 or (argv[0], argv[1]) not in JOBS:
        return None
    now: str | None = None
    json_out = False
    rest = list(argv[2:])
    while rest:
        arg = rest.pop(0)
        if arg == "--json" and not json_out:
            json_out = True
        elif arg == "--now" and now is None and rest and not rest[0].startswith("-"):
            now = rest.pop(0)
        elif arg.startswith("--now=") and now is None and len(arg) > 6:
            now = arg[6:]
        else:
            return None  # anything else is Typer's to parse (and to refuse)
    return JOBS[(argv[0], argv[1])], now, json_out


def run(argv: Sequence[str]) -> int | None:
    """Run `argv` when it is one of the jobs: its exit code (errors mapped as the CLI maps them);
    None when it is not (the caller hands it to Typer)."""
    found = parse(argv)
    if found is None:
        return None
    job, now, json_out = found
    try:
        config.use_env_file()  # ./echoops.env, under the environment, as the Typer app reads it
        note_log_dir(argv)
        return job(now, json_out)
    except EchoopsError as exc:
        error(exc.detail)
        return exc.exit_code
    except Exception as exc:
        code = store_failure(exc)
        if code is None:
            raise
        return code


def store_failure(exc: BaseException) -> int | None:
    """A full disk, a read-only or vanished store: `Error: the store is unavailable: ...`; its exit
    code, or None when `exc` is not a store failure."""
    if not isinstance(exc, OSError) and type(exc).__module__.split(".")[0] not in (
        "sqlite3",
        "psycopg",
        "psycopg_pool",
    ):
        return None  # (psycopg's errors: ECHOOPS_DB_URL's database down, unreachable or refusing)
    from echoops.core import store  # lazy: only a failing command pays for the store module

    found = store.unavailable(exc)
    if found is None:
        return None
    error(found.detail)
    return found.exit_code
