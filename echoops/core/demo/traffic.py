"""The live demo's app: what a small SaaS appends to its logs, in real time, following `story`.

`Traffic(s, start).advance(until)` writes everything that happens between the last call and
`until` (epoch s): request lines (60-110 a minute on the history's daily curve, so every SLO
window keeps enough traffic), AI calls (the app asks the cost guard first and obeys it),
a queue sample every 15 s (2 workers; arrivals per the story), the story's app log lines and a
purchase a loop. `run` calls it once a second until told to stop: that is `echoops demo
traffic`, the third process of `echoops up --demo`. Nothing here decides anything: the
scheduler's ticks read these files exactly as they read a real app's.

Time comes only from `advance(until)`, so a test can play a whole loop in simulated time.
"""

from __future__ import annotations

import math
import random
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from echoops.core import clock, config, ndjson
from echoops.core.config import Settings
from echoops.core.costs import guard
from echoops.core.costs import prices as price_list
from echoops.core.costs import status as costs_status
from echoops.core.demo import history, story
from echoops.core.portal import ledger, rows

REQUESTS_PER_MIN = (60.0, 110.0)  # the history's daily curve (20-110), with a floor for the 5m window
QUEUE_SAMPLE_S = 15.0
WORKERS = 2
CAPPED_MODEL = "gpt-4o-mini"  # the model whose spend follows story.SPEND_PLAN
STEADY_CALLS_PER_S = {"gpt-4o": 0.006, "text-embedding-3-small": 0.02}  # ~$4 and ~$0.7 a day
SWITCHED_CALLS_PER_S = 0.5  # calls to the guard's fallback model while it says "switch"
MAX_CALLS_PER_STEP = 40  # past this the capped model's catch-up goes out as batch jobs
BATCH_USD = 0.25
CAP_REFRESH_S = 60.0
STATUS_FOR = {503: 0.5, 500: 0.3, 504: 0.2}


