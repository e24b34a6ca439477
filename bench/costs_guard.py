#!/usr/bin/env python3
"""guard(model) in process: p50/p99 per call against the 50 µs target (issue 6).

Sets up a log dir with a tick's cost_state.json (one model throttled with a fallback, one at
WARN), then times every call individually with perf_counter_ns, cycling through allow,
switch and throttle decisions, the way an app calls it (no `s`, reading ECHOOPS_LOG_DIR).
Baseline in the same run: an empty function call and a bare os.stat of the state file.

    .venv/bin/python bench/costs_guard.py [--calls 200000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import orjson
from harness import Option, bench_env, main, percentile

TARGET_P99_US = 50.0


def pct_us(values: list[int], q: float) -> float:
    return percentile(values, q) / 1000


def measure(args: argparse.Namespace, tmp: Path) -> bool:
    env = bench_env(
        tmp,
        MODEL_FALLBACKS_JSON='{"gpt-4o":"gpt-4o-mini"}',
        MODEL_CAPS_JSON='{"gpt-4o":5,"gpt-4o-mini":15,"embeddings":2}',
    )
    # guard() reads ECHOOPS_LOG_DIR from the process env, as in an app
    os.environ.clear()
    os.environ.update(env)
    from echoops.api import guard  # what an app calls
    from echoops.core import costs
    from echoops.core.costs.guardrail import STATE_FILE

    calls = args.calls

    now = time.time()
    lines = [
        {"ts": now - 5, "model": "gpt-4o", "usd": 6.0},  # over its cap: switch to gpt-4o-mini
        {"ts": now - 5, "model": "text-embedding-3-small", "usd": 2.5},  # over: throttle
        {"ts": now - 5, "model": "gpt-4o-mini", "usd": 13.6},  # 90.7%: warn, allow
    ]
    (tmp / "ai_usage.ndjson").write_bytes(b"".join(orjson.dumps(x) + b"\n" for x in lines))
    costs.tick(now=now)
    models = ["gpt-4o", "text-embedding-3-small", "gpt-4o-mini", "o3"]
    actions = sorted({guard(m)["action"] for m in models})
    path = tmp / STATE_FILE

    def noop(model):
        return model

    clock = time.perf_counter_ns
    runs: dict[str, list[int]] = {"noop()": [], "os.stat(state)": [], "guard(model)": []}
    for i in range(2000):  # warm up
        guard(models[i & 3])
    for i in range(calls):
        m = models[i & 3]
        t0 = clock()
        noop(m)
        t1 = clock()
        os.stat(path)
        t2 = clock()
        guard(m)
        t3 = clock()
        runs["noop()"].append(t1 - t0)
        runs["os.stat(state)"].append(t2 - t1)
        runs["guard(model)"].append(t3 - t2)
    print(f"{calls} calls, decisions seen: {', '.join(actions)}")
    print(f"{'':18} {'p50 µs':>8} {'p99 µs':>8} {'p99.9 µs':>9} {'mean µs':>8}")
    for name, values in runs.items():
        print(
            f"{name:18} {pct_us(values, 0.5):8.2f} {pct_us(values, 0.99):8.2f} {pct_us(values, 0.999):9.2f} "
            f"{statistics.fmean(values) / 1000:8.2f}"
        )
    p99 = pct_us(runs["guard(model)"], 0.99)
    ok = p99 < TARGET_P99_US
    print(f"guard p99 {p99:.2f} µs, target < {TARGET_P99_US:g} µs: {'PASS' if ok else 'FAIL'}")
    return ok


if __name__ == "__main__":
    sys.exit(main(__doc__, measure, Option("--calls", 200_000), tmp_prefix="costs"))
