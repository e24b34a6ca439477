#!/usr/bin/env python3
"""GET /metrics with 30 days of state (issue 16).

Fills a log dir with 30 days ending now: request logs (`--per-minute` a minute, ingested by one
SLO tick), an incident every 10 minutes (a sixth of them CRITICAL, paged to unconfigured
channels), a queue sample a minute plus an autoscale tick every 10 minutes over the last day,
AI usage every minute, and four scheduler jobs run once. Then:

- the read a scrape does, in process (`metrics.exposition()`, no reuse), p50/p99;
- `GET /metrics` on `echoops serve` (gunicorn, 2 workers) with Prometheus' Accept header and a
  bearer key, sequential requests spaced just over the server's 1 s reuse, so every one reads
  afresh (target p99 < 20 ms), against `GET /healthz` p99 on the same server;
- requests/s of `GET /metrics` against `GET /healthz` on the same server, `wrk -t2 -c16`,
  alternating rounds (target >= 0.5x).

    .venv/bin/python bench/metrics.py [--per-minute 40] [--scrapes 60] [--rounds 3] [--duration 10]
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import statistics
import sys
import time
from pathlib import Path

from foundation_healthz import wrk
from harness import Option, bench_env, echoops_serve, main, percentile, write_ndjson

TARGET_P99_MS = 20.0
TARGET_RATIO = 0.5
DAYS = 30
KEY = "bench-key-0123456789abcdef"
ACCEPT = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
    "text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)


def fill(log_dir: Path, env: dict[str, str], per_minute: int, end: float) -> str:
    """30 days of every control's state ending at `end`; a line saying what was made."""
    import random

    from echoops.core import costs, pager, scale, slo
    from echoops.core.clock import iso
    from echoops.core.config import load_settings
    from echoops.core.scheduler import runner

    s = load_settings(env)
    rng = random.Random(16)
    minutes = DAYS * 1440
    start = end - minutes * 60
    write_ndjson(
        log_dir / "requests.ndjson",
        (
            {
                "ts": iso(start + m * 60 + j * 60 / per_minute),
                "status": 500 if rng.random() < 0.004 else 200,
                "latency_ms": round(rng.lognormvariate(4.8, 0.6), 1),
            }
            for m in range(minutes)
            for j in range(per_minute)
        ),
    )
    slo.tick(s=s, now=end)
    severities = ("CRITICAL", "WARNING", "INFO", "ERROR", "WARNING", "INFO")
    for i in range(minutes // 10):
        t = start + i * 600
        pager.raise_incident(severities[i % 6], f"check {i % 97} failed", f"svc{i % 7}", s=s, now=t)
    write_ndjson(
        log_dir / "queue.ndjson",
        (
            {"ts": iso(start + m * 60), "depth": 20 + m % 50, "workers": 2, "arrivals": 30, "completed": 30}
            for m in range(minutes)
        ),
    )
    scale.ingest(s=s, now=end - 86400)
    for k in range(144):
        scale.tick(s=s, now=end - 86400 + (k + 1) * 600)
    write_ndjson(
        log_dir / "ai_usage.ndjson",
        (
            {
                "ts": iso(start + m * 60),
                "model": ("gpt-4o-mini", "gpt-4o", "text-embedding-3-small")[m % 3],
                "input_tokens": 800,
                "output_tokens": 90,
            }
            for m in range(minutes)
        ),
    )
    costs.tick(s=s, now=end)
    py = shlex.quote(sys.executable)
    Path(s.schedule_file).write_text(
        "".join(
            f"*/15 * * * * {py} -c pass  # name={name}\n"
            for name in ("slo tick", "page run", "costs tick", "scale tick")
        )
    )
    for name in ("slo tick", "page run", "costs tick", "scale tick"):
        runner.run_once(name, s=s, now=end)
    incidents = pager.db(s).execute("SELECT count(*) FROM pager_incidents").fetchone()[0]
    return (
        f"{minutes * per_minute:,} request lines, {incidents:,} incidents, {minutes:,} queue samples, "
        "144 scale ticks, 4 jobs"
    )


def measure(args: argparse.Namespace, tmp: Path) -> bool:
    import httpx

    from echoops.core import metrics
    from echoops.core.config import load_settings

    if not shutil.which("wrk"):
        raise SystemExit("wrk not found (Debian: apt-get install wrk)")
    log_dir = tmp / "logs"
    log_dir.mkdir()
    env = bench_env(log_dir, DASHBOARD_KEY=KEY, ECHOOPS_SCHEDULE=str(tmp / "schedule.cron"))
    end = (time.time() // 60) * 60
    t0 = time.perf_counter()
    made = fill(log_dir, env, args.per_minute, end)
    print(f"state: {made} ({DAYS} days, built in {time.perf_counter() - t0:.0f} s)")

    s = load_settings(env)
    body, _ = metrics.exposition(ACCEPT, s=s)
    samples = sum(1 for line in body.splitlines() if line and not line.startswith(b"#"))
    reads = []
    for _ in range(args.reads):
        t0 = time.perf_counter()
        metrics.exposition(ACCEPT, s=s)
        reads.append((time.perf_counter() - t0) * 1000)
    print(
        f"read in process (no reuse): p50 {percentile(reads, 0.5):.2f} ms, p99 {percentile(reads, 0.99):.2f} ms "
        f"over {args.reads}; {len(body):,} bytes, {samples} samples"
    )

    headers = {"Authorization": f"Bearer {KEY}", "Accept": ACCEPT}
    with echoops_serve(env) as server, httpx.Client(base_url=server.url) as http:
        for _ in range(20):
            assert http.get("/metrics", headers=headers).status_code == 200
        scrapes, health = [], []
        for _ in range(args.scrapes):
            time.sleep(1.05)  # past the 1 s reuse: every scrape reads the state
            t0 = time.perf_counter()
            r = http.get("/metrics", headers=headers)
            scrapes.append((time.perf_counter() - t0) * 1000)
            assert r.status_code == 200 and r.text.endswith("# EOF\n")
            t0 = time.perf_counter()
            assert http.get("/healthz").status_code == 200
            health.append((time.perf_counter() - t0) * 1000)
        p99 = percentile(scrapes, 0.99)
        latency_ok = p99 < TARGET_P99_MS
        print(
            f"GET /metrics, each a fresh read: p50 {percentile(scrapes, 0.5):.2f} ms, p99 {p99:.2f} ms, max "
            f"{max(scrapes):.2f} ms over {args.scrapes} (GET /healthz p50 {percentile(health, 0.5):.2f} ms, "
            f"p99 {percentile(health, 0.99):.2f} ms): {'PASS' if latency_ok else 'FAIL'} "
            f"(target p99 < {TARGET_P99_MS:g} ms)"
        )

        metrics_url, health_url = server.url + "/metrics", server.url + "/healthz"
        wrk(health_url, 2)
        wrk(metrics_url, 2, headers)
        rates: dict[str, list[float]] = {"metrics": [], "healthz": []}
        errors = 0
        for _ in range(args.rounds):
            for name, url, extra in (("healthz", health_url, {}), ("metrics", metrics_url, headers)):
                rps, _, errs = wrk(url, args.duration, extra)
                rates[name].append(rps)
                errors += errs
    ratio = statistics.median(rates["metrics"]) / statistics.median(rates["healthz"])
    rate_ok = ratio >= TARGET_RATIO and errors == 0
    print(
        f"wrk -t2 -c16 -d{args.duration}s, {args.rounds} alternating rounds: GET /metrics "
        f"{', '.join(f'{x:,.0f}' for x in rates['metrics'])} req/s, GET /healthz "
        f"{', '.join(f'{x:,.0f}' for x in rates['healthz'])} req/s, {errors} errors: "
        f"{'PASS' if rate_ok else 'FAIL'}: /metrics at {ratio:.2f}x /healthz (target >= {TARGET_RATIO}x)"
    )
    return latency_ok and rate_ok


if __name__ == "__main__":
    sys.exit(
        main(
            __doc__,
            measure,
            Option("--per-minute", 40),
            Option("--reads", 200),
            Option("--scrapes", 60),
            Option("--rounds", 3),
            Option("--duration", 10),
            tmp_prefix="metrics",
        )
    )
