#!/usr/bin/env python3
"""echoops on PostgreSQL (issue 19): pager raise over HTTP and SLO ingest from two hosts at once,
each against its SQLite baseline measured in the same run.

1. Pager raise: `--requests` POST /api/incidents/raise from `--clients` concurrent clients
   (the mix of bench/pager_raise_http.py: new incidents and repeats) against `echoops serve
   --workers 2` with ECHOOPS_DB_URL on Debian's PostgreSQL (a throwaway server on a free
   port: tests/postgres_server.py); every raise must be stored once (the store's count sum)
   and written once to incidents.ndjson. Baseline: the same load on the SQLite store.
   Target: p99 < 100 ms, 0 errors.
2. SLO ingest: two hosts (two processes, each its own ECHOOPS_INSTANCE and log dir with
   `--lines` request lines, the generator of bench/slo_ingest.py) ingest into one PostgreSQL
   database at the same time; lines/s per host is its lines over its in-process ingest time.
   Baselines: one host alone on PostgreSQL, and one host on SQLite. Target: >= 500k lines/s
   per host with two at once.

    .venv/bin/python bench/multi_host.py [--requests 1000] [--clients 16] [--lines 1000000]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import orjson
from harness import ROOT, Option, bench_env, echoops_serve, main, percentile
from pager_raise_http import KEY, load, raise_body, report
from slo_ingest import END, generate

TARGET_P99_MS = 100.0
TARGET_LINES_S = 500_000

# One host's ingest, timed in process (the interpreter's start-up is not the ingest's).
INGEST = r"""
import json, sys, time
from echoops.core import ndjson, slo, store
from echoops.core.config import settings
from echoops.core.slo import aggregates
s = settings()
store.db(s, aggregates.SCHEMA, ndjson.SCHEMA)  # the schemas and the connection, outside the timing
start = time.perf_counter()
got = slo.ingest(s=s, now=float(sys.argv[1]))
print(json.dumps({"lines": got["lines"], "s": time.perf_counter() - start, "instance": s.instance}))
"""


def raise_run(args: argparse.Namespace, log_dir: Path, **env: str) -> tuple[list[float], list[str], float, int]:
    log_dir.mkdir()
    with echoops_serve(bench_env(log_dir, DASHBOARD_KEY=KEY, **env), args.workers) as server:
        load(server.url, 50, 4, raise_body)  # warm-up: schema, pool, connections (counted in the totals)
        start = time.perf_counter()
        lat, errors = load(server.url, args.requests, args.clients, lambda i: raise_body(i + 50))
        wall = time.perf_counter() - start
    lines = [orjson.loads(x) for x in (log_dir / "incidents.ndjson").read_bytes().splitlines()]
    return lat, errors, wall, sum(1 for x in lines if x["event"] == "incident")


def stored_count(url: str | None, log_dir: Path) -> tuple[int, int]:
    if url:
        import psycopg

        with psycopg.connect(url) as conn:
            row = conn.execute("SELECT sum(count), count(*) FROM pager_incidents").fetchone()
    else:
        import sqlite3

        db = sqlite3.connect(log_dir / "echoops.db")
        row = db.execute("SELECT sum(count), count(*) FROM pager_incidents").fetchone()
        db.close()
    assert row is not None
    return int(row[0]), int(row[1])


def ingest_hosts(hosts: list[tuple[str, Path]], url: str | None) -> list[dict]:
    """Run each host's ingest in its own process, all at once; their JSON results."""
    procs = []
    for instance, log_dir in hosts:
        env = bench_env(log_dir, ECHOOPS_INSTANCE=instance, **({"ECHOOPS_DB_URL": url} if url else {}))
        procs.append(
            subprocess.Popen(
                [sys.executable, "-c", INGEST, str(END + 60)], env=env, cwd=ROOT, stdout=subprocess.PIPE, text=True
            )
        )
    out = []
    for proc in procs:
        stdout, _ = proc.communicate(timeout=900)
        assert proc.returncode == 0, f"ingest failed ({proc.returncode})"
        out.append(json.loads(stdout.strip().splitlines()[-1]))
    return out


