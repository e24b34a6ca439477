#!/usr/bin/env python3
"""Bench: `echoops scale simulate` over a 30-day trace of one-minute samples (43,200), and a year.

Targets: issue 7, the whole process under 2 s (now four methods, one pass); issue 18, the
seasonal method alone (`--method damped+seasonal`) over 30 days under 3 s, and over a year of
minutes (525,600) a time that grows linearly with the trace (`--year-days`, reported as the
ratio of the per-sample cost, 1.0 = linear). Baselines in the same run: the bare CLI start-up
(`echoops scale --help`) and, in process, the trace parse and each method's replay alone.

Usage: .venv/bin/python bench/scale_simulate.py [--runs 5] [--days 30] [--year-days 365]
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
        "... --json --tick-min 1 (43,199 decisions x4)": [*simulate, "--json", "--tick-min", "1"],
        "... --json --method damped+seasonal": [*simulate, "--json", "--method", "damped+seasonal"],
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
    for name in backtest.METHODS:
        t = time.perf_counter()
        out = backtest.replay([name], intervals, info, observed or 20.0, cfg, 20.0, 600.0, start)[name]
        replay[name] = (time.perf_counter() - t, out["summary"])
    seasonal_30 = replay["damped+seasonal"][0] + parse_s

    med = statistics.median
    print(f"trace: {info['samples']} one-minute samples ({args.days} days), tick 10 min, SCALE_MAX=12")
    print(f"whole process, median of {args.runs} (min..max):")
    for label, times in walls.items():
        print(f"  {label:<48} {med(times):.3f} s ({min(times):.3f}..{max(times):.3f})")
    print("in process:")
    print(f"  parse + derive arrivals                      {parse_s:.3f} s")
    for name, (secs, summary) in replay.items():
        print(
            f"  replay {name:<16} ({summary['decisions']} decisions)   {secs:.3f} s  "
            f"changes {summary['changes']}, backlog-min {summary['backlog_minutes']:g}, "
            f"worker-min {summary['worker_minutes']:g}, MAPE {summary['mape_pct']}%"
        )
    ok = max(med(times) for label, times in walls.items() if label not in (startup,)) < 2.0
    print("target < 2 s (whole process, every variant):", "met" if ok else "MISSED")
    seasonal_wall = med(walls["... --json --method damped+seasonal"])
    ok3 = seasonal_wall < 3.0
    print(f"target damped+seasonal over {args.days} days < 3 s: {seasonal_wall:.3f} s,", "met" if ok3 else "MISSED")

    year_minutes = args.year_days * 1440
    year = tmp / "queue_year.ndjson"
    year.write_bytes(trace(diurnal_rate, year_minutes, workers=3, cap=25.0, seed=11))
    t = time.perf_counter()
    y_intervals, y_info, y_obs = backtest.load_trace(year, s.scale_jobs_per_worker_min)
    y_parse = time.perf_counter() - t
    t = time.perf_counter()
    backtest.replay(["damped+seasonal"], y_intervals, y_info, y_obs or 20.0, cfg, 20.0, 600.0,
                    y_intervals[0][0] - 60)  # fmt: skip
    y_replay = time.perf_counter() - t
    del y_intervals
    y_argv = [*PYTHON_M_ECHOOPS, "scale", "simulate", str(year), "--json", "--method", "damped+seasonal"]
    y_wall = process_wall(y_argv, env)
    per_30 = seasonal_30 / minutes * 1e6
    per_year = (y_parse + y_replay) / year_minutes * 1e6
    print(
        f"damped+seasonal over {args.year_days} days ({year_minutes:,} samples): whole process {y_wall:.2f} s; "
        f"in process parse {y_parse:.2f} s + replay {y_replay:.2f} s = {per_year:.2f} us/sample "
        f"against {per_30:.2f} us/sample over {args.days} days: ratio {per_year / per_30:.2f} (1.0 = linear)"
    )
    linear = per_year / per_30 < 1.5
    print("target linear growth (per-sample cost within 1.5x):", "met" if linear else "MISSED")
    return ok and ok3 and linear


if __name__ == "__main__":
    sys.exit(
        main(
            __doc__, measure, Option("--runs", 5), Option("--days", 30), Option("--year-days", 365), tmp_prefix="scale"
        )
    )
