"""`GET /metrics`: every control's current state in the Prometheus exposition format, through the
official client library (`prometheus_client`), for a Prometheus scrape and Grafana.

A custom collector reads what the controls already keep (the last SLO tick's status, the deploy
gate flag, the pager's tables, today's cost state, the autoscaler's status, the scheduler's job
rows) at scrape time; nothing is computed per scrape that a status read does not compute.
Names follow Prometheus' conventions: base units (`_seconds`, `_usd`, `_ratio`), `_total` on
counters, one metric per quantity with labels for its dimensions. A value that does not exist
yet (no p95 before any traffic) is left out rather than written as 0.

Each section (slo, pager, costs, scale, scheduler) is read on its own: a failing one is left out
and `echoops_metrics_section_up{section}` says 0, so the rest still reaches Grafana.

The text format (`text/plain; version=0.0.4`) is answered unless the scraper asks for
OpenMetrics (Prometheus does, in its Accept header); both come from the library's encoders.
The server reuses a read for up to a second per worker (as /healthz reuses its probe), so
several Prometheus servers, or a burst of requests, cost one read a second; a scrape every
15 s or more always reads afresh.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector, CollectorRegistry

from echoops import __version__
from echoops.core import clock, config, costs, pager, scale, scheduler, slo, store
from echoops.core.config import Settings
from echoops.core.errors import EchoopsError

SECTIONS = ("slo", "pager", "costs", "scale", "scheduler")
SLO_STATES = ("green", "yellow", "red")


def _gauge(name: str, doc: str, value: float | None) -> Iterator[Metric]:
    """A one-sample gauge, or nothing while the value does not exist (never a made-up 0)."""
    if value is not None:
        yield GaugeMetricFamily(name, doc, value=value)


def _slo(s: Settings, now: float) -> Iterator[Metric]:
    st = slo.status(s=s, now=now, history=False)
    p95, p99 = st["p95_ms"], st["p99_ms"]
    period = st["period"]
    yield from _gauge(
        "echoops_slo_latency_p95_seconds", f"p95 request latency over {period}", None if p95 is None else p95 / 1000
    )
    yield from _gauge(
        "echoops_slo_latency_p99_seconds", f"p99 request latency over {period}", None if p99 is None else p99 / 1000
    )
    yield GaugeMetricFamily(
        "echoops_slo_error_ratio", f"Share of requests that failed (5xx) over {period}", value=st["error_rate"]
    )
    yield GaugeMetricFamily("echoops_slo_requests", f"Requests over {period} (the SLO's traffic)", value=st["requests"])
    yield GaugeMetricFamily(
        "echoops_slo_error_budget_remaining_ratio",
        f"Error budget left over {st['budget']['window']} (1 = untouched, < 0 = overspent)",
        value=st["remaining_budget_pct"] / 100,
    )
    burn = GaugeMetricFamily(
        "echoops_slo_burn_rate", "Error ratio / budget ratio per window (1 = on budget)", labels=["window"]
    )
    for window, value in st["burn"].items():
        burn.add_metric([window], value)
    yield burn
    state = GaugeMetricFamily("echoops_slo_state", "SLO state (1 for the current one)", labels=["state"])
    for name in SLO_STATES:
        state.add_metric([name], 1.0 if st["state"] == name else 0.0)
    yield state
    target = st["target"]
    yield GaugeMetricFamily(
        "echoops_slo_objective_latency_p95_seconds",
        "p95 latency objective (SLO_LAT_P95_MS)",
        value=target["p95_ms"] / 1000,
    )
    yield GaugeMetricFamily(
        "echoops_slo_objective_error_ratio",
        "Share of requests allowed to fail (SLO_ERR_BUDGET_DAILY_PCT / 100)",
        value=target["error_budget_pct"] / 100,
    )
    updated = clock.parse_ts(st["updated_at"])
    yield from _gauge("echoops_slo_last_tick_timestamp_seconds", "When the status was computed", updated)
    yield GaugeMetricFamily(
        "echoops_slo_stale",
        "1 while the SLO source cannot answer (the status is the last good one)",
        value=1.0 if st.get("stale") else 0.0,
    )
    gate = st["gate"]
    yield GaugeMetricFamily(
        "echoops_deploy_gate", "1 while logs/deploy_gate.flag is set (deploys blocked)", value=float(gate["set"])
    )
    yield GaugeMetricFamily(
        "echoops_deploy_gate_override",
        "1 while an operator's override keeps the gate cleared",
        value=1.0 if gate["override"] else 0.0,
    )


def _pager(s: Settings, now: float) -> Iterator[Metric]:  # noqa: ARG001 (totals have no time)
    c = pager.counts(s=s)
    incidents = CounterMetricFamily("echoops_incidents", "Incidents opened, by worst severity", labels=["severity"])
    for severity, n in c.incidents.items():
        incidents.add_metric([severity], n)
    yield incidents
    yield GaugeMetricFamily("echoops_pager_outbox_pending", "Deliveries waiting to be sent or retried", value=c.pending)
    deliveries = CounterMetricFamily(
        "echoops_pager_deliveries", "Deliveries that ended, by channel and result", labels=["channel", "result"]
    )
    for (channel, result), n in c.deliveries.items():
        deliveries.add_metric([channel, result], n)
    yield deliveries
    attempts = CounterMetricFamily("echoops_pager_delivery_attempts", "Send attempts, by channel", labels=["channel"])
    for channel, n in c.attempts.items():
        attempts.add_metric([channel], n)
    yield attempts


def _costs(s: Settings, now: float) -> Iterator[Metric]:
    st = costs.status(s=s, now=now)
    labels = ["scope", "model"]
    spend = GaugeMetricFamily("echoops_cost_spend_usd", "Spend today (UTC day)", labels=labels)
    cap = GaugeMetricFamily("echoops_cost_cap_usd", "Daily cap", labels=labels)
    entries = [("global", "", st["global"])] + [("model", name, e) for name, e in st["models"].items()]
    for scope, model, entry in entries:
        spend.add_metric([scope, model], entry["spent_usd"])
        if (limit := entry.get("cap_usd")) is not None:
            cap.add_metric([scope, model], limit)
    fees = st["stripe_fees"]
    spend.add_metric(["stripe_fees", ""], fees["spent_usd"])
    if (limit := fees.get("cap_usd")) is not None:
        cap.add_metric(["stripe_fees", ""], limit)
    yield spend
    yield cap


def _scale(s: Settings, now: float) -> Iterator[Metric]:
    st = scale.status(s=s, now=now)
    yield GaugeMetricFamily("echoops_scale_desired_workers", "Workers the policy wants", value=st["desired"])
    yield GaugeMetricFamily(
        "echoops_scale_actual_workers", "Workers running (latest sample or applied)", value=st["actual"]
    )
    yield GaugeMetricFamily(
        "echoops_scale_forecast_arrivals_per_minute",
        f"Forecast job arrivals per minute {st['forecast']['horizon_min']} min ahead",
        value=st["forecast"]["rate_in_horizon_per_min"],
    )
    yield GaugeMetricFamily(
        "echoops_scale_backlog_jobs", "Jobs waiting at the latest queue sample", value=st["forecast"]["backlog"]
    )
    yield GaugeMetricFamily(
        "echoops_scale_dry_run", "1 while the autoscaler applies nothing (SCALE_DRY_RUN)", value=float(st["dry_run"])
    )


def _scheduler(s: Settings, now: float) -> Iterator[Metric]:  # noqa: ARG001 (timestamps only)
    family = GaugeMetricFamily(
        "echoops_scheduler_job_last_success_timestamp_seconds",
        "When each scheduled job last exited 0 (label job_name: `job` is the label Prometheus gives every target)",
        labels=["job_name"],
    )
    for job, at in scheduler.last_successes(s=s).items():
        family.add_metric([job], at)
    yield family


READERS: dict[str, Callable[[Settings, float], Iterator[Metric]]] = {
    "slo": _slo,
    "pager": _pager,
    "costs": _costs,
    "scale": _scale,
    "scheduler": _scheduler,
}


class StateCollector(Collector):
    """Reads every section of echoops' state once per `collect()`."""

    def __init__(self, s: Settings, now: float):
        self.s = s
        self.now = now

    def collect(self) -> Iterator[Metric]:
        info = GaugeMetricFamily("echoops_build_info", "echoops version (always 1)", labels=["version"])
        info.add_metric([__version__], 1.0)
        yield info
        up = GaugeMetricFamily("echoops_metrics_section_up", "1 when the section could be read", labels=["section"])
        for name, reader in READERS.items():
            try:
                metrics = list(reader(self.s, self.now))
            except store.errors(EchoopsError, OSError):
                up.add_metric([name], 0.0)
                continue
            up.add_metric([name], 1.0)
            yield from metrics
        yield up


