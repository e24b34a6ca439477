#!/usr/bin/env python3
"""/healthz benchmark: `echoops serve --workers 2` vs a one-line Bottle route on the same gunicorn.

Target (issue 2): GET /healthz reaches >= 0.8x the requests/s of `bench/baselines/one_line_bottle.py`
served through the same Bottle gunicorn adapter with the same `shim.server.gunicorn_options`
(2 workers; threaded since issue 12), same run, `wrk -t2 -c16 -d10s`, zero errors. Rounds
alternate baseline, echoops, baseline, echoops ... after a warm-up of each; the figure is the
median of the rounds.
wrk runs on the same 2 cores as the servers, for both alike.

    .venv/bin/python bench/foundation_healthz.py [--rounds 3] [--duration 10]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import statistics
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from harness import ROOT, Option, bench_env, echoops_serve, free_port, machine_line, main, running

TARGET = 0.8

BASELINE = r"""
import sys
sys.path.insert(0, {root!r})
sys.path.insert(0, {baselines!r})
import bottle
from echoops.core import config
from shim.server import gunicorn_options
from one_line_bottle import app
bottle.run(app=app, server="gunicorn", host="127.0.0.1", port={port}, quiet=True,
           **gunicorn_options(config.settings(), 2))
"""


def tree_cpu(pid: int) -> float:
    """CPU seconds (user+sys) used so far by a process and its live descendants (the workers)."""
    total = 0.0
    todo = [pid]
    tick = os.sysconf("SC_CLK_TCK")
    while todo:
        p = todo.pop()
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
            todo += [int(c) for c in Path(f"/proc/{p}/task/{p}/children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            pass
    return total


def wrk(
    url: str, duration: int, headers: dict[str, str] | None = None, connections: int = 16
) -> tuple[float, int, int]:
    """(requests/s, requests, errors) from `wrk -t2 -c<connections>` (with `headers` on every
    request); a 3xx (a 304) is not an error."""
    extra = [arg for name, value in (headers or {}).items() for arg in ("-H", f"{name}: {value}")]
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{duration}s", *extra, url], capture_output=True, text=True, check=True
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    total = int(re.search(r"(\d+) requests in", out).group(1))
    errors = 0
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if m:
        errors += int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        errors += sum(int(x) for x in m.groups())
    return rps, total, errors


@contextlib.contextmanager
def bare_route(env: dict[str, str]) -> Iterator[tuple[str, subprocess.Popen]]:
    """The baseline every HTTP benchmark compares with: `bench/baselines/one_line_bottle.py`
    on a free loopback port, through the same gunicorn adapter and options as `echoops serve`
    (this checkout's); its URL and process while the block runs."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    code = BASELINE.format(root=str(ROOT), baselines=str(ROOT / "bench" / "baselines"), port=port)
    with running([sys.executable, "-c", code], env, url) as proc:
        yield url, proc


def measure(args: argparse.Namespace, tmp: Path) -> bool:
    if not shutil.which("wrk"):
        raise SystemExit("wrk not found (Debian: apt-get install wrk)")
    (tmp / "logs").mkdir()
    env = bench_env(tmp / "logs", DASHBOARD_KEY="bench-key-0123456789abcdef")
    with bare_route(env) as (base_url, bproc), echoops_serve(env) as server:
        echo_url = server.url + "/healthz"
        with urllib.request.urlopen(echo_url) as r:
            print("healthz:", r.read().decode())
        wrk(base_url, 2)  # warm-up
        wrk(echo_url, 2)
        rows: dict[str, list[tuple[float, int, int]]] = {"baseline": [], "healthz": []}
        per_cpu: dict[str, list[float]] = {"baseline": [], "healthz": []}
        for _ in range(args.rounds):
            for name, url, proc in (("baseline", base_url, bproc), ("healthz", echo_url, server.proc)):
                c0 = tree_cpu(proc.pid)
                rows[name].append(wrk(url, args.duration))
                per_cpu[name].append(rows[name][-1][1] / max(tree_cpu(proc.pid) - c0, 1e-9))

    print(machine_line())
    from echoops.core import config
    from shim.server import gunicorn_options

    opts = gunicorn_options(config.settings(), 2)
    workers = f"gunicorn 2 {opts['worker_class'].rsplit('.', 1)[-1]} workers x {opts.get('threads', 1)} threads"
    print(f"wrk -t2 -c16 -d{args.duration}s, {args.rounds} alternating rounds, {workers}\n")
    print("| server | requests/s per round | median | errors | requests per server CPU-second (median) |")
    print("|---|---|---|---|---|")
    med = {}
    cpu_med = {}
    errors = 0
    for name, label in (("baseline", "one-line Bottle route `/`"), ("healthz", "`echoops serve` GET /healthz")):
        rates = [r[0] for r in rows[name]]
        med[name] = statistics.median(rates)
        errs = sum(r[2] for r in rows[name])
        errors += errs
        cpu_med[name] = statistics.median(per_cpu[name])
        print(
            f"| {label} | {', '.join(f'{x:,.0f}' for x in rates)} | {med[name]:,.0f} | {errs} | {cpu_med[name]:,.0f} |"
        )
    ratio = med["healthz"] / med["baseline"]
    print(f"\nper server CPU-second: /healthz at {cpu_med['healthz'] / cpu_med['baseline']:.2f}x the one-line route")
    ok = ratio >= TARGET and errors == 0
    print(
        f"\n{'PASS' if ok else 'FAIL'}: /healthz at {ratio:.2f}x the one-line route, {errors} errors "
        f"(target >= {TARGET}x, 0)"
    )
    return ok


if __name__ == "__main__":
    sys.exit(main(__doc__, measure, Option("--rounds", 3), Option("--duration", 10), tmp_prefix="healthz"))
