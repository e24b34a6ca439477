"""Seasonal arrival profiles (time of day, day of week) and the forecast blend that uses them.

Profile. Arrivals are summed into 15-minute UTC buckets (an interval that straddles a boundary
is split by overlap). When a bucket closes with at least half of it observed, its mean rate
(jobs/min) updates two exponentially weighted profiles: the daily one (96 buckets, one per
quarter hour of the day; weight max(1/n, 0.3) per day, so the first days are a plain mean and
then about the last 3-4 days count) and the weekly one (672 buckets, one per quarter hour of
the week; weight max(1/n, 0.5) per week). State is bounded (two fixed arrays and a few
numbers), so a year of samples costs what a week does. Between bucket centres the profile is
linear. Buckets are UTC: a daylight-saving change moves a local-time pattern by an hour until
the profile has re-learnt it (about a week).

Seasonal forecast from time t over the horizon H:
    S = integral over u in [0, H] of max(0, P(t+u) + R * phi**u) du
the profile's shape ahead, shifted by today's departure from it, R (an EWMA, weight 0.3 per
minute like the trend's level, of observed rate minus profile rate), a departure that fades
with the same damping factor phi as the trend. Integrated with the trapezoid rule on 5-minute steps.

Blend (Bates & Granger 1969, combination by inverse error). Every 10 minutes of samples each
component (damped trend, daily profile, weekly profile) records its forecast of the arrivals
over the next H minutes; when those H minutes have passed it is scored against what really
arrived, into an exponentially weighted mean squared error (weight 0.05 per score: about the
last 3 hours of scores count most). The blend is sum_i w_i F_i with w_i proportional to
1 / (mse_i + 1) over the components in use, and the forecast is the larger of the blend and
the damped trend alone: a profile may raise the forecast (a morning it has seen before) but
not lower it below the trend (a drop the live samples do not show yet is not trusted: scaling
down ten minutes late costs worker-minutes, scaling down too early costs waiting jobs).
A profile is in use once the sampled history covers 3 days (daily) or 14 days (weekly), the
buckets it needs have been seen twice, and it has been scored at least 6 times; before that
the damped trend is the forecast.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

BUCKET_S = 900
DAY_BUCKETS = 96
WEEK_BUCKETS = 7 * DAY_BUCKETS
GAMMA_DAY = 0.3
GAMMA_WEEK = 0.5
DAILY_AFTER_MIN = 3 * 1440
WEEKLY_AFTER_MIN = 14 * 1440
USE_MIN_N = 2  # a bucket must have been seen this often for the profile to be used
EVAL_EVERY_S = 600
RESID_ALPHA = 0.3  # per minute, like the trend's level
ERR_GAMMA = 0.05
MIN_EVALS = 6
STEP_MIN = 5.0
KINDS = ("daily", "weekly")
# 1970-01-01 was a Thursday: + 3 days puts Monday 00:00 UTC at the start of a week.
_WEEK_SHIFT_S = 3 * 86400


def _day_pos(ts: float) -> float:
    return (ts % 86400.0) / BUCKET_S - 0.5


def _week_pos(ts: float) -> float:
    return ((ts + _WEEK_SHIFT_S) % 604800.0) / BUCKET_S - 0.5


@dataclass
class Profile:
    """Daily and weekly bucket profiles, the bucket being filled, and the blend's error scores."""

    day: list[float | None] = field(default_factory=lambda: [None] * DAY_BUCKETS)
    day_n: list[int] = field(default_factory=lambda: [0] * DAY_BUCKETS)
    week: list[float | None] = field(default_factory=lambda: [None] * WEEK_BUCKETS)
    week_n: list[int] = field(default_factory=lambda: [0] * WEEK_BUCKETS)
    bucket: int | None = None  # absolute bucket number (ts // 900) being filled
    bucket_arrivals: float = 0.0
    bucket_min: float = 0.0
    observed_min: float = 0.0  # minutes of sampled history (gaps excluded)
    # today's departure from each profile: EWMA of (observed rate - profile rate), jobs/min
    resid: dict[str, float | None] = field(default_factory=lambda: {"daily": None, "weekly": None})
    cum: float = 0.0  # arrivals seen so far, to score forecasts
    next_eval: float | None = None
    # [due ts, cum at forecast time, damped, daily | None, weekly | None]
    pending: list[list[float | None]] = field(default_factory=list)
    # component -> [mean squared error, scores]
    err: dict[str, list[float]] = field(
        default_factory=lambda: {"damped": [0.0, 0], "daily": [0.0, 0], "weekly": [0.0, 0]}
    )

    # --- learning -----------------------------------------------------------------------

    def add(self, t0: float, t1: float, arrivals: float) -> None:
        """`arrivals` jobs over (t0, t1] (epoch s), spread over the buckets by overlap."""
        span = t1 - t0
        if span <= 0:
            return
        dt = span / 60.0
        self.observed_min += dt
        self.cum += arrivals
        rate = arrivals / dt
        a = RESID_ALPHA if dt == 1.0 else 1.0 - (1.0 - RESID_ALPHA) ** dt
        mid = (t0 + t1) / 2.0
        resid = self.resid
        for kind in KINDS:
            p = self.value(kind, mid)
            if p is None:
                resid[kind] = None
            else:
                r = resid[kind]
                resid[kind] = rate - p if r is None else r + a * (rate - p - r)
        while t0 < t1:
            b = int(t0 // BUCKET_S)
            end = min(t1, (b + 1) * BUCKET_S)
            if b != self.bucket:
                self._close()
                self.bucket, self.bucket_arrivals, self.bucket_min = b, 0.0, 0.0
            part = end - t0
            self.bucket_arrivals += arrivals * part / span
            self.bucket_min += part / 60.0
            t0 = end

    def _close(self) -> None:
        b = self.bucket
        if b is None or self.bucket_min < BUCKET_S / 120.0:  # less than half the bucket seen
            return
        rate = self.bucket_arrivals / self.bucket_min
        i = b % DAY_BUCKETS
        self.day_n[i] += 1
        prev = self.day[i]
        g = max(1.0 / self.day_n[i], GAMMA_DAY)
        self.day[i] = rate if prev is None else prev + g * (rate - prev)
        j = ((b // DAY_BUCKETS + 3) % 7) * DAY_BUCKETS + i
        self.week_n[j] += 1
        prev = self.week[j]
        g = max(1.0 / self.week_n[j], GAMMA_WEEK)
        self.week[j] = rate if prev is None else prev + g * (rate - prev)

    # --- reading ------------------------------------------------------------------------

    def value(self, kind: str, ts: float, min_n: int = 1) -> float | None:
        """The profile's rate (jobs/min) at `ts`, linear between bucket centres; None where unseen."""
        if kind == "daily":
            pos, values, counts, size = _day_pos(ts), self.day, self.day_n, DAY_BUCKETS
        else:
            pos, values, counts, size = _week_pos(ts), self.week, self.week_n, WEEK_BUCKETS
        base = math.floor(pos)
        i0, i1 = base % size, (base + 1) % size
        v0, v1 = values[i0], values[i1]
        if v0 is None or v1 is None or counts[i0] < min_n or counts[i1] < min_n:
            return None
        return v0 + (v1 - v0) * (pos - base)

    def over(self, kind: str, ts: float, horizon: float, phi: float, min_n: int = 1) -> float | None:
        """Seasonal forecast of the arrivals over the next `horizon` minutes (see the module doc)."""
        p0 = self.value(kind, ts, min_n)
        gap = self.resid[kind]
        if p0 is None or gap is None:
            return None
        steps = max(2, math.ceil(horizon / STEP_MIN))
        h = horizon / steps
        total = 0.0
        prev = max(0.0, p0 + gap)
        for k in range(1, steps + 1):
            u = k * h
            p = self.value(kind, ts + u * 60.0, min_n)
            if p is None:
                return None
            cur = p + gap * phi**u
            if cur < 0.0:
                cur = 0.0
            total += (prev + cur) * h / 2.0
            prev = cur
        return total

    def history_days(self) -> float:
        return self.observed_min / 1440.0

    # --- scoring ------------------------------------------------------------------------

    def score(self, ts: float, horizon: float, damped: float, phi: float) -> None:
        """Score the forecasts now due; every EVAL_EVERY_S record each component's forecast from `ts`."""
        pending = self.pending
        while pending and pending[0][0] <= ts:  # type: ignore[operator]
            _, cum_at, *forecasts = pending.pop(0)
            actual = self.cum - cum_at  # type: ignore[operator]
            for name, f in zip(("damped", *KINDS), forecasts, strict=True):
                if f is None:
                    continue
                e = self.err[name]
                sq = (f - actual) ** 2
                e[0] = sq if e[1] == 0 else e[0] + ERR_GAMMA * (sq - e[0])
                e[1] += 1
        if self.next_eval is None or ts >= self.next_eval:
            self.next_eval = ts + EVAL_EVERY_S
            daily = self.over("daily", ts, horizon, phi)
            weekly = self.over("weekly", ts, horizon, phi)
            pending.append([ts + horizon * 60.0, self.cum, damped, daily, weekly])

    def blend(
        self, ts: float, horizon: float, damped: float, phi: float
    ) -> tuple[float, dict[str, dict[str, float]], str]:
        """(arrivals over the horizon, {component: {arrivals, weight}}, why these components)."""
        comps = {"damped": damped}
        notes = []
        days = self.history_days()
        for kind, after in (("daily", DAILY_AFTER_MIN), ("weekly", WEEKLY_AFTER_MIN)):
            if self.observed_min < after:
                notes.append(f"{kind} profile needs {after // 1440} days of samples (have {days:.1f})")
                continue
            f = self.over(kind, ts, horizon, phi, USE_MIN_N)
            if f is None:
                notes.append(f"{kind} profile has not seen the next {horizon:g}m twice yet")
            elif self.err[kind][1] < MIN_EVALS:
                notes.append(f"{kind} profile scored {int(self.err[kind][1])} of {MIN_EVALS} times so far")
            else:
                comps[kind] = f
        inv = {k: 1.0 / (self.err[k][0] + 1.0) for k in comps}
        total = sum(inv.values())
        parts = {k: {"arrivals": comps[k], "weight": inv[k] / total} for k in comps}
        value = max(damped, sum(p["arrivals"] * p["weight"] for p in parts.values()))
        if len(parts) == 1:
            why = "no seasonal profile yet: " + "; ".join(notes)
        else:
            used = " and ".join(k for k in parts if k != "damped")
            shares = ", ".join(f"{k} {p['weight']:.2f}" for k, p in parts.items())
            why = f"blended with the {used} profile by inverse recent error over {days:.1f} days of samples: {shares}"
            if value == damped:
                why += " (the blend was lower: the trend's forecast is kept)"
            if notes:
                why += "; " + "; ".join(notes)
        return value, parts, why

    # --- storage ------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Profile:
        if not data:
            return cls()
        out = cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})
        if len(out.day) != DAY_BUCKETS or len(out.week) != WEEK_BUCKETS:
            return cls()
        return out