class Traffic:
    """The demo app from `start` (epoch s) on; `advance(until)` writes what happened meanwhile."""

    def __init__(self, s: Settings, start: float, *, seed: str | None = None) -> None:
        self.s = s
        self.start = start
        self.t = start
        self.rng = random.Random(seed or f"echoops-demo-live:{round(start * 1000)}")
        self.routes = [(m, p) for m, p, _, _ in history.ROUTES]
        self.weights = [w for _, _, w, _ in history.ROUTES]
        self.factors = {p: f for _, p, _, f in history.ROUTES}
        self.next_request = start + self._gap(start)
        self.next_sample = start + QUEUE_SAMPLE_S
        self.next_call = {m: start + self.rng.expovariate(r) for m, r in STEADY_CALLS_PER_S.items()}
        self.depth, self.workers = _last_queue_state(s.log_path("queue.ndjson"))
        self.prices = price_list.price_table(s.model_prices)
        self.day = clock.day_start(start)
        self.spent_usd = _spent_today(s.log_path("ai_usage.ndjson"), self.day, self.prices)
        self.loop_base: dict[int, float] = {}  # the capped model's spend when each loop began
        self.cap_usd: float | None = None
        self.cap_read_at = -math.inf

    # --- the one public step -------------------------------------------------------------

    def advance(self, until: float) -> dict[str, Any]:
        """Write everything between the last advance and `until`; counts of what was written."""
        if until <= self.t:
            return {}
        t0, self.t = self.t, until
        out: dict[str, list[dict[str, Any]]] = {"requests": [], "ai_usage": [], "queue": [], "app": []}
        out["requests"] = self._requests(until)
        out["queue"] = self._queue(until)
        out["ai_usage"], spent = self._ai_calls(t0, until)
        out["app"] = self._log_lines(t0, until)
        purchases = self._purchases(t0, until)
        for name, lines in out.items():
            ndjson.append_lines(self.s.log_path(f"{name}.ndjson"), lines)
        counts: dict[str, Any] = {name: len(lines) for name, lines in out.items()}
        counts["errors"] = sum(1 for r in out["requests"] if r["status"] >= 500)
        counts["purchases"] = purchases
        counts["usd"] = round(spent, 6)
        return counts

    # --- requests --------------------------------------------------------------------------

    def _gap(self, ts: float) -> float:
        per_min = history.diurnal(ts, *REQUESTS_PER_MIN)
        return self.rng.expovariate(per_min / 60.0)

    def _requests(self, until: float) -> list[dict[str, Any]]:
        lines = []
        rng = self.rng
        while self.next_request <= until:
            ts = self.next_request
            moment = story.at(ts - self.start)
            method, path = rng.choices(self.routes, self.weights)[0]
            latency = rng.lognormvariate(4.7, 0.72) * self.factors[path] * moment.latency
            r = rng.random() * 100.0
            if r < moment.error_pct:
                status = _pick(STATUS_FOR, rng.random())
                if status == 504:
                    latency = 15000.0  # the proxy gave up
            elif r < moment.error_pct + 2.0:
                status, latency = (404 if rng.random() < 0.6 else 401), latency * 0.3
            else:
                status = 201 if method == "POST" else 200
            lines.append(
                {"ts": clock.iso(ts), "method": method, "path": path, "status": status, "latency_ms": round(latency, 1)}
            )
            self.next_request = ts + self._gap(ts)
        return lines

    # --- the worker queue ---------------------------------------------------------------

    def _queue(self, until: float) -> list[dict[str, Any]]:
        lines = []
        capacity_per_s = self.s.scale_jobs_per_worker_min / 60.0
        while self.next_sample <= until:
            ts = self.next_sample
            load = story.at(ts - self.start).queue_load
            arrivals = _poisson(self.rng, load * WORKERS * capacity_per_s * QUEUE_SAMPLE_S)
            can = round(self.workers * capacity_per_s * QUEUE_SAMPLE_S * self.rng.uniform(0.92, 1.0))
            completed = min(self.depth + arrivals, can)
            self.depth += arrivals - completed
            lines.append(
                {
                    "ts": clock.iso(ts),
                    "depth": self.depth,
                    "workers": self.workers,
                    "arrivals": arrivals,
                    "completed": completed,
                }
            )
            self.next_sample = ts + QUEUE_SAMPLE_S
        return lines

    # --- AI calls ----------------------------------------------------------------------------

    def _cost(self, model: str, tokens_in: int, tokens_out: int) -> float:
        price_in, price_out, _ = price_list.price_of(model, self.prices)
        return (tokens_in * price_in + tokens_out * price_out) / price_list.PICO_PER_USD

    def _call(self, ts: float, model: str, feature: str | None = None) -> tuple[dict[str, Any], float]:
        mu_in, sigma_in, mu_out, sigma_out, default = history.CALL_SHAPE.get(model, history.CALL_SHAPE[CAPPED_MODEL])
        tokens_in = int(self.rng.lognormvariate(mu_in, sigma_in))
        tokens_out = int(self.rng.lognormvariate(mu_out, sigma_out)) if mu_out else 0
        line = {
            "ts": clock.iso(ts),
            "model": model,
            "input_tokens": tokens_in,
            "output_tokens": tokens_out,
            "feature": feature or default,
        }
        return line, self._cost(model, tokens_in, tokens_out)

    def _cap(self, now: float) -> float | None:
        """The capped model's cap (USD), re-read a minute at a time (the API may change it)."""
        if now - self.cap_read_at >= CAP_REFRESH_S:
            self.cap_read_at = now
            scope = costs_status(s=self.s, now=now)["models"].get(CAPPED_MODEL)
            self.cap_usd = scope["cap_usd"] if scope is not None else None
        return self.cap_usd

    def _ai_calls(self, t0: float, until: float) -> tuple[list[dict[str, Any]], float]:
        lines: list[tuple[float, dict[str, Any]]] = []
        total = 0.0
        day = clock.day_start(until)
        if day != self.day:
            self.day, self.spent_usd, self.loop_base = day, 0.0, {}
        for model, rate in STEADY_CALLS_PER_S.items():
            while self.next_call[model] <= until:
                ts = self.next_call[model]
                decision = guard(model, s=self.s, now=ts)
                if decision["action"] != "throttle":
                    line, usd = self._call(ts, decision["model"])
                    lines.append((ts, line))
                    total += usd
                self.next_call[model] = ts + self.rng.expovariate(rate)
        t0 = max(t0, day)  # calls counted in today's spend are today's calls
        decision = guard(CAPPED_MODEL, s=self.s, now=until)
        if decision["action"] == "switch":
            for _ in range(_poisson(self.rng, SWITCHED_CALLS_PER_S * (until - t0))):
                line, usd = self._call(self.rng.uniform(t0, until), decision["model"], "chat")
                lines.append((clock.parse_ts(line["ts"]) or until, line))
                total += usd
        elif decision["action"] == "allow":
            for ts, line, usd in self._capped_calls(t0, until):
                lines.append((ts, line))
                total += usd
        lines.sort(key=lambda item: item[0])
        return [line for _, line in lines], total

    def _capped_calls(self, t0: float, until: float) -> list[tuple[float, dict[str, Any], float]]:
        """The capped model's calls that bring its spend to the story's plan at `until`."""
        cap = self._cap(until)
        if cap is None:  # no cap on it: steady chat traffic
            return [
                (ts, *self._call(ts, CAPPED_MODEL))
                for ts in sorted(self.rng.uniform(t0, until) for _ in range(_poisson(self.rng, 0.5 * (until - t0))))
            ]
        moment = story.at(until - self.start)
        base = self.loop_base.setdefault(moment.loop, self.spent_usd)
        target = max(base, story.spend_share(moment.offset_s) * cap)
        out: list[tuple[float, dict[str, Any], float]] = []
        while self.spent_usd < target:
            ts = self.rng.uniform(t0, until)
            if len(out) < MAX_CALLS_PER_STEP:
                line, usd = self._call(ts, CAPPED_MODEL)
            else:  # catching up (the loop began below the plan): the app's batch jobs
                usd_wanted = min(BATCH_USD, target - self.spent_usd)
                price_in = price_list.price_of(CAPPED_MODEL, self.prices)[0]
                tokens = max(1, round(usd_wanted * price_list.PICO_PER_USD / price_in))
                line = {
                    "ts": clock.iso(ts),
                    "model": CAPPED_MODEL,
                    "input_tokens": tokens,
                    "output_tokens": 0,
                    "feature": "nightly-batch",
                }
                usd = self._cost(CAPPED_MODEL, tokens, 0)
            self.spent_usd += usd
            out.append((ts, line, usd))
        return sorted(out, key=lambda item: item[0])

    # --- app log lines and purchases ---------------------------------------------------------

    def _in_step(self, t0: float, until: float, offset_s: float) -> list[tuple[int, float]]:
        """(loop, ts) of each loop's moment `offset_s` that falls in (t0, until]."""
        first = max(0, math.floor((t0 - self.start - offset_s) / story.LOOP_S))
        found: list[tuple[int, float]] = []
        loop = first
        while True:
            ts = self.start + loop * story.LOOP_S + offset_s
            if ts > until:
                return found
            if ts > t0:
                found.append((loop, ts))
            loop += 1

    def _log_lines(self, t0: float, until: float) -> list[dict[str, Any]]:
        lines = []
        for offset, level, source, msg in story.LOG_LINES:
            for loop, ts in self._in_step(t0, until, offset):
                if msg is None:
                    source, text = story.CRITICALS[loop % len(story.CRITICALS)]
                else:
                    text = msg
                lines.append((ts, {"ts": clock.iso(ts), "level": level, "source": source, "msg": text.format(n=loop)}))
        return [line for _, line in sorted(lines, key=lambda item: item[0])]

    def _purchases(self, t0: float, until: float) -> int:
        records = []
        for loop, ts in self._in_step(t0, until, story.PURCHASE_AT_S):
            cents = self.rng.choice((900, 1500, 4900, 9900))
            email = "qa@echopilot.ai" if loop % 4 == 3 else f"customer{loop % 5}@example.com"
            records.append(
                {
                    "id": f"demo_live_{round(ts)}",
                    "email": email,
                    "created": ts,
                    "amount_cents": cents,
                    "currency": "usd",
                    "description": "AI credits pack" if cents < 4900 else "Team plan, monthly",
                    "fee_cents": history.card_fee_cents(cents),
                }
            )
        if records:
            ledger.upsert([rows.purchase_row(r, source="demo", now=until) for r in records], s=self.s)
        return len(records)


