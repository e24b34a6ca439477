"""Backtest: replay a queue history through the production policy and a reactive baseline.

Model. The trace gives the arrivals per interval (its `arrivals`, or the derivation in
core/forecast.py) and the real per-worker capacity: the median of completed/(workers x min)
over intervals that ended with a backlog, else SCALE_JOBS_PER_WORKER_MIN (or
`jobs_per_worker`). Each policy starts from the first sample's depth and workers, then for
every interval: served = min(backlog + arrivals, workers x capacity x dt), backlog carries
the rest; the policy's own forecaster sees the simulated samples exactly as `scale tick`
would. Every `tick_min` minutes (the scheduler's 10 by default) it calls
policy.decide and a change takes effect at once (real mode, no actuator failures,
no gate, no p95 signal in a trace).

Policies. "predictive" is production: backlog + Holt forecast of arrivals over the horizon.
"reactive" is the HPA ratio with no forecast: desired = ceil(actual x load / target), with
load per worker = (backlog + latest arrival rate x horizon) / (actual x horizon) and target =
the per-worker throughput, i.e. the same formula fed the current rate instead of the
forecast, under the same tolerance, bounds, stabilisation and cooldown.

Summary per policy: changes, backlog-minutes (sum of backlog x minutes: job-minutes spent
waiting beyond each interval), worker-minutes, peak backlog.

The trace is streamed (`Trace`): read once for its summary and observed capacity, then once per
replay (every method in one pass, each phase a pass), so memory does not grow with its length
(432,000 samples under 60 MB; bench/scale_simulate.py).
"""

from __future__ import annotations

import statistics
from array import array
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import orjson

from echoops.core import clock, config
from echoops.core.config import Settings
from echoops.core.errors import ValidationError
from echoops.core.scale.forecast import DEFAULT_METHOD, Forecaster, parse_sample
from echoops.core.scale.policy import PolicyConfig, decide

METHODS = ("reactive", "holt", "damped", "damped+seasonal")


class Trace:
    """A queue history in queue.ndjson format, read as a stream: memory stays O(1) in its length.

    Reading it once (at construction) gives `info` (samples, bad lines, span, first depth and
    workers, arrivals) and `observed`, the capacity per worker the trace shows (the median of
    completed/(workers x min) over intervals that ended with a backlog, kept as 8-byte floats);
    `intervals()` reads the file again, once per replay, as (ts, dt_min, arrivals).
    """

    def __init__(self, path: Path, fallback_tpw: float):
        self.path = Path(path)
        self.fallback_tpw = fallback_tpw
        caps = array("d")
        arrived = 0.0
        last: tuple[float, float, float] | None = None
        for ts, dt, arrivals, depth, workers, completed in self._walk():
            last = (ts, dt, arrivals)
            arrived += arrivals
            if completed is not None and workers > 0 and depth > 0:
                caps.append(completed / (workers * dt))
        first = self._first
        if first is None or last is None:
            raise ValidationError(f"trace {path} has fewer than two usable samples", field="file")
        self.info: dict[str, Any] = {
            "file": str(path),
            "samples": self._samples,
            "bad": self._bad,
            "start": clock.iso(first[0]),
            "end": clock.iso(last[0]),
            "minutes": round((last[0] - first[0]) / 60.0, 1),
            "first_depth": first[1],
            "first_workers": first[2],
            "arrivals": round(arrived, 1),
        }
        self.start_ts: float = first[0]
        self.observed: float | None = statistics.median(caps) if caps else None

    def _lines(self) -> Iterator[bytes]:
        try:
            fh = open(self.path, "rb")
        except FileNotFoundError:
            raise ValidationError(f"trace {self.path} does not exist", field="file") from None  # bad usage: exit 2
        except (IsADirectoryError, PermissionError) as exc:
            raise ValidationError(f"cannot read trace {self.path}: {exc.strerror}", field="file") from None
        with fh:
            yield from fh

    def _walk(self) -> Iterator[tuple[float, float, float, float, int, float | None]]:
        """(ts, dt_min, arrivals, depth, workers, completed) per interval after the first usable
        sample, the arrivals derived as `scale tick` derives them (core/scale/forecast.py)."""
        fc = Forecaster(seasonal=False)
        self._first: tuple | None = None
        self._bad = self._samples = 0
        loads, decode_error = orjson.loads, orjson.JSONDecodeError
        for line in self._lines():
            if not line.strip():
                continue
            try:
                obj = loads(line)
            except decode_error:
                self._bad += 1
                continue
            parsed = parse_sample(obj) if type(obj) is dict else "not_object"
            if isinstance(parsed, str):
                self._bad += 1
                continue
            ts, depth, workers, _arrivals, completed = parsed
            prev_ts = fc.last_ts
            if not fc.observe(*parsed, self.fallback_tpw):
                self._bad += 1
                continue
            self._samples += 1
            if prev_ts is None:
                self._first = parsed
                continue
            dt = (ts - prev_ts) / 60.0
            rate = fc.last_rate
            yield ts, dt, 0.0 if rate is None else rate * dt, depth, workers, completed

    def intervals(self) -> Iterator[tuple[float, float, float]]:
        """(ts, dt_min, arrivals) per interval, read from the file again."""
        for ts, dt, arrivals, _, _, _ in self._walk():
            yield ts, dt, arrivals


