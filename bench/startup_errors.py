#!/usr/bin/env python3
"""Port in use: how long `echoops serve` and `echoops up` take to say so and exit 2.

Target (issue 17): "a port in use is exit 2 within a second or two". Each run holds a loopback
port with a listening socket, then times `echoops serve --port P` and `echoops up --port P` to
their exit (rc 2 and the `port P is in use` line checked every time), interleaved with
`echoops config` as the same-run baseline (a command's bare start-up on this machine right now).
For comparison, plain gunicorn (`python -m gunicorn --bind 127.0.0.1:P shim.wsgi:app`, what
`serve` did before the check) is timed --gunicorn-runs times. PASS: the medians of both
commands under 2 s.

    .venv/bin/python bench/startup_errors.py [--runs 15] [--gunicorn-runs 2]
"""

from __future__ import annotations

import argparse
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

from harness import Option, bench_env, echoops_argv, main

TARGET_S = 2.0


def _timed(argv: list[str], env: dict[str, str], cwd: Path) -> tuple[float, subprocess.CompletedProcess]:
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=120)
    return time.perf_counter() - start, done


def measure(args: argparse.Namespace, tmp: Path) -> bool:
    env = bench_env(tmp / "logs", DASHBOARD_KEY="bench-dashboard-key-0123456789")
    echoops = echoops_argv()
    walls: dict[str, list[float]] = {"config": [], "serve": [], "up": []}
    with socket.socket() as held:
        held.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        for _ in range(args.runs):
            for name, extra in (("config", ["config"]), ("serve", ["serve"]), ("up", ["up"])):
                argv = echoops + extra + (["--port", str(port)] if name != "config" else [])
                wall, done = _timed(argv, env, tmp)
                if name != "config" and (done.returncode != 2 or f"port {port} is in use" not in done.stderr):
                    raise SystemExit(f"{name}: rc {done.returncode}, stderr {done.stderr!r}")
                walls[name].append(wall)
        gunicorn = []
        for _ in range(args.gunicorn_runs):
            argv = [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "shim.wsgi:app"]
            wall, done = _timed(argv, env, tmp)
            gunicorn.append((wall, done.returncode))
    medians = {name: statistics.median(values) for name, values in walls.items()}
    for name in ("config", "serve", "up"):
        values = walls[name]
        print(f"{name:7s} median {medians[name]:.3f} s  max {max(values):.3f} s  ({len(values)} runs)")
    for wall, rc in gunicorn:
        print(f"gunicorn alone (before the check): {wall:.2f} s, exit {rc}")
    ok = medians["serve"] < TARGET_S and medians["up"] < TARGET_S
    ratio = max(medians["serve"], medians["up"]) / medians["config"]
    print(f"{'PASS' if ok else 'FAIL'}: serve and up exit 2 in under {TARGET_S:g} s (slowest {ratio:.2f}x `config`)")
    return ok


if __name__ == "__main__":
    sys.exit(main(__doc__, measure, Option("--runs", 15), Option("--gunicorn-runs", 2), tmp_prefix="startup-errors"))
