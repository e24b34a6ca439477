#!/usr/bin/env python3
"""`echoops page run` with no new lines over ~1 GB of existing logs: wall time including
interpreter start, against the 0.5 s target (issue 3).

Generates --gb of NDJSON spread over --files input logs (request-like lines with a few
CRITICAL ones) in a temp dir outside the repo, runs `echoops page run` once to consume them
(the cold read, reported as the baseline: what re-reading would cost), then times --repeat
idle runs as separate processes. Baseline in the same run as well: `echoops --help` (the
bare CLI start-up). The temp dir is deleted at the end.

    .venv/bin/python bench/pager_run_idle.py [--gb 1.0] [--files 4] [--repeat 7]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import orjson
from harness import Option, bench_env, echoops_argv, main, process_wall

TARGET_S = 0.5


def generate(log_dir: Path, total_bytes: int, files: int) -> int:
    now = time.time() - 3600
    lines = []
    for i in range(2000):
        rec = {"ts": now + i, "status": 200 if i % 50 else 503, "latency_ms": 80 + i % 400, "path": "/api/items"}
        if i == 1000:
            rec = {"ts": now + i, "level": "CRITICAL", "msg": f"upstream timeout after {i % 60}s", "source": "web"}
        lines.append(orjson.dumps(rec) + b"\n")
    block = b"".join(lines)
    per_file = total_bytes // files
    written = 0
    for n in range(files):
        with open(log_dir / f"app{n}.ndjson", "wb") as fh:
            size = 0
            while size < per_file:
                fh.write(block)
                size += len(block)
            written += size
    return written


def measure(args: argparse.Namespace, tmp: Path) -> bool:
    log_dir = tmp / "logs"
    log_dir.mkdir()
    env = bench_env(log_dir)
    echoops = echoops_argv()
    size = generate(log_dir, int(args.gb * 1024**3), args.files)
    print(f"logs: {size / 1024**3:.2f} GiB in {args.files} files")
    cold = process_wall([*echoops, "page", "run"], env)
    print(f"cold page run (reads everything once): {cold:.2f} s")
    idle = [process_wall([*echoops, "page", "run"], env) for _ in range(args.repeat)]
    start = [process_wall([*echoops, "--help"], env) for _ in range(args.repeat)]
    med, worst = statistics.median(idle), max(idle)
    print(f"idle page run: median {med:.3f} s, max {worst:.3f} s over {args.repeat} runs (target < {TARGET_S} s)")
    print(f"baseline echoops --help: median {statistics.median(start):.3f} s")
    ok = worst < TARGET_S
    print(f"{'PASS' if ok else 'FAIL'}: slowest idle run {worst:.3f} s (target < {TARGET_S} s)")
    return ok


if __name__ == "__main__":
    sys.exit(
        main(__doc__, measure, Option("--gb", 1.0), Option("--files", 4), Option("--repeat", 7), tmp_prefix="pager")
    )