def _pick(weights: dict[int, float], r: float) -> int:
    for value, weight in weights.items():
        if r < weight:
            return value
        r -= weight
    return next(reversed(weights))


def _poisson(rng: random.Random, mean: float) -> int:
    """A Poisson draw (Knuth's method; the means here are small)."""
    if mean <= 0:
        return 0
    if mean > 500:
        return max(0, round(rng.gauss(mean, math.sqrt(mean))))
    limit, k, p = math.exp(-mean), 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k


def _last_queue_state(path: Path) -> tuple[int, int]:
    """(depth, workers) of the last queue sample, so the live queue goes on from the history."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, 2)
            fh.seek(max(0, fh.tell() - 4096))
            tail = fh.read().splitlines()
    except FileNotFoundError:
        return 0, WORKERS
    for raw in reversed(tail):
        try:
            sample = orjson.loads(raw)
            return max(0, int(sample["depth"])), max(1, int(sample["workers"]))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            continue
    return 0, WORKERS


def _spent_today(path: Path, day: float, table: dict[str, tuple[int, int]]) -> float:
    """The capped model's spend in `path` since `day` (UTC midnight), USD."""
    pico = 0
    try:
        fh = open(path, "rb")
    except FileNotFoundError:
        return 0.0
    with fh:
        for raw in fh:
            try:
                call = orjson.loads(raw)
            except orjson.JSONDecodeError:
                continue
            if not isinstance(call, dict) or call.get("model") != CAPPED_MODEL:
                continue
            ts = clock.parse_ts(call.get("ts"))
            if ts is None or ts < day:
                continue
            price_in, price_out, _ = price_list.price_of(CAPPED_MODEL, table)
            try:
                pico += int(call.get("input_tokens") or 0) * price_in + int(call.get("output_tokens") or 0) * price_out
            except (TypeError, ValueError):
                continue  # a bad line: the costs tick skips it too
    return pico / price_list.PICO_PER_USD


def run(
    *,
    stop: threading.Event,
    s: Settings | None = None,
    interval_s: float = 1.0,
    now: Callable[[], float] = clock.now_s,
) -> None:
    """Advance a `Traffic` from now every `interval_s` seconds until `stop` is set."""
    s = s or config.settings()
    traffic = Traffic(s, now())
    while not stop.wait(interval_s):
        traffic.advance(now())
