#!/usr/bin/env python3
"""Bench: `echoops scale simulate` over a 30-day trace of one-minute samples (43,200).

Target (issue 7): the whole process under 2 s. Baselines in the same run: the bare CLI
start-up (`echoops scale --help`) and, in process, each policy's replay on its own (the
reactive baseline replay next to the predictive one) plus the trace parse.

Usage: .venv/bin/python bench/scale_simulate.py [--runs 5] [--days 30]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

from harness import PYTHON_M_ECHOOPS, Option, bench_env, main, process_wall

from tests.test_scale_sim import diurnal_rate, trace  # the test trace generator


def measure(args: argparse.Namespace, tmp: Path) -> bool:
    minutes = args.days * 1440
    path = tmp / "queue_30d.ndjson"
    path.write_bytes(trace(diurnal_rate, minutes, workers=3, cap=25.0, seed=11))
    env = bench_env(tmp / "logs", SCALE_MAX=12)
    simulate = [*PYTHON_M_ECHOOPS, "scale", "simulate", str(path)]
    startup = "echoops scale --help (start-up baseline)"
    commands = {
        startup: [*PYTHON_M_ECHOOPS, "scale", "--help"],
        "echoops scale simulate FILE --json": [*simulate, "--json"],
        "echoops scale simulate FILE (table)": simulate,
        "... --json --tick-min 1 (43,199 decisions x2)": [*simulate, "--json", "--tick-min", "1"],
    }
    walls = {label: [process_wall(argv, env) for _ in range(args.runs)] for label, argv in commands.items()}

    from echoops.core.config import load_settings
    from echoops.core.scale import backtest
    from echoops.core.scale.policy import PolicyConfig

    s = load_settings(env)
    t = time.perf_counter()
    intervals, info, observed = backtest.load_trace(path, s.scale_jobs_per_worker_min)
    parse_s = time.perf_counter() - t
    cfg = PolicyConfig(s.scale_min, s.scale_max, s.scale_cooldown_min * 60.0, float(s.scale_horizon_min))
    start = intervals[0][0] - intervals[0][1] * 60
    replay = {}
    for name in backtest.POLICIES:
        t = time.perf_counter()
        out = backtest._replay(name, intervals, info, observed or 20.0, cfg, 20.0, 600.0, start)
        replay[name] = (time.perf_counter() - t, out["summary"])

    med = statistics.median
    print(f"trace: {info['samples']} one-minute samples ({args.days} days), tick 10 min, SCALE_MAX=12")
    print(f"whole process, median of {args.runs} (min..max):")
    for label, times in walls.items():
        print(f"  {label:<48} {med(times):.3f} s ({min(times):.3f}..{max(times):.3f})")
    print("in process:")
    print(f"  parse + derive arrivals                      {parse_s:.3f} s")
    for name, (secs, summary) in replay.items():
        print(
            f"  replay {name:<10} ({summary['decisions']} decisions)   {secs:.3f} s  "
            f"changes {summary['changes']}, backlog-min {summary['backlog_minutes']:g}, "
            f"worker-min {summary['worker_minutes']:g}"
        )
    ok = max(med(times) for label, times in walls.items() if label != startup) < 2.0
    print("target < 2 s:", "met" if ok else "MISSED")
    return ok


if __name__ == "__main__":
    sys.exit(main(__doc__, measure, Option("--runs", 5), Option("--days", 30), tmp_prefix="scale"))
