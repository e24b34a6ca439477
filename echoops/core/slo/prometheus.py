"""Prometheus as the SLO source (SLO_SOURCE=prometheus): the same figures as the request logs give,
from PromQL over the app's request-latency histogram.

With H = SLO_PROM_HISTOGRAM, S = SLO_PROM_SELECTOR and C = SLO_PROM_CODE_LABEL, each tick sends
four queries, whatever the history length (`QUERIES_PER_TICK`), all evaluated at the tick's
`now`:

1. requests and errors per burn window and over the budget window:
   `sum(increase(H_count{S}[W]))` and `sum(increase(H_count{S,C=~"5.."}[W]))`;
2. the buckets per burn window, `sum by (le) (increase(H_bucket{S}[W]))`, for the slow count
   (requests above the largest bucket boundary at or below SLO_LAT_P95_MS);
3. p95 and p99 over the period (24h): `histogram_quantile(q, sum by (le) (rate(H_bucket{S}[24h])))`,
   so within the histogram's bucket resolution (linear inside a bucket);
4. the gate's twelve 10-minute slices of the last 2h: one `/api/v1/query_range` of
   `sum(increase(H_count{S}[10m]))` (and the 5xx twin) at a 10-minute step ending at `now`.

Each query answers several windows at once (`label_replace(...) or ...`), tagged with the
label `echoops_series`. Windows clip at a rebaseline like the file source's (whole minutes
since it); a 10-minute slice that ends before the rebaseline counts as empty.

Prometheus' increase() extrapolates to the window's edges; with samples on the window's edges
(or a steady rate) it is the exact count. Counts are rounded to whole requests.
"""

from __future__ import annotations

import math
import threading
import time
from typing import Any

import httpx

from echoops.core.config import Settings
from echoops.core.slo import promql, rules
from echoops.core.slo.document import Figures, SourceUnavailable
from echoops.core.slo.types import RequestIngest, SourceReport

__all__ = ["QUERIES_PER_TICK", "PrometheusSource", "SourceUnavailable"]

QUERIES_PER_TICK = 4
ERROR_CODES = '=~"5.."'
SERIES = "echoops_series"
BUDGET = "budget"
RECENT_CACHE_S = 60.0  # recent_p95_ms (the autoscaler's latency signal) asks at most once a minute
RECENT_TIMEOUT_S = 2.0  # ... in one attempt of at most this long

_recent: dict[tuple, tuple[float, float | None]] = {}
_recent_lock = threading.Lock()


def selector(s: Settings, *extra: str) -> str:
    """`{SLO_PROM_SELECTOR, extra...}` (or `{}` with neither)."""
    parts = [m for m in (s.slo_prom_selector, *extra) if m]
    return "{" + ",".join(parts) + "}"


def spans_s(s: Settings, now: float, rebaseline_at: float | None) -> dict[str, int]:
    """Seconds each window covers: its length, clipped to the whole minutes since a rebaseline."""
    avail = math.inf if rebaseline_at is None else max(0.0, now - math.ceil(rebaseline_at / 60) * 60)
    out = {name: int(min(minutes * 60, avail)) for name, minutes in rules.WINDOWS.items()}
    out[BUDGET] = int(min(s.slo_window_days * 86400, avail))
    return out


def _tagged(expr: str, tag: str) -> str:
    return f'label_replace({expr}, "{SERIES}", "{tag}", "", "")'


