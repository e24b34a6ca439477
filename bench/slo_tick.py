#!/usr/bin/env python3
"""SLO tick with no new data over 30 days of minute aggregates, and GET /api/slo/status (issue 4).

Fills a log dir with 43,200 minutes of requests (`--per-minute` lines each, ingested once),
then measures:

- `slo.tick()` in process with nothing new to read (target < 50 ms), against a naive
  recompute in the same run (SUM over every minute row per window + merging the 1,440
  minute sketches of the 24h period);
- the whole `python -m echoops slo tick` process, wall (target < 0.5 s), against
  `python -m echoops --help` (interpreter + CLI import floor);
- `GET /api/slo/status` on `echoops serve` (gunicorn, 2 workers), p50/p99 over sequential
  requests (target p99 < 20 ms), against `GET /healthz` on the same server.

    .venv/bin/python bench/slo_tick.py [--per-minute 40] [--ticks 30] [--requests 1000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

from harness import PYTHON_M_ECHOOPS, Option, bench_env, echoops_serve, main, percentile, process_wall

MINUTES = 43_200
TARGET_TICK_MS = 50.0
TARGET_PROCESS_S = 0.5
TARGET_P99_MS = 20.0


def naive_tick(s, now: float) -> float:
    """What a tick costs without hour rollups: every window summed from minute rows, 24h sketch from minutes."""
    from echoops.core.slo import aggregates, rules, sketch

    conn = aggregates.db(s)
    t0 = time.perf_counter()
    cur = aggregates.last_minute(now)
    for minutes in [*rules.WINDOWS.values(), s.slo_window_days * 1440]:
        conn.execute(
            "SELECT sum(total), sum(errors), sum(slow) FROM slo_minute WHERE minute BETWEEN ? AND ?",
            (cur - minutes + 1, cur),
        ).fetchone()
    acc = sketch.dense()
    for (blob,) in conn.execute("SELECT sketch FROM slo_minute_sketch WHERE minute BETWEEN ? AND ?", (cur - 1439, cur)):
        sketch.merge_into(acc, blob)
    sketch.quantiles(acc, (0.95, 0.99))
    return (time.perf_counter() - t0) * 1000


def verdict(fits: bool) -> str:
    return "PASS" if fits else "FAIL"


def measure(args: argparse.Namespace, work: Path) -> bool:
    import httpx
    from slo_ingest import END, generate

    from echoops.core import slo
    from echoops.core.config import load_settings
    from echoops.core.slo import aggregates

    generate(work / "requests.ndjson", MINUTES * args.per_minute, per_minute=args.per_minute)
    env = bench_env(work, DASHBOARD_KEY="bench-key-0123456789abcdef")
    s = load_settings(env)
    t0 = time.perf_counter()
    first = slo.tick(s=s, now=END)
    rows = aggregates.db(s).execute("SELECT count(*) FROM slo_minute").fetchone()[0]
    print(
        f"setup: {first['ingest']['lines']} lines into {rows} minute rows in {time.perf_counter() - t0:.1f} s; "
        f"state {first['status']['state']}, p95 {first['status']['p95_ms']} ms"
    )

    times = []
    for i in range(args.ticks):
        t0 = time.perf_counter()
        r = slo.tick(s=s, now=END + 1 + i)
        times.append((time.perf_counter() - t0) * 1000)
        assert r["ingest"]["lines"] == 0
    naive = [naive_tick(s, END + 1) for _ in range(5)]
    med = statistics.median(times)
    tick_ok = med < TARGET_TICK_MS
    print(
        f"tick, no new data, in process: median {med:.1f} ms, max {max(times):.1f} ms over {args.ticks} "
        f"(naive recompute: median {statistics.median(naive):.1f} ms): {verdict(tick_ok)}"
    )

    proc = [process_wall([*PYTHON_M_ECHOOPS, "slo", "tick", "--now", str(END + 100 + i)], env) for i in range(7)]
    floor = [process_wall([*PYTHON_M_ECHOOPS, "--help"], env) for _ in range(5)]
    med = statistics.median(proc)
    process_ok = med < TARGET_PROCESS_S
    print(
        f"`echoops slo tick` process wall: median {med:.3f} s, max {max(proc):.3f} s "
        f"(`echoops --help`: median {statistics.median(floor):.3f} s): {verdict(process_ok)}"
    )

    with (
        echoops_serve(env) as server,
        httpx.Client(base_url=server.url, headers={"X-Dash-Key": env["DASHBOARD_KEY"]}) as http,
    ):
        for _ in range(50):  # warm both workers
            http.get("/api/slo/status")

        def timed(path: str) -> list[float]:
            out = []
            for _ in range(args.requests):
                t0 = time.perf_counter()
                r = http.get(path)
                out.append((time.perf_counter() - t0) * 1000)
                assert r.status_code == 200
            return out

        status = timed("/api/slo/status")
        health = timed("/healthz")
        size = len(http.get("/api/slo/status").content)
    p99 = percentile(status, 0.99)
    http_ok = p99 < TARGET_P99_MS
    print(
        f"GET /api/slo/status ({size} bytes): p50 {percentile(status, 0.5):.2f} ms, p99 {p99:.2f} ms over "
        f"{args.requests} (GET /healthz p50 {percentile(health, 0.5):.2f} ms, "
        f"p99 {percentile(health, 0.99):.2f} ms): {verdict(http_ok)}"
    )
    return tick_ok and process_ok and http_ok


if __name__ == "__main__":
    sys.exit(
        main(
            __doc__,
            measure,
            Option("--per-minute", 40),
            Option("--ticks", 30),
            Option("--requests", 1000),
            tmp_prefix="slo-tick",
        )
    )
