#!/usr/bin/env python3
"""SLO tick with no new data over 30 days of minute aggregates, and GET /api/slo/status (issue 4).

Fills a log dir with 43,200 minutes of requests (`--per-minute` lines each, ingested once),
then measures:

- `slo.tick()` in process with nothing new to read (target < 50 ms), against a naive
  recompute in the same run (SUM over every minute row per window + merging the 1,440
  minute sketches of the 24h period);
- the whole `python -m echoops slo tick` process, wall (target < 0.5 s), against
  `python -m echoops --help` (interpreter + CLI import floor);
- `GET /api/slo/status` on `echoops serve` (gunicorn, 2 workers), p50/p99 over sequential
  requests (target p99 < 20 ms), against `GET /healthz` on the same server.

    .venv/bin/python bench/slo_tick.py [--per-minute 40] [--ticks 30] [--requests 1000]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

MINUTES = 43_200
TARGET_TICK_MS = 50.0
TARGET_PROCESS_S = 0.5
TARGET_P99_MS = 20.0


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def naive_tick(s, now: float) -> float:
    """What a tick costs without hour rollups: every window summed from minute rows, 24h sketch from minutes."""
    from echoops.core import sketch, slo_data, slo_rules

    conn = slo_data.db(s)
    t0 = time.perf_counter()
    cur = slo_data.last_minute(now)
    for minutes in [*slo_rules.WINDOWS.values(), s.slo_window_days * 1440]:
        conn.execute(
            "SELECT sum(total), sum(errors), sum(slow) FROM slo_minute WHERE minute BETWEEN ? AND ?",
            (cur - minutes + 1, cur),
        ).fetchone()
    acc = sketch.dense()
    for (blob,) in conn.execute("SELECT sketch FROM slo_minute_sketch WHERE minute BETWEEN ? AND ?", (cur - 1439, cur)):
        sketch.merge_into(acc, blob)
    sketch.quantiles(acc, (0.95, 0.99))
    return (time.perf_counter() - t0) * 1000


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--per-minute", type=int, default=40)
    ap.add_argument("--ticks", type=int, default=30)
    ap.add_argument("--requests", type=int, default=1000)
    args = ap.parse_args()
    import httpx
    from slo_ingest import END, generate

    from echoops.core import slo, slo_data
    from echoops.core.config import load_settings

    work = Path(tempfile.mkdtemp(prefix="echoops-bench-slo-tick-"))
    ok = True
    try:
        print(f"# {platform.node()} {platform.machine()} {os.cpu_count()} cpus, Python {platform.python_version()}")
        print(f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load {os.getloadavg()[0]:.2f}")
        generate(work / "requests.ndjson", MINUTES * args.per_minute, per_minute=args.per_minute)
        env = {**os.environ, "ECHOOPS_LOG_DIR": str(work), "DASHBOARD_KEY": "bench-key-0123456789abcdef"}
        s = load_settings(env)
        t0 = time.perf_counter()
        first = slo.tick(s=s, now=END)
        conn = slo_data.db(s)
        rows = conn.execute("SELECT count(*) FROM slo_minute").fetchone()[0]
        print(
            f"setup: {first['ingest']['lines']} lines into {rows} minute rows in {time.perf_counter() - t0:.1f} s; "
            f"state {first['status']['state']}, p95 {first['status']['p95_ms']} ms"
        )

        times = []
        for i in range(args.ticks):
            t0 = time.perf_counter()
            r = slo.tick(s=s, now=END + 1 + i)
            times.append((time.perf_counter() - t0) * 1000)
            assert r["ingest"]["lines"] == 0
        naive = [naive_tick(s, END + 1) for _ in range(5)]
        med = statistics.median(times)
        fits = med < TARGET_TICK_MS
        ok = ok and fits
        print(
            f"tick, no new data, in process: median {med:.1f} ms, max {max(times):.1f} ms over {args.ticks} "
            f"(naive recompute: median {statistics.median(naive):.1f} ms): {'PASS' if fits else 'FAIL'}"
        )

        def wall(argv: list[str]) -> float:
            t0 = time.perf_counter()
            subprocess.run(argv, env=env, check=True, capture_output=True)
            return time.perf_counter() - t0

        py = [sys.executable, "-m", "echoops"]
        proc = [wall([*py, "slo", "tick", "--now", str(END + 100 + i)]) for i in range(7)]
        floor = [wall([*py, "--help"]) for _ in range(5)]
        med = statistics.median(proc)
        fits = med < TARGET_PROCESS_S
        ok = ok and fits
        print(
            f"`echoops slo tick` process wall: median {med:.3f} s, max {max(proc):.3f} s "
            f"(`echoops --help`: median {statistics.median(floor):.3f} s): {'PASS' if fits else 'FAIL'}"
        )

        port = free_port()
        server = subprocess.Popen(
            [*py, "serve", "--port", str(port), "--workers", "2"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=open(work / "serve.log", "wb"),
            start_new_session=True,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                try:
                    httpx.get(base + "/healthz", timeout=1)
                    break
                except httpx.HTTPError:
                    if server.poll() is not None:
                        raise RuntimeError("server exited: " + (work / "serve.log").read_text()[-2000:]) from None
                    time.sleep(0.1)
            with httpx.Client(base_url=base, headers={"X-Dash-Key": env["DASHBOARD_KEY"]}) as http:
                for _ in range(50):  # warm both workers
                    http.get("/api/slo/status")

                def timed(path: str) -> list[float]:
                    out = []
                    for _ in range(args.requests):
                        t0 = time.perf_counter()
                        r = http.get(path)
                        out.append((time.perf_counter() - t0) * 1000)
                        assert r.status_code == 200
                    return out

                status = timed("/api/slo/status")
                health = timed("/healthz")
                size = len(http.get("/api/slo/status").content)
            p99 = pct(status, 0.99)
            fits = p99 < TARGET_P99_MS
            ok = ok and fits
            print(
                f"GET /api/slo/status ({size} bytes): p50 {pct(status, 0.5):.2f} ms, p99 {p99:.2f} ms over "
                f"{args.requests} (GET /healthz p50 {pct(health, 0.5):.2f} ms, p99 {pct(health, 0.99):.2f} ms): "
                f"{'PASS' if fits else 'FAIL'}"
            )
        finally:
            os.killpg(server.pid, 15)
            server.wait(10)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