def _by_tag(result: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for series in result:
        metric = series.get("metric") if isinstance(series, dict) else None
        if isinstance(metric, dict) and isinstance(metric.get(SERIES), str):
            out.setdefault(metric[SERIES], []).append(series)
    return out


def _value(series: dict[str, Any]) -> float | None:
    value = series.get("value")
    return promql.number(value[1]) if isinstance(value, list) and len(value) == 2 else None


def _count(found: dict[str, list[dict[str, Any]]], tag: str) -> int:
    total = 0.0
    for series in found.get(tag, []):
        total += max(0.0, _value(series) or 0.0)
    return round(total)


class PrometheusSource:
    """The figures from PromQL; `queries` and `duration_s` describe the last `figures()` call."""

    name = "prometheus"
    backfills = False

    def __init__(self, transport: httpx.BaseTransport | None = None):
        self.transport = transport
        self.queries = 0
        self.duration_s = 0.0

    def ingest(self, s: Settings, *, now: float) -> RequestIngest:  # noqa: ARG002 (the Source interface)
        """Nothing to ingest: Prometheus holds the history. The report names the server."""
        shown = promql.shown_url(s.prometheus_url or "")
        return {
            "lines": 0,
            "bad": 0,
            "bad_reasons": {},
            "too_old": 0,
            "minutes_touched": 0,
            "sources": [shown],
            "events": [],
            "errors": [],
        }

    def figures(self, s: Settings, *, now: float, rebaseline_at: float | None) -> Figures:
        """Requests, errors, slow requests, slices and p95/p99 from QUERIES_PER_TICK queries."""
        started = time.perf_counter()
        spans = spans_s(s, now, rebaseline_at)
        h = s.slo_prom_histogram
        every = selector(s)
        errors = selector(s, f"{s.slo_prom_code_label}{ERROR_CODES}")
        with promql.Client(s, transport=self.transport) as client:
            try:
                counts = self._counts(client, h, every, errors, spans, now)
                within, boundary = self._within(client, s, h, every, spans, now)
                p95, p99 = self._quantiles(client, h, every, spans[rules.PERIOD], now)
                slices = self._slices(client, h, every, errors, now, rebaseline_at)
            finally:
                self.queries = client.queries
                self.duration_s = time.perf_counter() - started
        windows = {}
        for name in rules.WINDOWS:
            t, e = _count(counts, f"requests/{name}"), _count(counts, f"errors/{name}")
            windows[name] = (t, min(e, t), max(0, t - within.get(name, 0)))
        bt, be = _count(counts, f"requests/{BUDGET}"), _count(counts, f"errors/{BUDGET}")
        shown = promql.shown_url(s.prometheus_url or "")
        notes = [f"source: Prometheus at {shown}, {h} {every}"]
        if bt == 0:
            notes.append(
                f"Prometheus has no {h}_count{every} samples in the {s.slo_window_days}d budget window: "
                "check SLO_PROM_HISTOGRAM and SLO_PROM_SELECTOR"
            )
        elif boundary is None or not math.isclose(boundary, s.slo_lat_p95_ms / 1000, rel_tol=1e-9):
            at = "no bucket" if boundary is None else f"le={boundary:g}"
            notes.append(
                f"SLO_LAT_P95_MS {s.slo_lat_p95_ms:g} ms is not a bucket boundary of {h}: "
                f"slow counts requests above {at}"
            )
        return Figures(
            windows=windows,
            slices=slices,
            budget=(bt, min(be, bt)),
            p95_ms=None if p95 is None else p95 * 1000,
            p99_ms=None if p99 is None else p99 * 1000,
            notes=notes,
        )

    @staticmethod
    def _counts(client, h: str, every: str, errors: str, spans: dict[str, int], now: float):
        parts = []
        for name, span in spans.items():
            if span > 0:
                parts.append(_tagged(f"sum(increase({h}_count{every}[{span}s]))", f"requests/{name}"))
                parts.append(_tagged(f"sum(increase({h}_count{errors}[{span}s]))", f"errors/{name}"))
        if not parts:
            return {}
        return _by_tag(client.query(" or ".join(parts), at=now))

    @staticmethod
    def _within(client, s: Settings, h: str, every: str, spans: dict[str, int], now: float):
        """Per window, the requests at or below the largest bucket boundary <= the latency target."""
        parts = [
            _tagged(f"sum by (le) (increase({h}_bucket{every}[{spans[name]}s]))", name)
            for name in rules.WINDOWS
            if spans[name] > 0
        ]
        if not parts:
            return {}, None
        target_s = s.slo_lat_p95_ms / 1000
        found = _by_tag(client.query(" or ".join(parts), at=now))
        bounds = {
            le
            for series in found.values()
            for item in series
            if (le := promql.number(item["metric"].get("le"))) is not None and le <= target_s * (1 + 1e-9)
        }
        boundary = max(bounds) if bounds else None
        within: dict[str, int] = {}
        for name, series in found.items():
            for item in series:
                le = promql.number(item["metric"].get("le"))
                if boundary is not None and le is not None and math.isclose(le, boundary, rel_tol=1e-12):
                    within[name] = within.get(name, 0) + round(max(0.0, _value(item) or 0.0))
        return within, boundary

    @staticmethod
    def _quantiles(client, h: str, every: str, span: int, now: float) -> tuple[float | None, float | None]:
        if span <= 0:
            return None, None
        buckets = f"sum by (le) (rate({h}_bucket{every}[{span}s]))"
        expr = " or ".join(
            _tagged(f"histogram_quantile({q}, {buckets})", tag) for q, tag in ((0.95, "p95"), (0.99, "p99"))
        )
        found = _by_tag(client.query(expr, at=now))
        p95 = [v for item in found.get("p95", []) if (v := _value(item)) is not None]
        p99 = [v for item in found.get("p99", []) if (v := _value(item)) is not None]
        return (p95[0] if p95 else None), (p99[0] if p99 else None)

    @staticmethod
    def _slices(client, h: str, every: str, errors: str, now: float, rebaseline_at: float | None):
        step = rules.GATE_SLICE_MIN * 60
        start = now - (rules.GATE_SLICES - 1) * step
        expr = (
            _tagged(f"sum(increase({h}_count{every}[{step}s]))", "requests")
            + " or "
            + _tagged(f"sum(increase({h}_count{errors}[{step}s]))", "errors")
        )
        found = _by_tag(client.query_range(expr, start=start, end=now, step_s=step))
        per: dict[str, list[float]] = {"requests": [0.0] * rules.GATE_SLICES, "errors": [0.0] * rules.GATE_SLICES}
        for tag, values in per.items():
            for series in found.get(tag, []):
                for point in series.get("values") or []:
                    if not (isinstance(point, list) and len(point) == 2):
                        continue
                    at, value = promql.number(point[0]), promql.number(point[1])
                    if at is None or value is None:
                        continue
                    i = round((at - start) / step)
                    if 0 <= i < rules.GATE_SLICES:
                        values[i] += max(0.0, value)
        out = []
        for i in range(rules.GATE_SLICES):
            end = start + i * step
            if rebaseline_at is not None and end <= rebaseline_at:
                out.append((0, 0))
                continue
            t = round(per["requests"][i])
            out.append((t, min(t, round(per["errors"][i]))))
        return out

    def report(self) -> SourceReport:
        """The last `figures()` call: queries answered and how long it took."""
        return {"name": self.name, "queries": self.queries, "duration_ms": round(self.duration_s * 1000, 1)}

    def recent_p95_ms(self, s: Settings, *, now: float, minutes: int) -> float | None:
        """p95 (ms) over the last `minutes` from Prometheus; None without traffic or when it cannot
        answer (one attempt, at most RECENT_TIMEOUT_S). Cached RECENT_CACHE_S per process (the
        autoscaler asks on every status read, and /metrics reads the autoscaler's status)."""
        key = (s.prometheus_url, s.slo_prom_histogram, s.slo_prom_selector, minutes)
        with _recent_lock:
            hit = _recent.get(key)
        if hit is not None and 0 <= now - hit[0] < RECENT_CACHE_S:
            return hit[1]
        buckets = f"{s.slo_prom_histogram}_bucket{selector(s)}[{minutes * 60}s]"
        expr = f"histogram_quantile(0.95, sum by (le) (rate({buckets})))"
        value: float | None
        try:
            # one short attempt: a status read (the autoscaler's, a /metrics scrape) must not wait out retries
            timeout = min(s.prometheus_timeout_s, RECENT_TIMEOUT_S)
            with promql.Client(s, transport=self.transport, attempts=1, timeout_s=timeout) as client:
                found = client.query(expr, at=now)
            values = [v for item in found if (v := _value(item)) is not None]
            value = values[0] * 1000 if values else None
        except SourceUnavailable:
            value = None
        with _recent_lock:
            _recent[key] = (now, value)
        return value
