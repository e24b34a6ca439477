#!/usr/bin/env python3
"""One route served by this checkout and by an earlier commit, in the same run (A/B).

Three servers on the same gunicorn options: the one-line Bottle route (`bench/baselines`), then
`echoops serve` from the commit named by --before (its `echoops/` and `shim/`, taken with `git
archive`, first on PYTHONPATH) and from this checkout. Each round runs the three back to back
(`wrk -t2 -c32`, the order of the two echoops servers alternating); the figures are the medians
over rounds of each server's requests/s over the bare route's in that round, and of after over
before, so what the shared host does in a given minute cancels out. The log dir holds a day of
requests, ticked once (the same data as bench/slo_status_http.py); every request carries
X-Dash-Key. The earlier tree runs without the compiled folds (no route here uses them).

    .venv/bin/python bench/http_ab.py --before HEAD~3 [--path /api/slo/status] [--rounds 20]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
from pathlib import Path

from foundation_healthz import bare_route, tree_cpu, wrk
from harness import ROOT, Option, echoops_serve, main
from slo_status_http import CONNECTIONS, KEY, status_logs


def earlier_tree(rev: str, into: Path) -> Path:
    """`rev`'s echoops/ and shim/ under `into` (a directory to put first on PYTHONPATH)."""
    archive = into.with_suffix(".tar")
    with open(archive, "wb") as out:
        subprocess.run(["git", "-C", str(ROOT), "archive", rev, "echoops", "shim"], stdout=out, check=True)
    into.mkdir()
    with tarfile.open(archive) as tar:
        tar.extractall(into, filter="data")
    return into


def measure(args: argparse.Namespace, tmp: Path) -> bool:
    if not shutil.which("wrk"):
        raise SystemExit("wrk not found (Debian: apt-get install wrk)")
    before = earlier_tree(args.before, tmp / "before")
    # `python -m echoops` puts its working directory first on sys.path: from the checkout, both
    # servers would import this checkout. Each runs from the temp dir, its tree on PYTHONPATH.
    cwd = Path.cwd()
    os.chdir(tmp)
    try:
        return _measure(args, tmp, before)
    finally:
        os.chdir(cwd)


def _measure(args: argparse.Namespace, tmp: Path, before: Path) -> bool:
    env = status_logs(tmp)
    headers = {"X-Dash-Key": KEY}
    with (
        bare_route(env) as (bare_url, bare),
        echoops_serve({**env, "PYTHONPATH": str(before)}) as old,
        echoops_serve({**env, "PYTHONPATH": str(ROOT)}) as new,
    ):
        plans = {
            "bare": (bare_url, {}, bare),
            "before": (old.url + args.path, headers, old.proc),
            "after": (new.url + args.path, headers, new.proc),
        }
        for url, hdrs, _ in plans.values():
            wrk(url, 2, hdrs, CONNECTIONS)  # warm-up
        rates: dict[str, list[float]] = {name: [] for name in plans}
        per_cpu: dict[str, list[float]] = {name: [] for name in plans}
        errors = 0
        for i in range(args.rounds):
            order = ["bare", "before", "after"] if i % 2 == 0 else ["bare", "after", "before"]
            for name in order:
                url, hdrs, proc = plans[name]
                c0 = tree_cpu(proc.pid)
                rate, done, errs = wrk(url, args.duration, hdrs, CONNECTIONS)
                rates[name].append(rate)
                per_cpu[name].append(done / max(tree_cpu(proc.pid) - c0, 1e-9))
                errors += errs
    print(f"GET {args.path}: before = {args.before}, after = this checkout")
    print(f"wrk -t2 -c{CONNECTIONS} -d{args.duration}s, {args.rounds} rounds, 2 gunicorn workers each\n")
    print("| server | requests/s (median) | of the bare route, per round (median) | requests per server CPU-second |")
    print("|---|---|---|---|")
    for name in plans:
        paired = statistics.median(r / b for r, b in zip(rates[name], rates["bare"], strict=True))
        rate, cpu = statistics.median(rates[name]), statistics.median(per_cpu[name])
        print(f"| {name} | {rate:,.0f} | {paired:.2f}x | {cpu:,.0f} |")
    gain = statistics.median(a / b for a, b in zip(rates["after"], rates["before"], strict=True))
    cpu = statistics.median(per_cpu["after"]) / statistics.median(per_cpu["before"])
    print(f"\nafter / before: {gain:.3f}x requests/s (median of rounds), {cpu:.3f}x requests per CPU-second")
    print(f"{errors} errors")
    return errors == 0


if __name__ == "__main__":
    sys.exit(
        main(
            __doc__,
            measure,
            Option("--before", "HEAD~1", "the commit to compare with"),
            Option("--path", "/api/slo/status"),
            Option("--rounds", 20),
            Option("--duration", 1),
            tmp_prefix="http-ab",
        )
    )
