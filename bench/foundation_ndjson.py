#!/usr/bin/env python3
"""NDJSON reader benchmark: the incremental Reader vs a bare orjson loop over the same file.

Target (issue 2): the Reader, cursor bookkeeping included (a store transaction, Reader,
iterate every object, commit the cursor), keeps >= 0.9x the lines/s of
`for line in f: orjson.loads(line)` over the same 1M-line requests-like file, same run,
best of --rounds each (runs interleaved: bare, reader, bare, reader, ...).

    .venv/bin/python bench/foundation_ndjson.py [--lines 1000000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
from harness import Option, bench_env, main, write_ndjson

from echoops.core import ndjson, store
from echoops.core.config import load_settings

TARGET = 0.9
PATHS = ["/api/chat", "/api/chat", "/api/search", "/login", "/api/users/42", "/static/app.js", "/healthz"]


def request_lines(lines: int, seed: int = 7) -> Iterator[dict]:
    """Request-log lines as DESIGN.md describes them (ts, status, latency_ms, extra fields)."""
    rng = random.Random(seed)
    start = 1_795_700_000.0
    for i in range(lines):
        ts = start + i * 0.25
        status = 500 if rng.random() < 0.01 else (404 if rng.random() < 0.02 else 200)
        yield {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts * 1000) % 1000:03d}Z",
            "method": "GET" if rng.random() < 0.8 else "POST",
            "path": rng.choice(PATHS),
            "status": status,
            "latency_ms": round(rng.lognormvariate(4.5, 0.6), 1),
            "bytes": rng.randint(200, 40_000),
        }


def bare(path: Path) -> int:
    n = 0
    loads = orjson.loads
    with open(path, "rb") as f:
        for line in f:
            loads(line)
            n += 1
    return n


def reader(conn, path: Path, consumer: str) -> int:
    n = 0
    with store.transaction(conn):
        r = ndjson.Reader(conn, path, consumer)
        for _obj in r:
            n += 1
        r.commit()
    return n


def reader_batches(conn, path: Path, consumer: str) -> int:
    n = 0
    with store.transaction(conn):
        r = ndjson.Reader(conn, path, consumer)
        for batch in r.batches():
            n += len(batch)
        r.commit()
    return n


def measure(args: argparse.Namespace, tmp: Path) -> bool:
    path = tmp / "requests.ndjson"
    t0 = time.perf_counter()
    size = write_ndjson(path, request_lines(args.lines))
    print(f"generated {args.lines:,} lines, {size / 1e6:.1f} MB in {time.perf_counter() - t0:.1f} s")
    conn = store.db(load_settings(bench_env(tmp)))
    bare(path)  # warm the page cache
    results: dict[str, list[float]] = {"bare": [], "reader": [], "batches": []}
    cpu: dict[str, list[float]] = {k: [] for k in results}
    for round_ in range(args.rounds):
        for name in results:
            t0, c0 = time.perf_counter(), time.process_time()
            if name == "bare":
                n = bare(path)
            elif name == "reader":
                n = reader(conn, path, f"bench-{round_}")
            else:
                n = reader_batches(conn, path, f"bench-batches-{round_}")
            elapsed, used = time.perf_counter() - t0, time.process_time() - c0
            assert n == args.lines, (name, n)
            results[name].append(elapsed)
            cpu[name].append(used)
    # cursor bookkeeping really happened: a second tick reads nothing
    assert reader(conn, path, "bench-0") == 0

    best = {k: min(v) for k, v in results.items()}
    rate = {k: args.lines / v for k, v in best.items()}
    best_cpu = {k: min(v) for k, v in cpu.items()}
    rate_cpu = {k: args.lines / v for k, v in best_cpu.items()}
    print(f"best of {args.rounds} (interleaved), {args.lines:,} lines\n")
    print("| loop | best wall s | lines/s (wall) | vs bare | best CPU s | lines/CPU-s | vs bare |")
    print("|---|---|---|---|---|---|---|")
    labels = {
        "bare": "`for line in f: orjson.loads(line)`",
        "reader": "Reader: transaction + iterate + commit",
        "batches": "Reader.batches(): transaction + iterate + commit",
    }
    for k in results:
        print(
            f"| {labels[k]} | {best[k]:.3f} | {rate[k]:,.0f} | {rate[k] / rate['bare']:.2f} "
            f"| {best_cpu[k]:.3f} | {rate_cpu[k]:,.0f} | {rate_cpu[k] / rate_cpu['bare']:.2f} |"
        )
    ratio = rate["reader"] / rate["bare"]
    ratio_cpu = rate_cpu["reader"] / rate_cpu["bare"]
    ok = ratio >= TARGET
    print(
        f"\n{'PASS' if ok else 'FAIL'}: Reader at {ratio:.2f}x the bare loop, wall clock "
        f"({ratio_cpu:.2f}x in CPU time; target >= {TARGET}x)"
    )
    return ok


if __name__ == "__main__":
    sys.exit(main(__doc__, measure, Option("--lines", 1_000_000), Option("--rounds", 3), tmp_prefix="ndjson"))
