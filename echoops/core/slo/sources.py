"""Where the SLO's figures come from (SLO_SOURCE): the interface the tick uses, and the two sources.

- `files` (the default): request logs in the log dir, ingested incrementally into per-minute
  aggregates and sketches (`aggregates`, `sketch`); windows are whole minutes.
- `prometheus`: PromQL over PROMETHEUS_URL (`prometheus`): increase() of the request histogram's
  `_count` for requests and 5xx errors, its buckets for slow requests, histogram_quantile for
  p95/p99, a query_range for the gate's 10-minute slices. Nothing is ingested or stored but the
  status; a constant number of queries per tick, whatever the history length.

A source raises `SourceUnavailable` when it cannot answer; the tick then keeps the last good
status, marked stale, and leaves the deploy gate as it is.
"""

from __future__ import annotations

import math
from typing import Protocol

from echoops.core.config import Settings
from echoops.core.slo import aggregates, rules, sketch
from echoops.core.slo.document import Figures, SourceUnavailable
from echoops.core.slo.types import RequestIngest, SourceReport

__all__ = ["FilesSource", "Source", "SourceUnavailable", "for_settings"]


class Source(Protocol):
    name: str
    backfills: bool  # can replay past ticks from stored data (the first tick of a day)

    def ingest(self, s: Settings, *, now: float) -> RequestIngest: ...

    def figures(self, s: Settings, *, now: float, rebaseline_at: float | None) -> Figures: ...

    def recent_p95_ms(self, s: Settings, *, now: float, minutes: int) -> float | None: ...

    def report(self) -> SourceReport | None: ...


class FilesSource:
    """Request logs (SLO_SOURCES) -> per-minute aggregates in echoops.db."""

    name = "files"
    backfills = True

    def ingest(self, s: Settings, *, now: float) -> RequestIngest:
        return aggregates.ingest(s, now=now)

    def figures(self, s: Settings, *, now: float, rebaseline_at: float | None) -> Figures:
        conn = aggregates.db(s)
        cur = aggregates.last_minute(now)
        rb_min = None if rebaseline_at is None else math.ceil(rebaseline_at / 60)
        budget_minutes = s.slo_window_days * 1440
        span = max(budget_minutes, max(rules.WINDOWS.values()))
        floor = cur - span + 1 if rb_min is None else max(cur - span + 1, rb_min)
        wins = aggregates.Windows(conn, floor, cur)

        def start(minutes: int) -> int:
            return max(cur - minutes + 1, floor)

        windows = {name: wins.sums(start(minutes), cur) for name, minutes in rules.WINDOWS.items()}
        slices = []
        for i in reversed(range(rules.GATE_SLICES)):  # oldest first
            hi = cur - i * rules.GATE_SLICE_MIN
            lo = hi - rules.GATE_SLICE_MIN + 1
            t, e, _ = wins.sums(max(lo, floor), hi)
            slices.append((t, e))
        bt, be, _ = wins.sums(start(budget_minutes), cur)
        p95, p99 = sketch.quantiles(wins.merged(start(rules.WINDOWS[rules.PERIOD]), cur), (0.95, 0.99))
        return Figures(windows=windows, slices=slices, budget=(bt, be), p95_ms=p95, p99_ms=p99)

    def recent_p95_ms(self, s: Settings, *, now: float, minutes: int) -> float | None:
        aggregates.ingest(s, now=now)
        cur = aggregates.last_minute(now)
        wins = aggregates.Windows(aggregates.db(s), cur - minutes + 1, cur)
        return sketch.quantiles(wins.merged(cur - minutes + 1, cur), (0.95,))[0]

    def report(self) -> SourceReport | None:
        return None  # the ingest report says it all


def for_settings(s: Settings) -> Source:
    """The source SLO_SOURCE names."""
    if s.slo_source == "prometheus":
        from echoops.core.slo import prometheus  # lazy: httpx, ~60 ms that the request-log source never needs

        return prometheus.PrometheusSource()
    return FilesSource()
