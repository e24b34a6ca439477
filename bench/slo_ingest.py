#!/usr/bin/env python3
"""SLO ingest throughput vs a naive json.loads + sorted-list baseline, and peak RSS (issue 4).

Writes a realistic requests.ndjson (ISO `...Z` timestamps, method/path/status/latency_ms,
log-normal latencies, ~1% 5xx, ~700 requests a minute), then in the same run times:

- baseline: `json.loads` per line, latencies appended to per-minute lists, p95/p99 of the
  period from one sorted list (what a first script would do);
- echoops: `aggregates.ingest` (ndjson.Reader cursor, per-minute rows + sketches + hour
  rollups written to SQLite in one transaction), wall and CPU time;
- DuckDB `read_ndjson` on the same file, when duckdb is importable (reference only).

`--rss-lines N` (default 5M) also runs the ingest of an N-line file in a child process and
reports its peak RSS (ru_maxrss), which must stay under 150 MB.

    .venv/bin/python bench/slo_ingest.py [--lines 1000000] [--rss-lines 5000000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness import ROOT, Option, main

TARGET_LINES_S = 750_000
TARGET_SPEEDUP = 3.0
TARGET_RSS_MB = 150
END = 1795780800.0  # 2026-11-27T12:00:00Z
PATHS = ("/api/items", "/api/items/{id}", "/api/login", "/healthz", "/api/search")


def generate(path: Path, lines: int, per_minute: int = 700, seed: int = 7) -> None:
    """`lines` request lines ending at END, `per_minute` a minute, written in 1 MB blocks."""
    from echoops.core.clock import iso

    rng = random.Random(seed)
    minutes = math.ceil(lines / per_minute)
    start = END - minutes * 60
    written = 0
    with open(path, "wb") as fh:
        block: list[str] = []
        for m in range(minutes):
            prefix = iso(start + m * 60)[:17]
            n = min(per_minute, lines - written)
            for i in range(n):
                ms = i * 59_000 // max(1, n)
                lat = round(rng.lognormvariate(4.7, 0.72), 1)
                r = rng.random()
                status = 503 if r < 0.01 else (404 if r < 0.02 else 200)
                block.append(
                    f'{{"ts":"{prefix}{ms // 1000:02d}.{ms % 1000:03d}Z","method":"GET",'
                    f'"path":"{PATHS[i % 5]}","status":{status},"latency_ms":{lat}}}\n'
                )
            written += n
            if len(block) > 20_000:
                fh.write("".join(block).encode())
                block = []
        fh.write("".join(block).encode())


def baseline(path: Path, target_ms: float = 800.0) -> dict:
    """The naive way: json.loads per line, per-minute lists, one sorted list for p95/p99."""
    from datetime import datetime

    t0 = time.perf_counter()
    c0 = time.process_time()
    per_minute: dict[int, list[float]] = {}
    errors = slow = total = bad = 0
    with open(path, "rb") as fh:
        for raw in fh:
            try:
                obj = json.loads(raw)
                ts = datetime.fromisoformat(obj["ts"]).timestamp()
                lat = float(obj["latency_ms"])
                status = int(obj["status"])
            except (ValueError, KeyError, TypeError):
                bad += 1
                continue
            per_minute.setdefault(int(ts // 60), []).append(lat)
            total += 1
            errors += status >= 500
            slow += lat > target_ms
    everything = sorted(x for lats in per_minute.values() for x in lats)
    n = len(everything)
    p95 = everything[int(math.floor(0.95 * (n - 1)))]
    p99 = everything[int(math.floor(0.99 * (n - 1)))]
    return {
        "wall_s": time.perf_counter() - t0,
        "cpu_s": time.process_time() - c0,
        "total": total,
        "errors": errors,
        "slow": slow,
        "p95": p95,
        "p99": p99,
    }


def echoops_ingest(path: Path) -> dict:
    """aggregates.ingest into a fresh log dir holding `path` as requests.ndjson."""
    from echoops.core import store
    from echoops.core.config import load_settings
    from echoops.core.slo import aggregates, sketch

    d = Path(tempfile.mkdtemp(prefix="echoops-bench-slo-"))
    try:
        target = d / "requests.ndjson"
        try:
            os.link(path, target)
        except OSError:
            shutil.copy(path, target)
        s = load_settings({"ECHOOPS_LOG_DIR": str(d)})
        aggregates.db(s)  # schema first: not part of the ingest
        t0 = time.perf_counter()
        c0 = time.process_time()
        report = aggregates.ingest(s, now=END)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        conn = aggregates.db(s)
        total, errors, slow = conn.execute("SELECT sum(total), sum(errors), sum(slow) FROM slo_minute").fetchone()
        acc = sketch.dense()
        for (blob,) in conn.execute("SELECT sketch FROM slo_hour"):
            sketch.merge_into(acc, blob)
        p95, p99 = sketch.quantiles(acc, (0.95, 0.99))
        minutes = conn.execute("SELECT count(*) FROM slo_minute").fetchone()[0]
        db_mb = sum(os.path.getsize(p) for p in d.glob("echoops.db*")) / 1e6
        store.close_all()
        return {
            "wall_s": wall,
            "cpu_s": cpu,
            "lines": report["lines"],
            "bad": report["bad"],
            "total": total,
            "errors": errors,
            "slow": slow,
            "p95": p95,
            "p99": p99,
            "minutes": minutes,
            "db_mb": db_mb,
        }
    finally:
        shutil.rmtree(d, ignore_errors=True)


def duckdb_reference(path: Path) -> str:
    try:
        import duckdb
    except ImportError:
        return "duckdb not installed: no reference figure"

    t0 = time.perf_counter()
    row = (
        duckdb.connect()
        .execute(
            f"SELECT count(*), sum((status >= 500)::INT), quantile_disc(latency_ms, 0.95) "
            f"FROM read_ndjson('{path}', columns={{ts:'VARCHAR',status:'INTEGER',latency_ms:'DOUBLE'}})"
        )
        .fetchone()
    )
    return f"duckdb read_ndjson: {time.perf_counter() - t0:.3f} s for {row[0]} rows (p95 {row[2]})"


def rss_child(lines: int, workdir: Path) -> dict:
    """Generate then ingest `lines` lines in a child process; its peak RSS during the ingest."""
    src = workdir / "requests_rss.ndjson"
    generate(src, lines)
    code = (
        "import sys, resource, time; sys.path.insert(0, sys.argv[1]);"
        "from echoops.core.slo import aggregates; from echoops.core.config import load_settings;"
        "s = load_settings({'ECHOOPS_LOG_DIR': sys.argv[2]}); t = time.perf_counter();"
        "r = aggregates.ingest(s, now=float(sys.argv[3]));"
        "print(r['lines'], time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
    )
    logdir = workdir / "rss"
    logdir.mkdir()
    os.replace(src, logdir / "requests.ndjson")
    out = subprocess.run(
        [sys.executable, "-c", code, str(ROOT), str(logdir), str(END)], check=True, capture_output=True, text=True
    ).stdout.split()
    return {"lines": int(out[0]), "wall_s": float(out[1]), "peak_rss_mb": int(out[2]) / 1024}


def measure(args: argparse.Namespace, work: Path) -> bool:
    ok = True
    src = work / "requests.ndjson"
    t0 = time.perf_counter()
    generate(src, args.lines)
    size_mb = src.stat().st_size / 1e6
    print(f"generated {args.lines} lines ({size_mb:.1f} MB) in {time.perf_counter() - t0:.1f} s")
    bases = [baseline(src) for _ in range(args.repeat)]
    ours = [echoops_ingest(src) for _ in range(args.repeat)]
    b = min(bases, key=lambda r: r["cpu_s"])
    o = min(ours, key=lambda r: r["cpu_s"])
    assert o["total"] == b["total"] and o["errors"] == b["errors"] and o["slow"] == b["slow"], (o, b)
    assert abs(o["p95"] - b["p95"]) <= 0.01 * b["p95"] and abs(o["p99"] - b["p99"]) <= 0.01 * b["p99"]
    for name, r in (("baseline json.loads + sorted list", b), ("echoops slo ingest", o)):
        print(
            f"{name:36s} wall {r['wall_s']:.3f} s ({args.lines / r['wall_s']:>9,.0f} lines/s)  "
            f"cpu {r['cpu_s']:.3f} s ({args.lines / r['cpu_s']:>9,.0f} lines/s)  "
            f"p95 {r['p95']:.1f} p99 {r['p99']:.1f}"
        )
    rate = args.lines / o["cpu_s"]
    speedup = b["cpu_s"] / o["cpu_s"]
    print(f"echoops: {o['minutes']} minute rows, db {o['db_mb']:.1f} MB; speedup vs baseline {speedup:.2f}x (cpu)")
    walls = [round(r["wall_s"], 3) for r in bases], [round(r["wall_s"], 3) for r in ours]
    print(f"all wall runs: baseline {walls[0]}, echoops {walls[1]}")
    print(duckdb_reference(src))
    verdict = rate >= TARGET_LINES_S and speedup >= TARGET_SPEEDUP
    ok = ok and verdict
    print(f"ingest target >= {TARGET_LINES_S:,} lines/s and >= {TARGET_SPEEDUP}x: {'PASS' if verdict else 'FAIL'}")
    if args.rss_lines:
        m = rss_child(args.rss_lines, work)
        fits = m["peak_rss_mb"] < TARGET_RSS_MB
        ok = ok and fits
        print(
            f"{m['lines']} lines in a child: {m['wall_s']:.1f} s, peak RSS {m['peak_rss_mb']:.1f} MB "
            f"(target < {TARGET_RSS_MB} MB): {'PASS' if fits else 'FAIL'}"
        )
    return ok


if __name__ == "__main__":
    sys.exit(
        main(
            __doc__,
            measure,
            Option("--lines", 1_000_000),
            Option("--rss-lines", 5_000_000, "0 skips the memory run"),
            Option("--repeat", 3, "best of N for both sides"),
            tmp_prefix="slo-data",
        )
    )
