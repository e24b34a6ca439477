"""UTC time helpers: every timestamp in echoops is UTC; core functions take `now` (epoch seconds)."""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime

from echoops.core.errors import ValidationError

# Epoch seconds outside this range are junk (before 2000 or after 2200), not timestamps.
_MIN_EPOCH = 946684800.0
_MAX_EPOCH = 7258118400.0


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