@dataclass
class Replay:
    """One method replaying a trace: the simulated queue, the method's forecaster fed the
    simulated samples (as `scale tick` would see them), and what it decided so far.

    Per interval, `serve()` moves the queue; at each scheduler tick, `decide()` runs the
    production decision and applies a change at once. `result()` is the method's part of
    the `simulate` body. Everything it keeps is bounded (the forecaster's state, the
    forecasts not yet scored, the cooldown window) except the lists of changes and, with
    `keep_decisions`, of decisions, so a trace can be streamed through it.
    """

    method: str  # "reactive" (HPA ratio on the current rate) or a forecast method
    cfg: PolicyConfig
    capacity: float  # real jobs/min per worker: what `serve` completes
    fallback_tpw: float  # SCALE_JOBS_PER_WORKER_MIN, for the forecaster's throughput estimate
    backlog: float
    workers: int
    keep_decisions: bool = False
    fc: Forecaster = field(default_factory=Forecaster)
    recent: list[tuple[float, int]] = field(default_factory=list)  # (ts, recommended) in the cooldown window
    last_change: float | None = None
    backlog_min: float = 0.0
    worker_min: float = 0.0
    peak_backlog: float = 0.0
    decisions: int = 0
    changes: list[dict[str, Any]] = field(default_factory=list)
    log: list[dict[str, Any]] = field(default_factory=list)  # every decision, with keep_decisions
    arrived: float = 0.0  # jobs arrived so far (to score forecasts)
    unscored: deque[tuple[float, float, float]] = field(default_factory=deque)  # (due ts, arrived then, forecast)
    ape_sum: float = 0.0
    ape_n: int = 0

    def __post_init__(self) -> None:
        self.peak_backlog = self.backlog
        forecast_method = DEFAULT_METHOD if self.method == "reactive" else self.method
        self.fc.configure(forecast_method, self.cfg.horizon_min, seasonal=self.method == "damped+seasonal")

    def start(self, ts: float) -> Replay:
        """The first sample: the trace's depth and workers at `ts`."""
        self.fc.observe(ts, self.backlog, self.workers, None, None, self.fallback_tpw)
        return self

    def serve(self, ts: float, dt: float, arrivals: float) -> None:
        """One interval of `dt` minutes ending at `ts`: the workers serve what they can of the
        backlog plus the arrivals; the rest waits. The forecaster sees the resulting sample,
        and the forecasts whose horizon ended by `ts` are scored against what arrived."""
        capacity = self.workers * self.capacity * dt
        total = self.backlog + arrivals
        served = capacity if capacity < total else total
        backlog = total - served
        self.backlog = backlog = 0.0 if backlog < 1e-9 else backlog
        self.fc.observe(ts, backlog, self.workers, arrivals, served, self.fallback_tpw)
        self.backlog_min += backlog * dt
        self.worker_min += self.workers * dt
        if backlog > self.peak_backlog:
            self.peak_backlog = backlog
        self.arrived += arrivals
        unscored = self.unscored
        while unscored and unscored[0][0] <= ts:
            _, then, forecast = unscored.popleft()
            actual = self.arrived - then
            if actual >= 1.0:  # an empty window has no percentage error
                self.ape_sum += abs(forecast - actual) / actual
                self.ape_n += 1

    def decide(self, ts: float) -> None:
        """One scheduler tick at `ts`: the method's decision, applied at once when it changes the workers."""
        cfg, fc = self.cfg, self.fc
        tpw, _ = fc.throughput(self.fallback_tpw)
        if self.method == "reactive":
            ahead, label = (fc.last_rate or 0.0) * cfg.horizon_min, "current rate"
        else:
            ahead, label = fc.arrivals_over(cfg.horizon_min), "forecast"
        self.unscored.append((ts + cfg.horizon_min * 60.0, self.arrived, ahead))
        if self.recent and self.recent[0][0] < ts - cfg.cooldown_s:
            self.recent = [r for r in self.recent if r[0] >= ts - cfg.cooldown_s]
        d = decide(
            backlog=self.backlog,
            forecast_arrivals=ahead,
            jobs_per_worker_min=tpw,
            actual=self.workers,
            cfg=cfg,
            recent=self.recent,
            last_change_at=self.last_change,
            now=ts,
            forecast_label=label,
        )
        self.decisions += 1
        self.recent.append((ts, d.recommended))
        backlog = round(self.backlog)
        if self.keep_decisions:
            self.log.append(
                {"ts": clock.iso(ts), "actual": self.workers, "desired": d.desired, "target": d.target,
                 "backlog": backlog, "forecast": round(ahead, 1), "reason": d.reason}
            )  # fmt: skip
        if d.target != self.workers:
            self.changes.append(
                {"ts": clock.iso(ts), "from": self.workers, "to": d.target, "backlog": backlog, "reason": d.reason}
            )
            self.workers, self.last_change = d.target, ts

    def result(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "summary": {
                "changes": len(self.changes),
                "decisions": self.decisions,
                "backlog_minutes": round(self.backlog_min, 1),
                "worker_minutes": round(self.worker_min, 1),
                "peak_backlog": round(self.peak_backlog),
                "end_backlog": round(self.backlog),
                "end_workers": self.workers,
                "mape_pct": round(self.ape_sum / self.ape_n * 100.0, 1) if self.ape_n else None,
                "mape_windows": self.ape_n,
            },
            "changes": self.changes,
        }
        if self.keep_decisions:
            out["decisions"] = self.log
        return out