class _Replay(Collector):
    """Metric families read earlier, yielded again."""

    def __init__(self, families: list[Metric]):
        self.families = families

    def collect(self) -> Iterator[Metric]:
        return iter(self.families)


_last: tuple[Settings, float, list[Metric]] | None = None  # (settings, monotonic time read, families)
# the reused read's encodings, by Accept header (Prometheus sends the same one every scrape)
_encoded: tuple[list[Metric] | None, dict[str, tuple[bytes, str]]] = (None, {})
_last_lock = threading.Lock()
MAX_ENCODINGS = 8


def families(*, s: Settings | None = None, now: float | None = None, max_age_s: float = 0.0) -> list[Metric]:
    """Every metric family of echoops' current state; with `max_age_s`, a read of this process at
    most that old is reused (the server: a burst of scrapes costs one read a second per worker)."""
    global _last
    s = s or config.settings()
    mono = time.monotonic()
    if max_age_s > 0:
        with _last_lock:
            last = _last
        if last is not None and last[0] is s and 0 <= mono - last[1] < max_age_s:
            return last[2]
    found = list(StateCollector(s, clock.now_s(now)).collect())
    if max_age_s > 0:
        with _last_lock:
            _last = (s, mono, found)
    return found


def exposition(
    accept: str | None = None, *, s: Settings | None = None, now: float | None = None, max_age_s: float = 0.0
) -> tuple[bytes, str]:
    """(body, content type) of `GET /metrics`: OpenMetrics when `accept` asks for it, else the text
    format; `max_age_s` as for `families`."""
    global _encoded
    found = families(s=s, now=now, max_age_s=max_age_s)
    key = accept or ""
    with _last_lock:
        reuse = _encoded if max_age_s > 0 and _encoded[0] is found else None
    if reuse is not None and key in reuse[1]:
        return reuse[1][key]
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Replay(found))
    encoder, content_type = choose_encoder(key)
    answer = (encoder(registry), content_type)
    if max_age_s > 0:
        with _last_lock:
            if _encoded[0] is not found or len(_encoded[1]) >= MAX_ENCODINGS:
                _encoded = (found, {})
            _encoded[1][key] = answer
    return answer
