#!/usr/bin/env python3
"""Bench: `echoops scale sample` against a real redis-server (the scheduler runs it every minute).

Target (issue 18): < 150 ms wall per run with Redis. Measured for the `redis` source (three
list keys) and the `rq` source (a queue of `--jobs` waiting jobs, `--done` ids in its finished
registry, `--workers` registered RQ workers), each:
- in process: `scale.sample()` per call (connect, read, append the line, store the state),
  median and p95 of `--calls` calls after one warm-up, the Python process already running;
- whole process: `python -m echoops scale sample`, median of `--runs`, next to the same run's
  start-up baseline `python -m echoops scale --help` (what any per-minute job costs).

Usage: .venv/bin/python bench/scale_sample.py [--calls 200] [--runs 10] [--jobs 5000] [--done 5000] [--workers 8]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

from harness import PYTHON_M_ECHOOPS, Option, bench_env, main, percentile, process_wall

from tests.redis_server import start


def measure(args: argparse.Namespace, tmp: Path) -> bool:
    import rq
    from rq.job import Job
    from rq.registry import FinishedJobRegistry
    from rq.worker import Worker

    (tmp / "redis").mkdir()
    server = start(tmp / "redis")
    try:
        r = server.client()
        r.rpush("jobs:a", *[b"x"] * 1000)
        r.rpush("jobs:b", *[b"y"] * 200)
        q = rq.Queue("bench", connection=r)
        q.enqueue_many([rq.Queue.prepare_data("tests.rq_jobs.work", (0.0,)) for _ in range(args.jobs)])
        finished = FinishedJobRegistry(queue=q)
        with r.pipeline() as pipe:
            for i in range(args.done):
                finished.add(Job.create("tests.rq_jobs.work", connection=r, id=f"done{i}"), ttl=3600, pipeline=pipe)
            pipe.execute()
        workers = [Worker([q], connection=r, name=f"bench-{i}") for i in range(args.workers)]
        for w in workers:
            w.register_birth()
        sources = {
            "redis": {"SCALE_QUEUE_SOURCE": "redis", "SCALE_REDIS_KEYS": "jobs:a,jobs:b,jobs:c"},
            "rq": {"SCALE_QUEUE_SOURCE": "rq", "SCALE_QUEUES": "bench"},
        }
        results = {}
        for name, extra in sources.items():
            log_dir = tmp / f"logs-{name}"
            log_dir.mkdir()
            env = bench_env(log_dir, SCALE_REDIS_URL=server.url, **extra)
            in_proc = _in_process(env, args.calls)
            startup = [process_wall([*PYTHON_M_ECHOOPS, "scale", "--help"], env) for _ in range(args.runs)]
            whole = [process_wall([*PYTHON_M_ECHOOPS, "scale", "sample"], env) for _ in range(args.runs)]
            results[name] = (in_proc, statistics.median(startup), statistics.median(whole))
    finally:
        server.stop()
    print(
        f"redis-server 127.0.0.1 (Debian), rq queue: {args.jobs} waiting, {args.done} finished ids, "
        f"{args.workers} workers; redis source: 3 keys"
    )
    ok = True
    for name, (calls, startup, whole) in results.items():
        med, p95 = statistics.median(calls), percentile(calls, 95)
        print(
            f"  {name:<5} in process: median {med * 1000:.1f} ms, p95 {p95 * 1000:.1f} ms ({len(calls)} calls); "
            f"whole process: median {whole * 1000:.0f} ms (start-up baseline `scale --help` {startup * 1000:.0f} ms, "
            f"sample's own share {max(0.0, whole - startup) * 1000:.0f} ms)"
        )
        ok = ok and p95 < 0.150
    print("target < 150 ms per run (in process, p95):", "met" if ok else "MISSED")
    return ok


def _in_process(env: dict[str, str], calls: int) -> list[float]:
    from echoops.core import config, scale, store

    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        store.close_all()
        s = config.load_settings()
        t0 = time.time()
        scale.sample(s=s, now=t0)  # warm-up: imports redis/rq, creates the tables
        out = []
        for i in range(calls):
            t = time.perf_counter()
            scale.sample(s=s, now=t0 + 60 * (i + 1))
            out.append(time.perf_counter() - t)
        return out
    finally:
        store.close_all()
        os.environ.clear()
        os.environ.update(saved)


if __name__ == "__main__":
    sys.exit(
        main(
            __doc__,
            measure,
            Option("--calls", 200),
            Option("--runs", 10),
            Option("--jobs", 5000),
            Option("--done", 5000),
            Option("--workers", 8),
            tmp_prefix="scale-sample",
        )
    )