def host_dir(tmp: Path, name: str, source: Path) -> Path:
    d = tmp / name
    d.mkdir()
    os.link(source, d / "requests.ndjson")  # the same lines on every host (each its own cursor)
    return d


def measure(args: argparse.Namespace, tmp: Path) -> bool:
    from tests.postgres_server import start_server

    server = start_server()
    ok = True
    try:
        print(f"PostgreSQL {server.bin.parent.name} on 127.0.0.1:{server.port} (fsync=off, throwaway)")
        # --- 1. pager raise over HTTP ------------------------------------------------------------
        base, base_err, base_wall, base_lines = raise_run(args, tmp / "raise-sqlite")
        report("baseline POST /api/incidents/raise on SQLite", base, base_err, base_wall)
        url = server.new_database()
        lat, errors, wall, lines = raise_run(args, tmp / "raise-pg", ECHOOPS_DB_URL=url, ECHOOPS_INSTANCE="bench-a")
        report("POST /api/incidents/raise on PostgreSQL", lat, errors, wall)
        total = args.requests + 50
        pg_sum, pg_incidents = stored_count(url, tmp / "raise-pg")
        sq_sum, _ = stored_count(None, tmp / "raise-sqlite")
        print(
            f"stored once: PostgreSQL count sum {pg_sum} in {pg_incidents} incidents, {lines} incident lines; "
            f"SQLite count sum {sq_sum}, {base_lines} lines (want {total} each)"
        )
        raise_ok = not errors and pg_sum == total and lines == total and percentile(lat, 0.99) < TARGET_P99_MS
        print(f"raise: {'PASS' if raise_ok else 'FAIL'} (p99 {percentile(lat, 0.99):.1f} ms, target < 100 ms)")
        ok &= raise_ok
        # --- 2. SLO ingest from two hosts at once --------------------------------------------------
        source = tmp / "requests.ndjson"
        generate(source, args.lines)
        size_mb = source.stat().st_size / 1e6
        print(f"request log: {args.lines:,} lines, {size_mb:.0f} MB per host")
        [sq] = ingest_hosts([("solo", host_dir(tmp, "sqlite-solo", source))], None)
        print(f"baseline SQLite, one host: {sq['lines']:,} lines in {sq['s']:.2f} s = {sq['lines'] / sq['s']:,.0f}/s")
        url = server.new_database()
        [alone] = ingest_hosts([("pg-alone", host_dir(tmp, "pg-alone", source))], url)
        print(
            f"baseline PostgreSQL, one host: {alone['lines']:,} lines in {alone['s']:.2f} s = "
            f"{alone['lines'] / alone['s']:,.0f}/s"
        )
        url = server.new_database()
        both = ingest_hosts(
            [("host-a", host_dir(tmp, "host-a", source)), ("host-b", host_dir(tmp, "host-b", source))], url
        )
        rates = []
        for r in both:
            rates.append(r["lines"] / r["s"])
            print(
                f"PostgreSQL, two hosts at once: {r['instance']} {r['lines']:,} lines in {r['s']:.2f} s = "
                f"{rates[-1]:,.0f}/s"
            )
        import psycopg

        with psycopg.connect(url) as conn:
            merged = conn.execute("SELECT sum(total) FROM slo_minute").fetchone()
        stored = int(merged[0]) if merged and merged[0] is not None else 0
        print(f"merged in the database: {stored:,} requests (want {2 * args.lines:,})")
        ingest_ok = stored == 2 * args.lines and all(r >= TARGET_LINES_S for r in rates)
        print(f"ingest: {'PASS' if ingest_ok else 'FAIL'} (per host, target >= {TARGET_LINES_S:,}/s)")
        ok &= ingest_ok
    finally:
        server.stop()
        import shutil

        shutil.rmtree(server.data.parent, ignore_errors=True)
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
            Option("--lines", 1_000_000),
            tmp_prefix="multihost",
        )
    )
