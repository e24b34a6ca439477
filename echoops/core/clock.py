"""UTC time helpers: every timestamp in echoops is UTC; core functions take `now` (epoch seconds)."""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime

from echoops.core.errors import ValidationError

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
AFTER_SECONDS = slice(19, None)  # `stamp[AFTER_SECONDS]`: no BUILD_SLICE per line in a hot loop
_MAX_MINUTES = 100_000  # minute prefixes kept per Stamps (two months); the cache starts over past it


def digits_z(rest: str) -> bool:
    """True for `.` + ASCII digits + `Z` (`.123456Z`): a fraction fromisoformat accepts after
    valid seconds whatever its length (digits past the sixth are dropped)."""
    return rest[:1] == "." and rest[-1:] == "Z" and rest[1:-1].isdigit() and rest.isascii()


# The character after each digit: the upper bound of a second's stamps (`...:09` -> `...:0:`).
NEXT_DIGIT = {str(d): chr(ord(str(d)) + 1) for d in range(10)}


def second_bounds(second: str) -> tuple[str, str]:
    """(lo, hi) such that `lo <= s < hi` exactly when the string s starts with `second`, a valid
    `2026-11-27T10:00:00`: hot loops tell "same second as the last line" without slicing (they
    inline it: `second, second[:18] + NEXT_DIGIT[second[18]]`)."""
    return second, second[:18] + NEXT_DIGIT[second[18]]


class Stamps:
    """`line_ts` for one ingest (one `now`), with the fast path's cache for `...Z` ISO stamps.

    A stamp `2026-11-27T10:00:00.123Z` splits into its minute `2026-11-27T10:00`, its seconds
    `:00` and the rest `.123Z`. fromisoformat judges the three independently and a rest ending
    in `Z` (no offset) never moves the minute, so a stamp is valid, in minute m, when its
    minute prefix is in `minutes` (learnt from a stamp `careful` accepted), its seconds are
    in SECONDS and its rest is in RESTS or passes `digits_z`. Only minutes before the one
    holding now + MAX_SKEW_S are learnt, so no stamp the fast path takes is in the future;
    the boundary minute always takes `careful`.

    An epoch number is valid when it is in `epoch_range` (int or float: a bool is neither).

    Hot loops (slo.aggregates._fold, costs.ingest.aggregate) check the rest on every line and
    the seconds and minute only when the line is not in the last line's second (`lo <= stamp
    < hi` from `second_bounds(stamp[:19])`, no slicing); anything that misses goes to
    `careful`. tests/test_fast_paths.py holds the fast answers to the careful ones.
    """

    __slots__ = ("cut_minute", "epoch_range", "minutes", "now")

    def __init__(self, now: float):
        self.now = now
        self.cut_minute = int((now + MAX_SKEW_S) // 60)
        self.minutes: dict[str, int] = {}  # "2026-11-27T10:00" -> minute number
        # An epoch number (int or float, never a bool) `line_ts` accepts: lo <= ts <= hi.
        self.epoch_range = (_MIN_EPOCH, min(_MAX_EPOCH, now + MAX_SKEW_S))

    def careful(self, value: object) -> float | str:
        """`line_ts(value, now)`; an accepted `...Z` stamp teaches the cache its minute."""
        ts = line_ts(value, self.now)
        if isinstance(ts, float) and isinstance(value, str) and value[16:19] in SECONDS:
            minute = int(ts // 60)
            rest = value[19:]
            if minute < self.cut_minute and (rest in RESTS or digits_z(rest)):
                if len(self.minutes) >= _MAX_MINUTES:
                    self.minutes.clear()
                self.minutes[value[:16]] = minute
        return ts

    def fast_minute(self, stamp: object) -> int | None:
        """What the hot loops conclude for one stamp (for tests): its minute when the fast path
        takes it, else None (then `careful` decides)."""
        if not isinstance(stamp, str) or stamp[16:19] not in SECONDS:
            return None
        if stamp[19:] not in RESTS and not digits_z(stamp[19:]):
            return None
        return self.minutes.get(stamp[:16])


def parse_cli_time(value: str | None) -> float | None:
    """`--now` option value (ISO-8601 or epoch seconds) -> epoch seconds; None passes through."""
    if value is None:
        return None
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
