"""Input of the cost guardrails: AI usage lines, read incrementally (Stripe fees: `fees`).

`logs/ai_usage.ndjson`, one line per AI call:
    {"ts": "2026-11-27T10:00:00Z", "model": "gpt-4o-mini", "input_tokens": 812, "output_tokens": 95}
    {"ts": 1795000000, "model": "gpt-4o", "usd": 0.0123}
Spend lands per (UTC day, model) in `costs_spend`, in the same transaction that moves the
reader's cursor, so racing ticks never count a line twice. Usage recorded per call
(`record_usage`, `spend`, `POST /api/costs/usage`) goes straight into the store and never
into this file, so each call is counted once whichever way it arrives. Tokens are summed per
(day, model) and priced once per tick (price x tokens is linear, so this is exact and keeps
the per-line work to a few dict operations).

Lines arrive as `Usage` structs decoded in C (ndjson.Typed) where a chunk allows, else as
dicts; both folds defer to `line_spend` for anything they do not take at once. A backlog above
ECHOOPS_INGEST_BULK_MB is folded in several processes (`ndjson.Reader.fold`): each returns its
per (day, model) sums, which add up exactly.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from functools import cache
from typing import Any

from echoops.core import bulk, clock, native, ndjson, store
from echoops.core.config import Settings
from echoops.core.costs import prices, reservations

SOURCE = "ai_usage.ndjson"
CONSUMER = "costs"
MAX_TOKENS = 10**9  # per call; more is a broken line, not a call
MAX_USD = 10**6  # per call
MAX_MODEL_CHARS = 200


def _tokens(value: object) -> int | None:
    """A token count from a line: missing -> 0, whole non-negative number -> int, else None."""
    if value is None:
        return 0
    if type(value) is float and value.is_integer():
        value = int(value)
    if type(value) is int and 0 <= value <= MAX_TOKENS:
        return value
    return None


def _usd_pico(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if not (0 <= value <= MAX_USD):  # NaN fails this too
        return None
    return prices.usd_to_pico(value)


def valid_model(model: object) -> bool:
    """A logged model name: a non-blank printable string (no control characters) of at most 200 characters."""
    return type(model) is str and bool(model.strip()) and len(model) <= MAX_MODEL_CHARS and model.isprintable()


def line_spend(obj: dict[str, Any], now: float, stamps: clock.Stamps | None = None) -> tuple[int, str, list[int]] | str:
    """The careful path, and the definition of a good usage line: -> (UTC day number, model,
    [calls, priced input tokens, priced output tokens, usd pico, input tokens, output tokens]),
    or the reason it is bad, checked in this order: bad_model (not a string), bad_ts / future
    (clock.line_ts), bad_model (blank, too long, control characters), then no_cost, bad_tokens
    or bad_usd. `stamps` (same `now`) only adds caching for the fast path.
    """
    model = obj.get("model")
    if type(model) is not str:
        return "bad_model"
    ts = clock.line_ts(obj.get("ts"), now) if stamps is None else stamps.careful(obj.get("ts"))
    if isinstance(ts, str):
        return ts
    if not valid_model(model):
        return "bad_model"
    it, ot, usd = obj.get("input_tokens"), obj.get("output_tokens"), obj.get("usd")
    day = int(ts // 86400)
    if usd is None:
        if it is None and ot is None:
            return "no_cost"
        it, ot = _tokens(it), _tokens(ot)
        if it is None or ot is None:
            return "bad_tokens"
        return day, model, [1, it, ot, 0, 0, 0]
    pico = _usd_pico(usd)
    if pico is None:
        return "bad_usd"
    # tokens beside a usd figure are kept for the record, not priced again
    it, ot = _tokens(it), _tokens(ot)
    return day, model, [1, 0, 0, pico, it or 0, ot or 0]


# day number -> logged model -> [calls, priced in, priced out, usd pico, tokens in, tokens out]
PerDay = dict[int, dict[str, list[int]]]
_BAD_MODEL: list[int] = [0] * 6  # stored for a model line_spend refused: the next such line costs one lookup


@cache
def usage_lines() -> ndjson.Typed:
    """The typed decoder of usage lines: the fields `line_spend` reads (a missing number is None,
    as `obj.get` gives it); other fields are skipped unread."""
    import msgspec  # lazy: 30 ms, only when there is input to read

    class Usage(msgspec.Struct, gc=False):
        ts: str | float
        model: str
        input_tokens: int | None = None
        output_tokens: int | None = None
        usd: float | None = None

    return ndjson.Typed(Usage)


def aggregate(batches: Iterable[list[Any]], bad: Counter, *, now: float) -> dict[tuple[str, str], list[int]]:
    """Sum lines per (day, logged model): [calls, priced in, priced out, usd pico, tokens in, tokens out].

    The hot loop of the ingest, a cached `line_spend`: a line takes the fast path when its
    stamp is a `...Z` ISO stamp `clock.Stamps` knows (a string slice and a set lookup) or an
    epoch number in the range `line_ts` accepts, its model was accepted by `line_spend` for
    that day before, and it carries whole token counts in range (or only a usd figure); it then
    costs a few dict lookups and integer additions. Anything else goes to `line_spend`, which
    decides. Bad lines are counted by reason in `bad`. A batch of `usage_lines()` structs
    takes the same path over attributes (`_fold_typed`).
    """
    stamps = clock.Stamps(now)
    per_day: PerDay = {}
    for batch in batches:
        if batch and batch[0].__class__ is not dict:
            _fold_typed(batch, per_day, stamps, bad)
        else:
            _fold(batch, per_day, stamps, bad)
    return {
        (clock.day_iso(day * 86400), model): acc
        for day, by_model in per_day.items()
        for model, acc in by_model.items()
        if acc is not _BAD_MODEL
    }


def _careful(obj: dict[str, Any], per_day: PerDay, stamps: clock.Stamps, bad: Counter) -> None:
    """One line through `line_spend`, added to `per_day` (a model it refuses is remembered for the day)."""
    found = line_spend(obj, stamps.now, stamps)
    if isinstance(found, str):
        bad[found] += 1
        if found == "bad_model" and type(obj.get("model")) is str:
            t = stamps.careful(obj.get("ts"))
            if not isinstance(t, str):
                per_day.setdefault(int(t // 86400), {})[obj["model"]] = _BAD_MODEL
        return
    day_n, model, add = found
    into = per_day.setdefault(day_n, {})
    known = into.get(model)
    if known is None or known is _BAD_MODEL:
        known = into[model] = [0, 0, 0, 0, 0, 0]
    for i, v in enumerate(add):
        known[i] += v


def _fold(batch: list[dict[str, Any]], per_day: PerDay, stamps: clock.Stamps, bad: Counter) -> None:
    """The fast path over dicts (see `aggregate`)."""
    minutes = stamps.minutes
    seconds_ok, rests, digits_z = clock.SECONDS, clock.RESTS, clock.digits_z
    after_seconds, next_digit = clock.AFTER_SECONDS, clock.NEXT_DIGIT
    epoch_lo, epoch_hi = stamps.epoch_range
    top, top_usd = MAX_TOKENS, MAX_USD
    to_pico = prices.usd_to_pico
    bad_model = _BAD_MODEL
    lo = hi = ""  # the second of the last fast line, as clock.second_bounds
    cur_q = None
    cur_day = -1
    models: dict[str, list[int]] = {}
    for obj in batch:
        try:
            ts = obj["ts"]
            if ts.__class__ is str:
                if ts[after_seconds] not in rests and not digits_z(ts[after_seconds]):
                    raise TypeError
                if not lo <= ts < hi:
                    p = ts[:19]
                    if p[16:] not in seconds_ok:
                        raise TypeError
                    q = p[:16]
                    if q != cur_q:
                        day = minutes[q] // 1440
                        if day != cur_day:
                            models = per_day.get(day) or per_day.setdefault(day, {})
                            cur_day = day
                        cur_q = q
                    lo, hi = p, p[:18] + next_digit[p[18]]  # clock.second_bounds
            elif (ts.__class__ is int or ts.__class__ is float) and epoch_lo <= ts <= epoch_hi:
                day = int(ts // 86400)
                if day != cur_day:
                    models = per_day.get(day) or per_day.setdefault(day, {})
                    cur_day, cur_q = day, None
                    lo = hi = ""
            else:
                raise TypeError
            acc = models[obj["model"]]
            if acc is bad_model:
                bad["bad_model"] += 1
                continue
            usd = obj.get("usd")
            if usd is None:
                it = obj["input_tokens"]
                ot = obj["output_tokens"]
                if type(it) is not int or type(ot) is not int or not (0 <= it <= top and 0 <= ot <= top):
                    raise TypeError
                acc[0] += 1
                acc[1] += it
                acc[2] += ot
            else:
                if type(usd) is not float or not 0 <= usd <= top_usd or "input_tokens" in obj or "output_tokens" in obj:
                    raise TypeError
                acc[0] += 1
                acc[3] += to_pico(usd)
        except (KeyError, TypeError, IndexError):
            lo = hi = ""  # the careful path may teach the cache the minute this line named
            cur_q = None
            cur_day = -1
            _careful(obj, per_day, stamps, bad)


def _fold_typed(batch: list[Any], per_day: PerDay, stamps: clock.Stamps, bad: Counter) -> None:
    """The fast path over `usage_lines()` structs: the types are checked (model a string, tokens
    whole numbers or None, usd a number or None), the ranges and the stamp here. Its compiled
    twin (`native.fold_usage`) runs instead when it is built."""
    if native.fold_usage is None:
        return _fold_typed_py(batch, per_day, stamps, bad)

    def careful(o: Any) -> None:
        obj = {"ts": o.ts, "model": o.model, "input_tokens": o.input_tokens, "output_tokens": o.output_tokens}
        obj["usd"] = o.usd
        _careful(obj, per_day, stamps, bad)

    lo, hi = stamps.epoch_range
    refused = native.fold_usage(
        batch, per_day, stamps.minutes, lo, hi, _BAD_MODEL, prices.usd_to_pico, careful, (MAX_TOKENS, MAX_USD)
    )
    if refused:
        bad["bad_model"] += refused


def _fold_typed_py(batch: list[Any], per_day: PerDay, stamps: clock.Stamps, bad: Counter) -> None:
    """`_fold_typed` in Python: the definition `native.fold_usage` is held equal to."""
    minutes = stamps.minutes
    seconds_ok, rests, digits_z = clock.SECONDS, clock.RESTS, clock.digits_z
    after_seconds, next_digit = clock.AFTER_SECONDS, clock.NEXT_DIGIT
    epoch_lo, epoch_hi = stamps.epoch_range
    top, top_usd = MAX_TOKENS, MAX_USD
    to_pico = prices.usd_to_pico
    bad_model = _BAD_MODEL
    lo = hi = ""
    cur_q = None
    cur_day = -1
    models: dict[str, list[int]] = {}
    for o in batch:
        ts = o.ts
        try:
            if ts.__class__ is str:
                if ts[after_seconds] not in rests and not digits_z(ts[after_seconds]):
                    raise TypeError
                if not lo <= ts < hi:
                    p = ts[:19]
                    if p[16:] not in seconds_ok:
                        raise TypeError
                    q = p[:16]
                    if q != cur_q:
                        day = minutes[q] // 1440
                        if day != cur_day:
                            models = per_day.get(day) or per_day.setdefault(day, {})
                            cur_day = day
                        cur_q = q
                    lo, hi = p, p[:18] + next_digit[p[18]]
            elif epoch_lo <= ts <= epoch_hi:
                day = int(ts // 86400)
                if day != cur_day:
                    models = per_day.get(day) or per_day.setdefault(day, {})
                    cur_day, cur_q = day, None
                    lo = hi = ""
            else:
                raise TypeError
            acc = models[o.model]
            if acc is bad_model:
                bad["bad_model"] += 1
                continue
            usd = o.usd
            it = o.input_tokens
            ot = o.output_tokens
            if usd is None:
                if it is None or ot is None or not (0 <= it <= top and 0 <= ot <= top):
                    raise TypeError
                acc[0] += 1
                acc[1] += it
                acc[2] += ot
            else:
                if not 0 <= usd <= top_usd or it is not None or ot is not None:
                    raise TypeError
                acc[0] += 1
                acc[3] += to_pico(usd)
        except (KeyError, TypeError, IndexError):
            lo = hi = ""
            cur_q = None
            cur_day = -1
            obj = {"ts": ts, "model": o.model, "input_tokens": o.input_tokens, "output_tokens": o.output_tokens}
            obj["usd"] = o.usd
            _careful(obj, per_day, stamps, bad)


def _merge(parts: Iterable[dict[tuple[str, str], list[int]]]) -> dict[tuple[str, str], list[int]]:
    """Per (day, model) sums of several folds added up."""
    out: dict[tuple[str, str], list[int]] = {}
    for part in parts:
        for key, acc in part.items():
            known = out.get(key)
            if known is None:
                out[key] = acc
            else:
                for i, v in enumerate(acc):
                    known[i] += v
    return out


def price(agg: dict[tuple[str, str], list[int]], table: dict[str, tuple[int, int]]) -> dict[tuple[str, str], list[int]]:
    """Per (day, canonical model): [calls, input tokens, output tokens, cost pico, unpriced calls]."""
    out: dict[tuple[str, str], list[int]] = {}
    for (day, logged), (calls, pin_tok, pout_tok, usd_p, in_x, out_x) in agg.items():
        if not calls:
            continue
        name = prices.canonical(logged, table)
        p_in, p_out, priced = prices.price_of(name, table)
        row = out.setdefault((day, name), [0, 0, 0, 0, 0])
        row[0] += calls
        row[1] += pin_tok + in_x
        row[2] += pout_tok + out_x
        row[3] += usd_p + pin_tok * p_in + pout_tok * p_out
        if not priced and (pin_tok or pout_tok):
            row[4] += calls  # at most: usd lines of the same model were priced by the app
    return out


def _add_rows(conn: store.Conn, rows: dict[tuple[str, str], list[int]]) -> None:
    for day in sorted({day for day, _ in rows}):
        reservations.lock_day(conn, day)  # the day's budget transactions see this spend whole
    for (day, model), (calls, tin, tout, cost, unpriced) in rows.items():
        reservations.add_spend(conn, day, model, calls, tin, tout, cost, unpriced)


def ingest_usage(conn: store.Conn, s: Settings, now: float) -> dict[str, Any]:
    """Read new ai_usage.ndjson lines into costs_spend; the report counts lines, calls and bad
    lines, and names an ai_usage.ndjson that cannot be read in `errors` (nothing read then)."""
    path = s.log_path(SOURCE)
    report: dict[str, Any] = {"lines": 0, "calls": 0, "bad": {}, "events": [], "errors": []}
    table = prices.price_table(s.model_prices)
    try:
        if not ndjson.pending(conn, path, CONSUMER):
            return report
        with store.transaction(conn):
            # Created inside the transaction: a second tick waits here, then sees the moved cursor.
            reader = ndjson.Reader(conn, path, CONSUMER, typed=usage_lines())
            parts = reader.fold(
                lambda scan: aggregate(scan.batches(), scan.bad, now=now),
                bulk_bytes=s.ingest_bulk_bytes,
                processes=bulk.processes(s.ingest_processes),
            )
            rows = price(_merge(parts), table)
            _add_rows(conn, rows)
            reader.commit(now)
    except ndjson.InputError as exc:
        report["errors"].append(exc.as_dict())
        return report
    all_bad = dict(reader.bad)
    report.update(
        lines=reader.lines,
        calls=sum(r[0] for r in rows.values()),
        bad=all_bad,
        events=list(reader.events),
    )
    return report
