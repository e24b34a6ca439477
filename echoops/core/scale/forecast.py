"""Queue signals for the autoscaler: sample validation, arrival-rate forecast, worker throughput.

Forecast: Holt's linear (double exponential) smoothing of the arrival rate in jobs/min.
Per one-minute step the level weight is ALPHA=0.3 and the trend weight BETA=0.05; for a
sample `dt` minutes after the previous one the weights become 1-(1-w)**dt, so the filter
behaves the same whether the app logs every 30 s or every 5 min. The level follows the
rate within a few minutes; the small trend weight keeps minute-to-minute noise from being
multiplied by the 30-minute horizon. A gap over MAX_GAP_MIN restarts the filter.

Arrival rate: a sample's `arrivals` (jobs since the previous sample) over the elapsed time.
Without `arrivals`: depth delta + `completed` (jobs that left the queue). Without either:
depth delta + what the workers could finish in the interval when the queue stayed
non-empty (workers x throughput x dt), or the previous depth when it drained (a lower bound).

Throughput per worker (jobs/min): an EWMA (TPW_ALPHA per sample) of completed/(workers x dt)
over intervals that ended with a non-empty queue, because only then were the workers
saturated; an interval with an empty queue can only raise the estimate (a lower bound on
capacity). With no such interval yet, SCALE_JOBS_PER_WORKER_MIN is used.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from echoops.core.clock import line_ts, parse_ts
from echoops.core.parsers import whole_count

ALPHA = 0.3
BETA = 0.05
TPW_ALPHA = 0.2
MAX_GAP_MIN = 120.0
_FIELDS = ("depth", "workers", "arrivals", "completed")
_REQUIRED = ("depth", "workers")


def parse_sample(obj: dict[str, Any], now: float | None = None) -> tuple[float, int, int, int | None, int | None] | str:
    """A queue line -> (ts, depth, workers, arrivals, completed), or the reason it is bad.

    Counts must be non-negative finite integers (2.0 is accepted, 2.5 and "2" are not). With
    `now`, a sample stamped after now + clock.MAX_SKEW_S is bad ("future"): a sample dated
    tomorrow must never become the latest (replayed traces pass no `now`).
    """
    if now is None:
        ts: float | str = parse_ts(obj.get("ts")) or "bad_ts"
    else:
        ts = line_ts(obj.get("ts"), now)
    if isinstance(ts, str):
        return ts
    out: list[int | None] = []
    for name in _FIELDS:
        value = obj.get(name)
        if value is None:
            if name in _REQUIRED:
                return f"missing_{name}"
            out.append(None)
            continue
        count = whole_count(value)
        if count is None:
            return f"bad_{name}"
        out.append(count)
    return ts, out[0], out[1], out[2], out[3]  # type: ignore[return-value]


@dataclass
class Forecaster:
    """Rolling state fed one sample at a time; small enough to store as one JSON row."""

    level: float | None = None  # arrivals/min
    trend: float = 0.0  # arrivals/min per minute
    tpw: float | None = None  # jobs/min per worker
    last_ts: float | None = None
    depth: int = 0
    workers: int = 0
    samples: int = 0
    last_rate: float | None = None  # the latest observed arrival rate (reactive baseline)

    def observe(
        self, ts: float, depth: int, workers: int, arrivals: int | None, completed: int | None, fallback_tpw: float
    ) -> bool:
        """Feed one sample; False (ignored) when it is not after the previous one."""
        last_ts = self.last_ts
        if last_ts is not None and ts <= last_ts:
            return False
        self.samples += 1
        prev_depth = self.depth
        self.last_ts, self.depth, self.workers = ts, depth, workers
        if last_ts is None:
            return True
        dt = (ts - last_ts) / 60.0
        if dt > MAX_GAP_MIN:
            self.level, self.trend, self.last_rate = None, 0.0, None
            return True
        busy = depth > 0
        if completed is not None and workers > 0:
            obs = completed / (workers * dt)
            tpw = self.tpw
            if tpw is None:
                if busy:
                    self.tpw = obs
            elif busy:
                w = 1.0 - (1.0 - TPW_ALPHA) ** dt if dt != 1.0 else TPW_ALPHA
                self.tpw = tpw + w * (obs - tpw)
            elif obs > tpw:
                self.tpw = obs
        if arrivals is None:
            if completed is not None:
                arrivals_f = float(max(0, depth - prev_depth + completed))
            elif busy:
                tpw = self.tpw if self.tpw else fallback_tpw
                arrivals_f = max(0.0, depth - prev_depth + workers * tpw * dt)
            else:
                arrivals_f = float(prev_depth)
        else:
            arrivals_f = float(arrivals)
        rate = arrivals_f / dt
        self.last_rate = rate
        level = self.level
        if level is None:
            self.level, self.trend = rate, 0.0
            return True
        if dt == 1.0:
            a, b = ALPHA, BETA
        else:
            a, b = 1.0 - (1.0 - ALPHA) ** dt, 1.0 - (1.0 - BETA) ** dt
        predicted = level + self.trend * dt
        new_level = a * rate + (1.0 - a) * predicted
        self.trend = b * (new_level - level) / dt + (1.0 - b) * self.trend
        self.level = new_level
        return True

    def rate_now(self) -> float:
        """Smoothed arrival rate now, jobs/min (0 before the first interval)."""
        return max(0.0, self.level or 0.0)

    def rate_in(self, minutes: float) -> float:
        """Forecast arrival rate `minutes` ahead, jobs/min (never negative)."""
        return max(0.0, (self.level or 0.0) + self.trend * minutes)

    def arrivals_over(self, minutes: float) -> float:
        """Forecast jobs arriving over the next `minutes`: the integral of the (clipped) trend line."""
        level = self.level or 0.0
        trend = self.trend
        if level <= 0.0:
            if trend <= 0.0:
                return 0.0
            start = -level / trend  # when the line crosses zero
            if start >= minutes:
                return 0.0
            span = minutes - start
            return trend * span * span / 2.0
        end = level + trend * minutes
        if end >= 0.0:
            return (level + end) / 2.0 * minutes
        return level * level / (-2.0 * trend)

    def throughput(self, fallback: float) -> tuple[float, str]:
        """(jobs/min per worker, "observed" | "fallback")."""
        tpw = self.tpw
        if tpw is not None and tpw > 0.0:
            return tpw, "observed"
        return fallback, "fallback"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Forecaster:
        if not data:
            return cls()
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)