def replay(
    methods: Iterable[str],
    intervals: Iterable[tuple[float, float, float]],
    info: dict[str, Any],
    capacity: float,
    cfg: PolicyConfig,
    fallback_tpw: float,
    tick_s: float,
    start_ts: float,
    all_decisions: bool = False,
    phase_s: float = 0.0,
) -> dict[str, dict[str, Any]]:
    """Replay `intervals` through every method in one pass (each interval is seen once, by all
    methods in turn), from the trace's first sample, deciding every `tick_s` seconds (the first
    decision `phase_s` later than one tick after the first sample)."""
    runs = [
        Replay(m, cfg, capacity, fallback_tpw, float(info["first_depth"]), int(info["first_workers"]),
               keep_decisions=all_decisions).start(start_ts)
        for m in methods
    ]  # fmt: skip
    next_tick = start_ts + tick_s + phase_s
    for ts, dt, arrivals in intervals:
        for run in runs:
            run.serve(ts, dt, arrivals)
        if ts >= next_tick:
            while next_tick <= ts:  # a gap in the trace skips the ticks it covered
                next_tick += tick_s
            for run in runs:
                run.decide(ts)
    return {run.method: run.result() for run in runs}


def simulate(
    path: Path,
    *,
    tick_min: float = 10.0,
    jobs_per_worker: float | None = None,
    all_decisions: bool = False,
    method: str | None = None,
    phases: int = 1,
    s: Settings | None = None,
) -> dict[str, Any]:
    """Replay `path` (queue.ndjson format) through every method (or only `method`); the
    `scale simulate --json` body.

    `changes` lists the decisions that changed the workers; `all_decisions` adds every decision.
    `phases` > 1 replays again with the decisions moved by tick/phases, tick*2/phases, ... and
    reports each summary figure as the mean over the phases (the changes listed are the first
    phase's): when the first decision falls is luck, and on a bursty trace it moves
    backlog-minutes by tens of percent.
    """
    s = s or config.settings()
    try:
        tick_min = config.check_number(tick_min, lo=0, lo_open=True, hi=1440)
    except ValueError as exc:
        raise ValidationError(f"tick_min: {exc}", field="tick_min") from None
    if jobs_per_worker is not None:
        try:
            jobs_per_worker = config.check_number(jobs_per_worker, lo=0, lo_open=True)
        except ValueError as exc:
            raise ValidationError(f"jobs_per_worker: {exc}", field="jobs_per_worker") from None
    if type(phases) is not int or not 1 <= phases <= 60:
        raise ValidationError("phases must be a whole number from 1 to 60", field="phases")
    if method is not None and method not in METHODS:
        raise ValidationError(f"method must be one of {', '.join(METHODS)}", field="method")
    fallback = s.scale_jobs_per_worker_min
    trace = Trace(path, fallback)
    info, observed, start_ts = trace.info, trace.observed, trace.start_ts
    capacity = jobs_per_worker or observed or fallback
    cfg = replace(PolicyConfig.from_settings(s), p95_target_ms=None)  # a trace has no latency signal
    chosen = METHODS if method is None else (method,)
    tick_s = tick_min * 60.0
    results = replay(chosen, trace.intervals(), info, capacity, cfg, fallback, tick_s, start_ts, all_decisions)
    if phases > 1:
        runs = [results] + [
            replay(
                chosen, trace.intervals(), info, capacity, cfg, fallback, tick_s, start_ts, phase_s=k * tick_s / phases
            )
            for k in range(1, phases)
        ]
        for name in chosen:
            results[name]["summary"] = _mean([r[name]["summary"] for r in runs])
    body: dict[str, Any] = {
        "trace": info,
        "model": {
            "jobs_per_worker_min": round(capacity, 3),
            "capacity_source": "option" if jobs_per_worker else "trace" if observed else "SCALE_JOBS_PER_WORKER_MIN",
            "tick_min": tick_min,
            "horizon_min": s.scale_horizon_min,
            "cooldown_min": s.scale_cooldown_min,
            "bounds": {"min": s.scale_min, "max": s.scale_max},
            "production_method": s.scale_forecast,
            "phases": phases,
        },
        "methods": results,
    }
    if "holt" in results and len(results) > 1:
        body["comparison"] = compare(results, "holt")
    return body


