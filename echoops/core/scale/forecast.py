"""Queue signals for the autoscaler: sample validation, arrival-rate forecast, worker throughput.

Forecast methods (SCALE_FORECAST; `scale simulate --method` compares them):
- "holt": Holt's linear (double exponential) smoothing of the arrival rate in jobs/min. Per
  one-minute step the level weight is ALPHA=0.3 and the trend weight BETA=0.05; for a sample
  `dt` minutes after the previous one the weights become 1-(1-w)**dt, so the filter behaves the
  same whether the app logs every 30 s or every 5 min. The forecast rate u minutes ahead is
  level + trend x u: a trend goes on for ever, so after a spike the falling trend forecasts
  an empty queue while the usual load keeps arriving.
- "damped": Gardner & McKenzie's damped trend. The trend's effect fades by PHI per minute:
  rate(u) = level + trend x (1 - PHI**u) / ln(1/PHI), which levels off at
  level + trend / ln(1/PHI) (about 50 minutes of trend at PHI=0.98) instead of growing without
  end, and the stored trend itself decays by PHI per minute between updates (level update:
  a x rate + (1-a) x (level + trend x (1 - PHI**dt) / ln(1/PHI))). PHI=1 is Holt exactly.
  A falling trend is also kept from pointing the long-run rate below zero
  (trend >= -level x ln(1/PHI)): after a burst the level drops back within minutes, and the
  drop must not be read as a trend towards an empty queue.
  PHI=0.98 per minute (the trend's pull halves in 34 minutes; a 30-minute forecast carries 73%
  of Holt's trend term) was chosen on the shipped traces (bench/traces/) from 0.95-0.99: 0.95
  and 0.97 under-forecast the steady ramp or the bursts enough to cost more than Holt
  (tests/test_scale_methods.py states the rule), 0.985 and above give back most of the
  post-burst accuracy.
- "damped+seasonal" (the default): the damped trend blended with daily and weekly profiles
  once the history is long enough (see core/scale/seasonal.py for the profile and the blend).
The forecast used by the policy is the integral of the (non-negative) rate over the horizon.
A gap over MAX_GAP_MIN restarts the level and trend (the profiles keep their history).

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

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from echoops.core.clock import line_ts, parse_ts
from echoops.core.parsers import whole_count
from echoops.core.scale.seasonal import Profile

ALPHA = 0.3
BETA = 0.05
TPW_ALPHA = 0.2
PHI = 0.98
MAX_GAP_MIN = 120.0
METHODS = ("holt", "damped", "damped+seasonal")
DEFAULT_METHOD = "damped+seasonal"
_FIELDS = ("depth", "workers", "arrivals", "completed")
_REQUIRED = ("depth", "workers")


def project_backlog(
    backlog: float,
    arrivals_over: Callable[[float], float],
    workers: int,
    jobs_per_worker_min: float,
    horizon_min: int,
    step_min: int = 5,
) -> list[tuple[int, float]]:
    """(minutes ahead, jobs waiting) every `step_min` minutes from 0 to `horizon_min`: the queue
    when `workers` each finish `jobs_per_worker_min` while the forecast arrivals come in
    (`arrivals_over(m)`: jobs over the next m minutes). The queue never goes below empty; an idle
    worker's capacity is not saved for later."""
    out = [(0, float(backlog))]
    queue, arrived, minute = float(backlog), 0.0, 0
    capacity = max(0, workers) * max(0.0, jobs_per_worker_min)
    while minute < horizon_min:
        step = min(step_min, horizon_min - minute)
        total = max(arrived, arrivals_over(minute + step))  # cumulative arrivals never shrink
        queue = max(0.0, queue + (total - arrived) - capacity * step)
        arrived, minute = total, minute + step
        out.append((minute, queue))
    return out


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


def phi_for(method: str) -> float:
    """The trend damping factor per minute of a forecast method (1.0: Holt, undamped)."""
    return 1.0 if method == "holt" else PHI


def _g(phi: float, lam: float, u: float) -> float:
    """Trend multiplier u minutes ahead: integral of phi**v over [0, u] (u itself when undamped)."""
    return u if lam == 0.0 else (1.0 - phi**u) / lam


def _big_g(phi: float, lam: float, u: float) -> float:
    """Integral of _g over [0, u]."""
    return u * u / 2.0 if lam == 0.0 else (u - _g(phi, lam, u)) / lam


def _g_inv(lam: float, c: float) -> float:
    """The u where _g(u) = c (c below the asymptote 1/lam)."""
    return c if lam == 0.0 else -math.log(1.0 - c * lam) / lam


