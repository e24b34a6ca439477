#!/usr/bin/env python3
"""1,000 POST /api/incidents/raise from 16 concurrent clients against `echoops serve --workers 2`:
errors, p50/p99 latency against the 100 ms p99 target, and that every raise was recorded once
(issue 3).

The raises mix new CRITICAL incidents (distinct sources, so each enqueues its pages) with
repeats of a few fingerprints (the dedup path). Afterwards it checks incidents.ndjson holds
exactly one `incident` line per request and the store's counts add up to the requests.
Baseline in the same run: the same load on GET /healthz (the shim without the pager).

    .venv/bin/python bench/pager_raise_http.py [--requests 1000] [--clients 16] [--workers 2]
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import sys
import threading
import time
from pathlib import Path

import httpx
import orjson
from harness import Option, bench_env, echoops_serve, main, percentile

TARGET_P99_MS = 100.0
KEY = "bench-dash-key-0123456789abcdef"


def load(url: str, n: int, clients: int, make) -> tuple[list[float], list[str]]:
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    counter = iter(range(n))

    def client() -> None:
        with httpx.Client(base_url=url, headers={"X-Dash-Key": KEY}, timeout=10) as c:
            while True:
                with lock:
                    i = next(counter, None)
                if i is None:
                    return
                method, path, body = make(i)
                start = time.perf_counter()
                try:
                    r = c.request(method, path, json=body)
                    ok = r.status_code == 200
                except httpx.HTTPError as exc:
                    ok, r = False, exc
                elapsed = (time.perf_counter() - start) * 1000
                with lock:
                    latencies.append(elapsed)
                    if not ok:
                        errors.append(str(getattr(r, "status_code", r)))

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return latencies, errors


def raise_body(i: int) -> tuple[str, str, dict]:
    if i % 4 == 3:  # a repeat: one of five recurring problems
        return (
            "POST",
            "/api/incidents/raise",
            {"severity": "CRITICAL", "msg": f"db timeout after {i}ms", "source": f"db{i % 5}"},
        )
    return (
        "POST",
        "/api/incidents/raise",
        {"severity": "CRITICAL", "msg": "checkout failing", "source": f"bench-{i}", "meta": {"i": i}},
    )


def report(name: str, lat: list[float], errors: list[str], wall: float) -> None:
    print(
        f"{name}: {len(lat)} requests in {wall:.2f} s ({len(lat) / wall:.0f}/s), errors {len(errors)}, "
        f"p50 {statistics.median(lat):.1f} ms, p95 {percentile(lat, 0.95):.1f} ms, "
        f"p99 {percentile(lat, 0.99):.1f} ms, max {max(lat):.1f} ms"
    )


def measure(args: argparse.Namespace, tmp: Path) -> bool:
    log_dir = tmp / "logs"
    log_dir.mkdir()
    with echoops_serve(bench_env(log_dir, DASHBOARD_KEY=KEY), args.workers) as server:
        load(server.url, 50, 4, raise_body)  # warm-up: schema, connections (not counted below)
        start = time.perf_counter()
        base, base_err = load(server.url, args.requests, args.clients, lambda _: ("GET", "/healthz", None))
        report("baseline GET /healthz", base, base_err, time.perf_counter() - start)
        start = time.perf_counter()
        lat, errors = load(server.url, args.requests, args.clients, lambda i: raise_body(i + 50))
        report("POST /api/incidents/raise", lat, errors, time.perf_counter() - start)
    lines = [orjson.loads(x) for x in (log_dir / "incidents.ndjson").read_bytes().splitlines()]
    incident_lines = sum(1 for x in lines if x["event"] == "incident")
    db = sqlite3.connect(log_dir / "echoops.db")
    stored = db.execute("SELECT sum(count), count(*) FROM pager_incidents").fetchone()
    db.close()
    total = args.requests + 50
    print(
        f"recorded: {incident_lines} incident lines, store count sum {stored[0]} "
        f"in {stored[1]} incidents (want {total})"
    )
    ok = not errors and incident_lines == total and stored[0] == total and percentile(lat, 0.99) < TARGET_P99_MS
    print("PASS" if ok else "FAIL")
    return ok


if __name__ == "__main__":
    sys.exit(
        main(
            __doc__,
            measure,
            Option("--requests", 1000),
            Option("--clients", 16),
            Option("--workers", 2),
            tmp_prefix="raise",
        )
    )
