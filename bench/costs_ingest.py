#!/usr/bin/env python3
"""Ingest of AI usage lines by `costs.tick()`: lines per second against the 500k/s target (issue 6).

Writes --lines lines of ai_usage.ndjson (ISO `Z` stamps over the day, four models, ~5% in the
`usd` form, as an app writes them), then times one `costs.tick()` that ingests them all
(parse, day bucket, price, store, cursor, state file, alerts). Baseline in the same run: the
bare `ndjson.Reader` pass over the same file (orjson parse only, no cost logic). Best of --repeat
fresh log dirs.

    .venv/bin/python bench/costs_ingest.py [--lines 1000000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from harness import Option, bench_env, main, write_ndjson

TARGET = 500_000


def usage_lines(n: int, day0: float) -> Iterator[dict]:
    models = ("gpt-4o-mini", "gpt-4o", "text-embedding-3-small", "gpt-4o-mini-2024-07-18")
    for i in range(n):
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(day0 + (i * 43200) // n)) + f".{i % 1000:03d}Z"
        if i % 20 == 0:
            yield {"ts": ts, "model": models[i & 3], "usd": 0.0012}
        else:
            yield {"ts": ts, "model": models[i & 3], "input_tokens": 800 + i % 400, "output_tokens": 90 + i % 50}


def measure(args: argparse.Namespace, work: Path) -> bool:
    from echoops.core import costs, ndjson, store
    from echoops.core.config import load_settings

    now = time.time()
    day0 = now - now % 86400
    now = day0 + 43200 + 60  # just after the last line: none is dated in the future
    src = work / "ai_usage.ndjson"
    size = write_ndjson(src, usage_lines(args.lines, day0))
    print(f"{args.lines} lines, {size / 1e6:.1f} MB")
    best_reader = best_tick = float("inf")
    for run in range(args.repeat):
        log_dir = work / f"logs{run}"
        log_dir.mkdir()
        shutil.copy(src, log_dir / "ai_usage.ndjson")
        s = load_settings(bench_env(log_dir))
        conn = store.db(s, costs.SCHEMA)
        t0 = time.perf_counter()
        with store.transaction(conn):  # the cursor is never committed: this pass moves nothing
            reader = ndjson.Reader(conn, log_dir / "ai_usage.ndjson", "baseline")
            n = sum(len(batch) for batch in reader.batches())
        best_reader = min(best_reader, time.perf_counter() - t0)
        assert n == args.lines
        t0 = time.perf_counter()
        report = costs.tick(s=s, now=now)
        best_tick = min(best_tick, time.perf_counter() - t0)
        assert report["calls"] == args.lines, report
        store.close_all()
        shutil.rmtree(log_dir)
    rate = args.lines / best_tick
    print(f"ndjson.Reader only (baseline): {best_reader:.3f} s, {args.lines / best_reader:,.0f} lines/s")
    print(f"costs.tick() ingest:           {best_tick:.3f} s, {rate:,.0f} lines/s")
    ok = rate >= TARGET
    print(f"target >= {TARGET:,} lines/s: {'PASS' if ok else 'FAIL'}")
    return ok


if __name__ == "__main__":
    sys.exit(main(__doc__, measure, Option("--lines", 1_000_000), Option("--repeat", 3), tmp_prefix="ingest"))
