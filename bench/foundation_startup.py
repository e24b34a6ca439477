#!/usr/bin/env python3
"""Start-up benchmark: `echoops --help` and `echoops config` vs a hello-world Typer app.

Target (issue 2): each echoops command within 1.3x of the baseline measured in the same run.
Commands are run interleaved (baseline, echoops, baseline, ...) so machine load hits both
alike; the figure is the median wall time of --runs runs after --warmup runs (the warm-up
also writes __pycache__, as an install would). CPU time (user+sys) is shown beside it.

    .venv/bin/python bench/foundation_startup.py [--runs 40] [--warmup 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from harness import ROOT, Option, bench_env, echoops_argv, main

TARGET = 1.3


def measure(args: argparse.Namespace, tmp: Path) -> bool:
    env = bench_env(tmp)
    # Measure what an installed echoops does: byte-compiled modules (pip compiles on install; an
    # editable install writes __pycache__ on first import). With PYTHONDONTWRITEBYTECODE set,
    # every run would compile echoops' sources again while typer's stay compiled.
    # The byte code goes to a temp dir, not into the working tree other people edit.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(tmp / "pycache")
    hello = [sys.executable, str(ROOT / "bench" / "baselines" / "hello_typer.py")]
    echoops = echoops_argv()
    pairs = [
        ("--help", hello + ["--help"], echoops + ["--help"]),
        ("config", hello, echoops + ["config"]),
        ("config --json", hello, echoops + ["config", "--json"]),
    ]
    commands = {}
    for _, base, cmd in pairs:
        commands[" ".join(base)] = base
        commands[" ".join(cmd)] = cmd
    times: dict[str, list[float]] = {k: [] for k in commands}
    cpu: dict[str, list[float]] = {k: [] for k in commands}
    for i in range(args.warmup + args.runs):
        for key, argv in commands.items():
            t0 = time.perf_counter()
            proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            _, status, usage = os.wait4(proc.pid, 0)
            elapsed = time.perf_counter() - t0
            code = os.waitstatus_to_exitcode(status)
            if code != 0:
                print(f"FAIL: {key} exited {code}")
                return False
            if i >= args.warmup:
                times[key].append(elapsed)
                cpu[key].append(usage.ru_utime + usage.ru_stime)

    med = {k: statistics.median(v) * 1000 for k, v in times.items()}
    med_cpu = {k: statistics.median(v) * 1000 for k, v in cpu.items()}
    short = {" ".join(hello): "hello_typer.py", " ".join(hello + ["--help"]): "hello_typer.py --help"}
    print(f"median of {args.runs} runs (after {args.warmup} warm-up), interleaved; wall and CPU (user+sys) ms\n")
    head = f"| {'command':<22} | {'baseline':<22} | wall | base wall | ratio | CPU | base CPU | CPU ratio |"
    print(head)
    print("|" + "|".join("-" * len(c) for c in head.split("|")[1:-1]) + "|")
    ok = True
    for label, base, cmd in pairs:
        kb, kc = " ".join(base), " ".join(cmd)
        ratio = med[kc] / med[kb]
        cpu_ratio = med_cpu[kc] / med_cpu[kb]
        ok &= ratio <= TARGET
        print(
            f"| echoops {label:<14} | {short[kb]:<22} | {med[kc]:4.0f} | {med[kb]:9.0f} | {ratio:5.2f} "
            f"| {med_cpu[kc]:3.0f} | {med_cpu[kb]:8.0f} | {cpu_ratio:9.2f} |"
        )
    print(
        f"\n{'PASS' if ok else 'FAIL'}: every echoops command within {TARGET}x "
        "(wall-clock median) of the hello-world Typer app"
    )
    return ok


if __name__ == "__main__":
    sys.exit(main(__doc__, measure, Option("--runs", 40), Option("--warmup", 5), tmp_prefix="startup"))
