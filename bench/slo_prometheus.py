#!/usr/bin/env python3
"""`slo tick` with SLO_SOURCE=prometheus over 30 days of history (issue 16).

Generates a request-latency histogram (tests/request_mix.py: ~60 requests a minute, a daily
cycle, a burst and a sustained burn; samples every minute) for 3 days and for 30 days, backfills
each with `promtool tsdb create-blocks-from openmetrics`, serves it with Debian's `prometheus`
on a loopback port, and times the tick against it: in process (`slo.tick`, `--ticks` times) and
as the scheduler runs it (`python -m echoops slo tick`, a new process each time). Target: < 2 s
over 30 days; the queries per tick are the same for 3 and 30 days (they do not grow with the
history), and the 3-day run is the baseline for the time.

    .venv/bin/python bench/slo_prometheus.py [--ticks 20] [--processes 5]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import time
from pathlib import Path

from harness import PYTHON_M_ECHOOPS, Option, bench_env, main, process_wall

from tests import prometheus_stack as stack
from tests import request_mix as mix

TARGET_S = 2.0
END = 1796040000  # 2026-11-30T12:00:00Z


def run(days: int, args: argparse.Namespace, tmp: Path, promtool: str, prometheus: str) -> dict:
    from echoops.core import slo, store
    from echoops.core.config import load_settings

    root = tmp / f"{days}d"
    root.mkdir()
    t0 = time.perf_counter()
    minutes = list(mix.Mix(end=END, days=days).minutes())
    samples = mix.write_openmetrics({"app": minutes}, root / "history.om")
    size = (root / "history.om").stat().st_size
    del minutes
    made = time.perf_counter() - t0
    t0 = time.perf_counter()
    stack.backfill(promtool, root / "history.om", root / "tsdb")
    backfilled = time.perf_counter() - t0
    (root / "history.om").unlink()
    out: dict = {"days": days, "samples": samples, "mb": size / 1e6, "made_s": made, "backfill_s": backfilled}
    with stack.prometheus(prometheus, root / "tsdb") as url:
        (root / "logs").mkdir()
        env = bench_env(
            root / "logs",
            SLO_SOURCE="prometheus",
            PROMETHEUS_URL=url,
            SLO_PROM_SELECTOR='job="app"',
            DASHBOARD_KEY="bench-key-0123456789abcdef",
        )
        s = load_settings(env)
        first = slo.tick(s=s, now=END)  # warm Prometheus' page cache, as a running server has it
        out["state"] = first["status"]["state"]
        out["gate"] = first["status"]["gate"]["set"]
        times, queries = [], set()
        for i in range(args.ticks):
            t0 = time.perf_counter()
            result = slo.tick(s=s, now=END + 60 * (i + 1))
            times.append(time.perf_counter() - t0)
            queries.add(result["source"]["queries"])
        store.close_all()
        out["tick"] = times
        out["queries"] = sorted(queries)
        out["process"] = [
            process_wall([*PYTHON_M_ECHOOPS, "slo", "tick", "--now", str(END + 3600 + 60 * i)], env)
            for i in range(args.processes)
        ]
    shutil.rmtree(root / "tsdb", ignore_errors=True)
    return out


def measure(args: argparse.Namespace, tmp: Path) -> bool:
    promtool, prometheus = shutil.which(stack.PROMTOOL), shutil.which(stack.PROMETHEUS)
    if not promtool or not prometheus:
        raise SystemExit(f"prometheus/promtool not found ({stack.INSTALL})")
    rows = [run(days, args, tmp, promtool, prometheus) for days in (3, 30)]
    print(
        f"\n| history | samples backfilled | slo tick in process: median / max ({args.ticks} ticks) | "
        f"`echoops slo tick` process: median / max ({args.processes}) | queries per tick |"
    )
    print("|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['days']} days | {r['samples']:,} ({r['mb']:.0f} MB OpenMetrics, "
            f"backfilled in {r['backfill_s']:.1f} s) "
            f"| {statistics.median(r['tick']) * 1000:.0f} / {max(r['tick']) * 1000:.0f} ms "
            f"| {statistics.median(r['process']):.2f} / {max(r['process']):.2f} s "
            f"| {', '.join(map(str, r['queries']))} |"
        )
    small, big = rows
    same_queries = small["queries"] == big["queries"] and len(big["queries"]) == 1
    worst = max(max(big["tick"]), max(big["process"]))
    ok = worst < TARGET_S and same_queries and big["gate"] and big["state"] == "red"
    print(
        f"\n{'PASS' if ok else 'FAIL'}: slowest tick over 30 days {worst:.2f} s (target < {TARGET_S:g} s; "
        f"3 days: {max(max(small['tick']), max(small['process'])):.2f} s), {big['queries'][0]} queries a tick "
        f"for 3 and 30 days; the sustained burn set the gate: {big['gate']}"
    )
    return ok


if __name__ == "__main__":
    sys.exit(main(__doc__, measure, Option("--ticks", 20), Option("--processes", 5), tmp_prefix="slo-prom"))
