"""A deterministic request history, written both ways echoops can read it: as the app's request
log (`requests.ndjson`, the files source) and as a Prometheus histogram in OpenMetrics (for
`promtool tsdb create-blocks-from openmetrics`, the Prometheus source). Also used by
bench/slo_prometheus.py.

Every minute has a request count, its errors (status 500) and one latency per request. The
histogram's counters are sampled on each minute boundary T and count the requests of the
minutes before T, so Prometheus' increase() over [T - W, T] is exactly the requests in
[T - W, T): the windows the files source uses. A second job ("other") with its own errors
and latencies shares the metric, so a missing SLO_PROM_SELECTOR shows.
"""

from __future__ import annotations

import bisect
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import orjson

METRIC = "http_request_duration_seconds"
BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0, 1.5, 2.5, 5.0)  # seconds; 0.8 = SLO_LAT_P95_MS 800


@dataclass
class Minute:
    start: int  # epoch s, on a minute boundary
    latencies: list[float] = field(default_factory=list)  # seconds, one per request
    errors: int = 0  # the first `errors` requests failed (status 500)


@dataclass
class Mix:
    """What happens when, relative to `end`: a steady daily cycle, a burst, a sustained burn."""

    end: int  # epoch s, minute boundary: the tick's `now`
    days: float = 3.0
    base_per_min: int = 60
    base_error: float = 0.002
    burst: tuple[int, int, float] = (26 * 60, 30, 0.40)  # starts N min before end, lasts M min, error share
    burn: tuple[int, float] = (140, 0.06)  # the last N min, error share (6x a 1% budget: the gate sets)
    seed: int = 16

    def minutes(self) -> Iterator[Minute]:
        rng = random.Random(self.seed)
        count = int(self.days * 1440)
        first = self.end - count * 60
        burst_at = self.end - self.burst[0] * 60
        for i in range(count):
            start = first + i * 60
            n = max(1, round(self.base_per_min * (1 + 0.5 * math.sin(2 * math.pi * i / 1440))))
            share, slow = self.base_error, 1.0
            if burst_at <= start < burst_at + self.burst[1] * 60:
                share, slow = self.burst[2], 3.0
            elif start >= self.end - self.burn[0] * 60:
                share = self.burn[1]
            latencies = [min(30.0, rng.lognormvariate(math.log(0.12), 0.6) * slow) for _ in range(n)]
            errors = sum(rng.random() < share for _ in range(n))
            yield Minute(start, latencies, errors)


def other_job(mix: Mix) -> Iterator[Minute]:
    """The other app on the same Prometheus: fewer requests, half of them failing, all slow."""
    rng = random.Random(mix.seed + 1)
    count = int(mix.days * 1440)
    first = mix.end - count * 60
    for i in range(count):
        yield Minute(first + i * 60, [2.0 + rng.random() for _ in range(10)], 5)


def write_ndjson(minutes: list[Minute], path: Path) -> int:
    """The app's request log: one line per request, `{"ts", "status", "latency_ms"}`; returns the lines."""
    lines = 0
    with open(path, "wb") as fh:
        for m in minutes:
            step = 60 / max(1, len(m.latencies))
            for j, lat in enumerate(m.latencies):
                status = 500 if j < m.errors else 200
                fh.write(orjson.dumps({"ts": m.start + j * step, "status": status, "latency_ms": lat * 1000}) + b"\n")
                lines += 1
    return lines


class _Series:
    """Cumulative histogram counters of one label set."""

    def __init__(self, labels: str):
        self.labels = labels
        self.buckets = [0] * (len(BUCKETS) + 1)
        self.count = 0
        self.sum = 0.0

    def add(self, latencies: list[float]) -> None:
        for lat in latencies:
            self.buckets[bisect.bisect_left(BUCKETS, lat)] += 1
            self.sum += lat
        self.count += len(latencies)

    def lines(self, ts: int) -> Iterator[str]:
        cumulative = 0
        for le, n in zip((*BUCKETS, math.inf), self.buckets, strict=True):
            cumulative += n
            bound = "+Inf" if le == math.inf else repr(le)
            yield f'{METRIC}_bucket{{{self.labels},le="{bound}"}} {cumulative} {ts}\n'
        yield f"{METRIC}_count{{{self.labels}}} {self.count} {ts}\n"
        yield f"{METRIC}_sum{{{self.labels}}} {self.sum:.6f} {ts}\n"


def write_openmetrics(jobs: dict[str, list[Minute]], path: Path) -> int:
    """The histogram `METRIC{job, code}` sampled at every minute boundary from the first minute's
    start to the last minute's end (every series starts at 0); returns the samples written."""
    series = {(job, code): _Series(f'code="{code}",job="{job}"') for job in jobs for code in ("200", "500")}
    starts = {job: {m.start: m for m in minutes} for job, minutes in jobs.items()}
    first = min(minutes[0].start for minutes in jobs.values())
    last = max(minutes[-1].start for minutes in jobs.values()) + 60
    samples = 0
    with open(path, "w") as fh:
        fh.write(f"# HELP {METRIC} Request latency.\n# TYPE {METRIC} histogram\n# UNIT {METRIC} seconds\n")
        for ts in range(first, last + 1, 60):
            for ser in series.values():
                for line in ser.lines(ts):
                    fh.write(line)
                    samples += 1
            # the minute starting at ts is counted from the next sample on: counters at T cover [.., T)
            for job in jobs:
                m = starts[job].get(ts)
                if m is not None:
                    series[(job, "500")].add(m.latencies[: m.errors])
                    series[(job, "200")].add(m.latencies[m.errors :])
        fh.write("# EOF\n")
    return samples


def exact(minutes: list[Minute], lo: int, hi: int) -> tuple[int, int, list[float]]:
    """(requests, errors, sorted latencies) of the minutes starting in [lo, hi)."""
    t = e = 0
    lats: list[float] = []
    for m in minutes:
        if lo <= m.start < hi:
            t += len(m.latencies)
            e += m.errors
            lats.extend(m.latencies)
    lats.sort()
    return t, e, lats


def bucket_of(value_s: float) -> tuple[float, float]:
    """The histogram bucket (lower, upper] holding `value_s`."""
    i = bisect.bisect_left(BUCKETS, value_s)
    lower = 0.0 if i == 0 else BUCKETS[i - 1]
    upper = BUCKETS[i] if i < len(BUCKETS) else math.inf
    return lower, upper


def quantile(sorted_values: list[float], q: float) -> float:
    """The nearest-rank q quantile (what a histogram's bucket interpolation estimates)."""
    return sorted_values[max(0, math.ceil(q * len(sorted_values)) - 1)]