@dataclass
class Forecaster:
    """Rolling state fed one sample at a time; small enough to store as one JSON row.

    `method` picks the forecast ("holt", "damped", "damped+seasonal"); `profile` (the seasonal
    profiles and the blend's scores) is kept only when `seasonal` is True, whatever the method,
    so switching SCALE_FORECAST keeps the learnt history.
    """

    level: float | None = None  # arrivals/min
    trend: float = 0.0  # arrivals/min per minute
    tpw: float | None = None  # jobs/min per worker
    last_ts: float | None = None
    depth: float = 0  # a simulated backlog (scale simulate) is fractional
    workers: int = 0
    samples: int = 0
    last_rate: float | None = None  # the latest observed arrival rate (reactive baseline)
    method: str = DEFAULT_METHOD
    horizon_min: float = 30.0
    seasonal: bool = True
    profile: Profile | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.configure(self.method, self.horizon_min, self.seasonal)

    def configure(self, method: str, horizon_min: float, seasonal: bool = True) -> Forecaster:
        """Set the method and horizon (from settings, after loading stored state)."""
        self.method, self.horizon_min, self.seasonal = method, float(horizon_min), seasonal
        phi = phi_for(method)
        self._phi, self._lam = phi, (0.0 if phi >= 1.0 else -math.log(phi))
        if seasonal and self.profile is None:
            self.profile = Profile()
        elif not seasonal:
            self.profile = None
        return self

    def observe(
        self,
        ts: float,
        depth: float,
        workers: int,
        arrivals: float | None,
        completed: float | None,
        fallback_tpw: float,
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
        else:
            phi, lam = self._phi, self._lam
            if dt == 1.0:
                a, b = ALPHA, BETA
            else:
                a, b = 1.0 - (1.0 - ALPHA) ** dt, 1.0 - (1.0 - BETA) ** dt
            trend = self.trend
            predicted = level + trend * (dt if lam == 0.0 else (1.0 - phi**dt) / lam)
            new_level = a * rate + (1.0 - a) * predicted
            kept = trend if lam == 0.0 else trend * phi**dt
            trend = b * (new_level - level) / dt + (1.0 - b) * kept
            if lam and new_level > 0.0 and trend < -lam * new_level:
                trend = -lam * new_level  # the long-run rate (level + trend / lam) never goes below 0
            self.trend, self.level = trend, new_level
        profile = self.profile
        if profile is not None:
            profile.add(last_ts, ts, arrivals_f)
            profile.score(ts, self.horizon_min, self.damped_over(self.horizon_min), self._phi)
        return True

    def rate_now(self) -> float:
        """Smoothed arrival rate now, jobs/min (0 before the first interval)."""
        return max(0.0, self.level or 0.0)

    def rate_in(self, minutes: float) -> float:
        """Trend forecast of the arrival rate `minutes` ahead, jobs/min (never negative)."""
        return max(0.0, (self.level or 0.0) + self.trend * _g(self._phi, self._lam, minutes))

    def damped_over(self, minutes: float) -> float:
        """Jobs arriving over the next `minutes` by the (damped) trend: the integral of the rate,
        clipped at zero (the rate is monotone in time, so it crosses zero at most once)."""
        level = self.level or 0.0
        trend = self.trend
        phi, lam = self._phi, self._lam
        full = level * minutes + trend * _big_g(phi, lam, minutes)
        if (level >= 0.0 and trend >= 0.0) or (level <= 0.0 and trend <= 0.0):
            return max(0.0, full)
        cross = -level / trend  # the trend multiplier at which the rate is zero
        if cross >= _g(phi, lam, minutes):
            return max(0.0, full) if level > 0.0 else 0.0
        u = _g_inv(lam, cross)
        upto = level * u + trend * _big_g(phi, lam, u)
        return max(0.0, upto if level > 0.0 else full - upto)

    def arrivals_over(self, minutes: float) -> float:
        """Forecast jobs arriving over the next `minutes` by the configured method."""
        return self.forecast(minutes)[0]

    def forecast(self, minutes: float) -> tuple[float, str, dict[str, dict[str, float]]]:
        """(arrivals over the next `minutes`, why this method, {component: {arrivals, weight}})."""
        damped = self.damped_over(minutes)
        if self.method == "holt":
            return damped, "Holt's linear trend, undamped (SCALE_FORECAST=holt)", {}
        if self.method == "damped" or self.profile is None or self.last_ts is None:
            why = f"damped trend, phi {self._phi:g}/min" + (
                " (SCALE_FORECAST=damped)" if self.method == "damped" else ""
            )
            return damped, why, {}
        value, parts, why = self.profile.blend(self.last_ts, minutes, damped, self._phi)
        return value, f"damped trend (phi {self._phi:g}/min); {why}", parts

    def history_days(self) -> float:
        """Days of sampled history the seasonal profiles have learnt from."""
        return 0.0 if self.profile is None else self.profile.history_days()

    def throughput(self, fallback: float) -> tuple[float, str]:
        """(jobs/min per worker, "observed" | "fallback")."""
        tpw = self.tpw
        if tpw is not None and tpw > 0.0:
            return tpw, "observed"
        return fallback, "fallback"

    def to_dict(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "profile"}
        out["profile"] = None if self.profile is None else self.profile.to_dict()
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Forecaster:
        if not data:
            return cls()
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__ and k != "profile"}
        fc = cls(**known, profile=Profile.from_dict(data.get("profile")))
        return fc
