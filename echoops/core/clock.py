"""UTC time helpers: every timestamp in echoops is UTC; core functions take `now` (epoch seconds)."""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime

# Epoch seconds outside this range are junk (before 2000 or after 2200), not timestamps.
_MIN_EPOCH = 946684800.0
_MAX_EPOCH = 7258118400.0
# How far after `now` an input line may be stamped: clocks of the app and of echoops drift a
# little; a line dated later than this is a bad line (reason "future"), never "the latest".
MAX_SKEW_S = 300.0


def now_s(now: float | None = None) -> float:
    """The given `now` (epoch seconds) or the current time."""
    return time.time() if now is None else float(now)


def iso(ts: float) -> str:
    """Epoch seconds -> `2026-11-27T02:51:57.123Z` (UTC, millisecond precision)."""
    dt = datetime.fromtimestamp(ts, UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def parse_ts(value: object) -> float | None:
    """ISO-8601 string or epoch seconds -> epoch seconds (float), or None when unusable.

    Naive ISO strings are taken as UTC. Booleans, NaN, inf and out-of-range numbers are None.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        ts = float(value)
    elif isinstance(value, str):
        try:
            dt = datetime.fromisoformat(value)
        except ValueError:
            return None
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=UTC)
        ts = dt.timestamp()
    else:
        return None
    if not math.isfinite(ts) or not (_MIN_EPOCH <= ts <= _MAX_EPOCH):
        return None
    return ts


def line_ts(value: object, now: float) -> float | str:
    """An input line's timestamp -> epoch seconds, or why the line is bad: "bad_ts" (not ISO-8601
    or epoch seconds in 2000..2200) or "future" (later than `now` + MAX_SKEW_S).

    The one rule every ingest applies (requests, AI usage, queue samples, ledger imports);
    `Stamps` is its cached fast path."""
    ts = parse_ts(value)
    if ts is None:
        return "bad_ts"
    if ts > now + MAX_SKEW_S:
        return "future"
    return ts


# The seconds field of an extended ISO time: exactly two ASCII digits, 00..59.
SECONDS = frozenset(f":{n:02d}" for n in range(60))
# What may follow valid seconds for the fast path without a function call: `Z`, or a fraction
# of 1 to 3 digits then `Z` (1,111 strings). Longer fractions are checked by `digits_z`.
RESTS = frozenset(["Z"] + [f".{n:0{w}d}Z" for w in (1, 2, 3) for n in range(10**w)])
HEAD19 = slice(0, 19)  # a stamp's minute and seconds, `2026-11-27T10:00:00`
REST19 = slice(19, None)  # what follows its seconds, `.123Z`
_MAX_CACHED = 100_000  # prefixes kept per Stamps (two months of minutes); the cache starts over past it


def digits_z(rest: str) -> bool:
    """True for `.` + ASCII digits + `Z` (`.123456Z`): a fraction fromisoformat accepts after
    valid seconds whatever its length (digits past the sixth are dropped)."""
    return rest[:1] == "." and rest[-1:] == "Z" and rest[1:-1].isdigit() and rest.isascii()


class Stamps:
    """`line_ts` for one ingest (one `now`), with the fast path's caches for `...Z` ISO stamps.

    A stamp `2026-11-27T10:00:00.123Z` splits into its minute `2026-11-27T10:00`, its seconds
    `:00` and the rest `.123Z`. fromisoformat judges the three independently and a rest ending
    in `Z` (no offset) never moves the minute, so a stamp is valid, in minute m, when:
    its minute prefix is in `minutes` (seen in a stamp `careful` accepted), its seconds are
    `:00`..`:59`, and its rest is in RESTS or passes `digits_z`.
    Only minutes before the one holding `now + MAX_SKEW_S` are cached, so no cached stamp is
    in the future, and the lines of that boundary minute always take `careful`.

    Hot loops call `second(stamp[:19])` when the first 19 characters change (once per second
    of log in time-ordered files) and test `stamp[19:] in RESTS or digits_z(stamp[19:])`;
    anything that misses goes to `careful`. tests/test_fast_paths.py holds the fast answers to
    `line_ts`'s over generated stamps, in every order.
    """

    __slots__ = ("cut_minute", "minutes", "now", "seconds")

    def __init__(self, now: float):
        self.now = now
        self.cut_minute = int((now + MAX_SKEW_S) // 60)
        self.minutes: dict[str, int] = {}  # "2026-11-27T10:00" -> minute number
        self.seconds: dict[str, int] = {}  # "2026-11-27T10:00:00" -> minute number

    def second(self, head: str) -> int:
        """Minute number of a stamp's first 19 characters; KeyError when they are not known good."""
        minute = self.seconds.get(head)
        if minute is None:
            minute = self.minutes[head[:16]]
            if head[16:] not in SECONDS:
                raise KeyError(head)
            if len(self.seconds) >= _MAX_CACHED:
                self.seconds.clear()
            self.seconds[head] = minute
        return minute

    def careful(self, value: object) -> float | str:
        """`line_ts(value, now)`; an accepted `...Z` stamp teaches the cache its minute."""
        ts = line_ts(value, self.now)
        if isinstance(ts, float) and isinstance(value, str) and value[16:19] in SECONDS:
            minute = int(ts // 60)
            rest = value[19:]
            if minute < self.cut_minute and (rest in RESTS or digits_z(rest)):
                if len(self.minutes) >= _MAX_CACHED:
                    self.minutes.clear()
                    self.seconds.clear()
                self.minutes[value[:16]] = minute
        return ts


def parse_cli_time(value: str | None) -> float | None:
    """`--now` option value (ISO-8601 or epoch seconds) -> epoch seconds; None passes through."""
    if value is None:
        return None
    from echoops.core.errors import ValidationError

    raw: object = value
    try:
        raw = float(value)
    except ValueError:
        pass
    ts = parse_ts(raw)
    if ts is None:
        raise ValidationError(f"--now: {value!r} is not an ISO-8601 time or epoch seconds", field="now")
    return ts


def day_iso(ts: float) -> str:
    """Epoch seconds -> the UTC day it falls in, `2026-11-27`."""
    return time.strftime("%Y-%m-%d", time.gmtime(ts))


def day_start(ts: float) -> float:
    """Start of the UTC day containing `ts`, in epoch seconds."""
    return ts - (ts % 86400)