def _mean(summaries: list[dict[str, Any]]) -> dict[str, Any]:
    """Each figure's mean over the phases (MAPE over the phases that had one)."""
    out: dict[str, Any] = {}
    for key in summaries[0]:
        values = [s[key] for s in summaries if s[key] is not None]
        out[key] = round(sum(values) / len(values), 1) if values else None
    return out


def compare(results: dict[str, dict[str, Any]], base: str) -> dict[str, dict[str, float | None]]:
    """Each method's change in % against `base` (negative = less), per summary figure."""
    b = results[base]["summary"]
    out = {}
    for name, part in results.items():
        if name == base:
            continue
        m = part["summary"]
        out[name] = {
            f"{key}_change_pct": _pct(m[key], b[key])
            for key in ("backlog_minutes", "worker_minutes", "changes", "mape_pct")
        }
    return out


def _pct(value: float | None, base: float | None) -> float | None:
    if value is None or base is None or base == 0:
        return None
    return round((value - base) / base * 100.0, 1)


def timeline(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Every method's rows of a `simulate` result in time order, as {ts, method, from, to, backlog, reason}.

    The rows are every decision when the result has them (`all_decisions`), else the changes;
    at the same minute the methods keep the order of METHODS.
    """
    rows = []
    for name, part in result["methods"].items():
        if "decisions" in part:
            rows += [
                {
                    "ts": d["ts"],
                    "method": name,
                    "from": d["actual"],
                    "to": d["target"],
                    "backlog": d["backlog"],
                    "reason": d["reason"],
                }
                for d in part["decisions"]
            ]
        else:
            rows += [{"method": name, **c} for c in part["changes"]]
    rows.sort(key=lambda r: r["ts"])
    return rows
