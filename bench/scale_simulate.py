#!/usr/bin/env python3
"""Bench: `echoops scale simulate` over a 30-day trace of one-minute samples (43,200), and a year.

Targets: issue 7, the whole process under 2 s (now four methods, one pass); issue 20, 432,000
samples (all four methods) under 60 MB peak RSS, the trace streamed; issue 18, the
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
    tr = backtest.Trace(path, s.scale_jobs_per_worker_min)  # the first read: summary and capacity
    parse_s = time.perf_counter() - t
    info, observed, start = tr.info, tr.observed, tr.start_ts
    cfg = PolicyConfig(s.scale_min, s.scale_max, s.scale_cooldown_min * 60.0, float(s.scale_horizon_min))
    replay = {}
    for name in backtest.METHODS:  # each replay reads the trace again (streamed)
        t = time.perf_counter()
        out = backtest.replay([name], tr.intervals(), info, observed or 20.0, cfg, 20.0, 600.0, start)[name]
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
    y_tr = backtest.Trace(year, s.scale_jobs_per_worker_min)
    y_parse = time.perf_counter() - t
    t = time.perf_counter()
    backtest.replay(["damped+seasonal"], y_tr.intervals(), y_tr.info, y_tr.observed or 20.0, cfg, 20.0, 600.0,
                    y_tr.start_ts)  # fmt: skip
    y_replay = time.perf_counter() - t
    y_argv = [*PYTHON_M_ECHOOPS, "scale", "simulate", str(year), "--json", "--method", "damped+seasonal"]
    y_wall = process_wall(y_argv, env)
    rss_argv = [*PYTHON_M_ECHOOPS, "scale", "simulate", str(year_432k(tmp)), "--json"]
    rss_mb = peak_rss_mb(rss_argv, env)
    per_30 = seasonal_30 / minutes * 1e6
    per_year = (y_parse + y_replay) / year_minutes * 1e6
    print(
        f"damped+seasonal over {args.year_days} days ({year_minutes:,} samples): whole process {y_wall:.2f} s; "
        f"in process parse {y_parse:.2f} s + replay {y_replay:.2f} s = {per_year:.2f} us/sample "
        f"against {per_30:.2f} us/sample over {args.days} days: ratio {per_year / per_30:.2f} (1.0 = linear)"
    )
    linear = per_year / per_30 < 1.5
    print("target linear growth (per-sample cost within 1.5x):", "met" if linear else "MISSED")
    small = peak_rss_mb([*PYTHON_M_ECHOOPS, "scale", "simulate", str(path), "--json"], env)
    fits = rss_mb < 60.0
    print(
        f"peak RSS of `scale simulate --json` (all four methods): 432,000 samples {rss_mb:.1f} MB, "
        f"{minutes:,} samples {small:.1f} MB (target < 60 MB at 432,000):",
        "met" if fits else "MISSED",
    )
    return ok and ok3 and linear and fits


def year_432k(tmp: Path) -> Path:
    """300 days of one-minute samples: the 432,000-sample trace issue 20 bounds the memory of."""
    path = tmp / "queue_432k.ndjson"
    if not path.exists():
        path.write_bytes(trace(diurnal_rate, 432_000, workers=3, cap=25.0, seed=11))
    return path


def peak_rss_mb(argv: list[str], env: dict[str, str]) -> float:
    """Peak RSS of one whole process (its VmHWM, sampled every 10 ms), in MB."""
    from ingest_duckdb import run

    return run(argv, env)["rss_mb"]


if __name__ == "__main__":
    sys.exit(
        main(
            __doc__, measure, Option("--runs", 5), Option("--days", 30), Option("--year-days", 365), tmp_prefix="scale"
        )
    )
