#!/usr/bin/env python3
"""Ingest against DuckDB, whole processes, at 100k / 1M / 5M lines (issue 20).

For each size a requests.ndjson is generated (bench/slo_ingest.py's generator: ISO `...Z`
stamps, ~700 requests a minute, log-normal latencies, ~1% 5xx), then, in interleaved rounds
(the order rotates each round), three whole processes on the same file:

- `echoops slo tick --now T` on a fresh log dir holding the file (what the scheduler runs);
- DuckDB: `python -c` importing duckdb, `read_ndjson` + count, errors, slow and
  `quantile_disc` 0.95/0.99 (what a user would reach for instead: vectorised C++, every core);
- the naive script: `json.loads` per line, `datetime.fromisoformat`, per-minute lists, one sort.

Each is reported as its median wall time (min..max) and peak RSS: of the largest process
(`wait4`'s ru_maxrss) and of the whole process tree (sampled every 10 ms in one more, untimed
run of each: the sampling thread takes CPU, so timed runs are never sampled; the tick's bulk
workers are forked children). Beside them, the in-process figure: `aggregates.ingest` alone,
in this process. Accuracy: the counts the tick stored equal DuckDB's, p95/p99 from the merged
sketches are within 1% of `quantile_disc`.

Costs: `echoops costs tick` on --costs-lines AI-usage lines against DuckDB's
`SUM ... GROUP BY model`; calls, tokens and money (pico-dollars, priced with echoops' table from
DuckDB's exact DECIMAL sums) must be equal. The machine's bare `orjson` loop rate
(`for line in f: orjson.loads(line)`, 1M lines) is printed so other machines can scale.

Targets: slo tick 1M and 5M <= 2.0x DuckDB, 5M peak RSS < 150 MB; costs tick 1M <= 2.0x DuckDB;
100k: the tick faster than the naive script.

    .venv/bin/python bench/ingest_duckdb.py [--sizes 100000,1000000,5000000] [--rounds 3]
        [--costs-lines 1000000] [--naive-max 1000000] [--callgrind 50000] [--code DIR]

`--code DIR` runs another checkout's echoops (a `git archive` of an older commit) for an A/B;
`--callgrind N` also counts CPU instructions per line of the in-process ingest (one process,
`valgrind --tool=callgrind`, minus an import-only run): a figure load does not move.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from decimal import Decimal
from pathlib import Path

import orjson
from harness import ROOT, Option, bench_env, main, precompile

END = 1795780800.0  # 2026-11-27T12:00:00Z, just after the generated lines
END_ISO = "2026-11-27T12:00:00Z"
TARGET_RATIO = 2.0
TARGET_RSS_MB = 150.0

DUCK_SLO = r"""
import json, sys
import duckdb
path = sys.argv[1].replace("'", "''")
row = duckdb.connect().execute("SET enable_progress_bar = false").execute(
    "SELECT count(*), sum((status >= 500)::INT), sum((latency_ms > 800)::INT), "
    "quantile_disc(latency_ms, 0.95), quantile_disc(latency_ms, 0.99) "
    f"FROM read_ndjson('{path}', columns={{ts: 'VARCHAR', status: 'INTEGER', latency_ms: 'DOUBLE'}})"
).fetchone()
print(json.dumps(row))
"""

DUCK_COSTS = r"""
import json, sys
import duckdb
path = sys.argv[1].replace("'", "''")
rows = duckdb.connect().execute("SET enable_progress_bar = false").execute(
    "SELECT model, count(*), coalesce(sum(input_tokens), 0), coalesce(sum(output_tokens), 0), "
    "coalesce(sum(usd::DECIMAL(38, 12)), 0)::VARCHAR, count(usd) "
    f"FROM read_ndjson('{path}', columns={{ts: 'VARCHAR', model: 'VARCHAR', input_tokens: 'BIGINT', "
    "output_tokens: 'BIGINT', usd: 'DOUBLE'}) GROUP BY model ORDER BY model"
).fetchall()
print(json.dumps(rows))
"""

NAIVE = r"""
import json, math, sys
from datetime import datetime
per_minute = {}
errors = slow = total = bad = 0
with open(sys.argv[1], "rb") as fh:
    for raw in fh:
        try:
            obj = json.loads(raw)
            ts = datetime.fromisoformat(obj["ts"]).timestamp()
            lat = float(obj["latency_ms"])
            status = int(obj["status"])
        except (ValueError, KeyError, TypeError):
            bad += 1
            continue
        per_minute.setdefault(int(ts // 60), []).append(lat)
        total += 1
        errors += status >= 500
        slow += lat > 800.0
every = sorted(x for lats in per_minute.values() for x in lats)
n = len(every)
print(json.dumps([total, errors, slow, every[int(math.floor(0.95 * (n - 1)))], every[int(math.floor(0.99 * (n - 1)))]]))
"""


def tree_kb(pid: int, peaks: dict[int, int]) -> int:
    """VmRSS of `pid` and its descendants now, in kB; `peaks` keeps each process's VmHWM (its own
    peak RSS since exec: ru_maxrss would carry the forking parent's over the exec)."""
    total = 0
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
                elif line.startswith("VmHWM:"):
                    peaks[p] = max(peaks.get(p, 0), int(line.split()[1]))
            todo += [int(c) for c in Path(f"/proc/{p}/task/{p}/children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError, ValueError):
            pass
    return total


def run(argv: list[str], env: dict[str, str], *, sample: bool = False) -> dict:
    """One whole process: wall seconds and stdout; with `sample`, also the peak RSS of its
    largest process (each one's VmHWM: ru_maxrss would carry this forking process's over the
    exec) and of the whole process tree at once, sampled every 10 ms from /proc by a thread of
    this process: CPU the measured process would otherwise have, so a sampled run is never a
    timed one.

    It runs in the temp dir, so `python -m echoops` finds the checkout PYTHONPATH names, not
    the one in the current directory."""
    out = tempfile.TemporaryFile()
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.PIPE, cwd=tempfile.gettempdir())
    tree = [0]
    peaks: dict[int, int] = {}
    done = threading.Event()

    def sampler() -> None:
        while not done.is_set():
            tree[0] = max(tree[0], tree_kb(proc.pid, peaks))
            done.wait(0.01)

    thread = threading.Thread(target=sampler, daemon=True)
    if sample:
        thread.start()
    _, status, _ = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    done.set()
    if sample:
        thread.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode() if proc.stderr else ""
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv[:4])} exited {proc.returncode}: {err[-2000:]}")
    out.seek(0)
    rss = max(peaks.values(), default=0) / 1024 if sample else None
    return {"wall": wall, "rss_mb": rss, "tree_mb": tree[0] / 1024 if sample else None, "stdout": out.read()}


def fresh_log_dir(work: Path, name: str, files: dict[str, Path]) -> Path:
    d = work / name
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir()
    for target, src in files.items():
        os.link(src, d / target)
    return d


def echoops_cmd(code: Path | None) -> tuple[list[str], dict[str, str]]:
    """argv prefix and extra env to run echoops (this checkout's console script, or `--code DIR`)."""
    if code is None:
        script = Path(sys.executable).with_name("echoops")
        return ([str(script)] if script.exists() else [sys.executable, "-m", "echoops"]), {}
    return [sys.executable, "-m", "echoops"], {"PYTHONPATH": str(code)}


def orjson_rate(path: Path) -> float:
    """Lines a second of the bare `for line in f: orjson.loads(line)` loop (best of 3)."""
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        n = 0
        with open(path, "rb") as fh:
            for line in fh:
                orjson.loads(line)
                n += 1
        best = min(best, time.perf_counter() - t0)
    return n / best


def stored_slo(log_dir: Path) -> tuple:
    """(total, errors, slow, p95, p99) from the store a tick left in `log_dir`."""
    from echoops.core import store
    from echoops.core.config import load_settings
    from echoops.core.slo import aggregates, sketch

    s = load_settings({"ECHOOPS_LOG_DIR": str(log_dir)})
    conn = aggregates.db(s)
    total, errors, slow = conn.execute("SELECT sum(total), sum(errors), sum(slow) FROM slo_minute").fetchone()
    acc = sketch.dense()
    for (blob,) in conn.execute("SELECT sketch FROM slo_hour"):
        sketch.merge_into(acc, blob)
    p95, p99 = sketch.quantiles(acc, (0.95, 0.99))
    store.close_all()
    return total, errors, slow, p95, p99


def in_process_slo(work: Path, src: Path, code: Path | None) -> float:
    """`aggregates.ingest` alone, in a child Python with this checkout (or --code) on its path."""
    d = fresh_log_dir(work, "inproc", {"requests.ndjson": src})
    script = (
        "import sys, time; sys.path.insert(0, sys.argv[1]);"
        "from echoops.core.config import load_settings; from echoops.core.slo import aggregates;"
        "s = load_settings({'ECHOOPS_LOG_DIR': sys.argv[2]}); aggregates.db(s); t = time.perf_counter();"
        "aggregates.ingest(s, now=float(sys.argv[3])); print(time.perf_counter() - t)"
    )
    r = run([sys.executable, "-c", script, str(code or ROOT), str(d), str(END)], dict(os.environ))
    return float(r["stdout"])


def fmt(xs: list[float]) -> str:
    return f"{statistics.median(xs):.3f} s ({min(xs):.3f}..{max(xs):.3f})"


def memory_run(name: str, work: Path, src: Path, cmd: list[str], extra: dict) -> dict:
    """One more, untimed run of `name` on `src` with the process tree's RSS sampled."""
    if name == "echoops":
        d = fresh_log_dir(work, "tick", {"requests.ndjson": src})
        return run([*cmd, "slo", "tick", "--now", END_ISO], {**bench_env(d), **extra}, sample=True)
    script = DUCK_SLO if name == "duckdb" else NAIVE
    return run([sys.executable, "-c", script, str(src)], dict(os.environ), sample=True)


def slo_size(args: argparse.Namespace, work: Path, n: int, cmd: list[str], extra: dict) -> dict:
    from slo_ingest import generate

    src = work / f"requests_{n}.ndjson"
    generate(src, n)
    size_mb = src.stat().st_size / 1e6
    names = ["echoops", "duckdb"] + (["naive"] if n <= args.naive_max else [])
    runs: dict[str, list[dict]] = {k: [] for k in names}
    inproc = []
    for rnd in range(args.rounds):
        order = names[rnd % len(names) :] + names[: rnd % len(names)]
        for name in order:
            if name == "echoops":
                d = fresh_log_dir(work, "tick", {"requests.ndjson": src})
                r = run([*cmd, "slo", "tick", "--now", END_ISO], {**bench_env(d), **extra})
                r["stored"] = stored_slo(d)
            elif name == "duckdb":
                r = run([sys.executable, "-c", DUCK_SLO, str(src)], dict(os.environ))
            else:
                r = run([sys.executable, "-c", NAIVE, str(src)], dict(os.environ))
            runs[name].append(r)
        inproc.append(in_process_slo(work, src, args.code))
    memory = {name: memory_run(name, work, src, cmd, extra) for name in names}  # untimed, sampled
    duck = orjson.loads(runs["duckdb"][0]["stdout"].strip().splitlines()[-1])
    total, errors, slow, p95, p99 = runs["echoops"][0]["stored"]
    exact = (total, errors, slow) == tuple(duck[:3])
    close = abs(p95 - duck[3]) <= 0.01 * duck[3] and abs(p99 - duck[4]) <= 0.01 * duck[4]
    walls = {k: [r["wall"] for r in v] for k, v in runs.items()}
    ratio = statistics.median(walls["echoops"]) / statistics.median(walls["duckdb"])
    print(f"\n### {n:,} request lines ({size_mb:.0f} MB), {args.rounds} interleaved rounds, load {load()}\n")
    print("| process | wall, median (min..max) | peak RSS, largest process | peak RSS, process tree |")
    print("|---|---|---|---|")
    for name, label in (("echoops", "`echoops slo tick`"), ("duckdb", "DuckDB read_ndjson"), ("naive", "naive")):
        if name in runs:
            mem = memory[name]
            print(f"| {label} | {fmt(walls[name])} | {mem['rss_mb']:.1f} MB | {mem['tree_mb']:.1f} MB |")
    print(f"| echoops in process (`aggregates.ingest`) | {fmt(inproc)} | | |")
    print(
        f"\nechoops / DuckDB: {ratio:.2f}x"
        + (
            f"; echoops / naive: {statistics.median(walls['echoops']) / statistics.median(walls['naive']):.2f}x"
            if "naive" in walls
            else ""
        )  # fmt: skip
    )
    print(
        f"accuracy: counts {'equal' if exact else 'DIFFER'} ({total:,} requests, {errors:,} errors, {slow:,} slow); "
        f"p95 {p95:.2f} vs {duck[3]} ({(p95 / duck[3] - 1) * 100:+.2f}%), "
        f"p99 {p99:.2f} vs {duck[4]} ({(p99 / duck[4] - 1) * 100:+.2f}%)"
    )
    return {
        "n": n,
        "ratio": ratio,
        "exact": exact and close,
        "rss": memory["echoops"]["rss_mb"],
        "tree": memory["echoops"]["tree_mb"],
        "vs_naive": (statistics.median(walls["echoops"]) / statistics.median(walls["naive"]))
        if "naive" in walls
        else None,
    }


def costs_run(args: argparse.Namespace, work: Path, cmd: list[str], extra: dict) -> dict:
    from costs_ingest import usage_lines
    from harness import write_ndjson

    from echoops.core.costs import prices

    day0 = END - 86400
    now_iso = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(day0 + 43200 + 60))
    src = work / "ai_usage.ndjson"
    size = write_ndjson(src, usage_lines(args.costs_lines, day0))
    runs: dict[str, list[dict]] = {"echoops": [], "duckdb": []}
    for rnd in range(args.rounds):
        for name in ["echoops", "duckdb"] if rnd % 2 == 0 else ["duckdb", "echoops"]:
            if name == "echoops":
                d = fresh_log_dir(work, "costs", {"ai_usage.ndjson": src})
                r = run([*cmd, "costs", "tick", "--now", now_iso], {**bench_env(d), **extra})
                from echoops.core import costs, store
                from echoops.core.config import load_settings

                conn = store.db(load_settings({"ECHOOPS_LOG_DIR": str(d)}), costs.SCHEMA)
                r["rows"] = {
                    row[0]: tuple(row[1:])
                    for row in conn.execute("SELECT model, calls, input_tokens, output_tokens, cost_p FROM costs_spend")
                }
                store.close_all()
            else:
                r = run([sys.executable, "-c", DUCK_COSTS, str(src)], dict(os.environ))
            runs[name].append(r)
    table = prices.price_table()
    expected: dict[str, list[int]] = {}
    for model, calls, tin, tout, usd, _ in orjson.loads(runs["duckdb"][0]["stdout"].strip().splitlines()[-1]):
        name = prices.canonical(model, table)
        p_in, p_out, _ = prices.price_of(name, table)
        row = expected.setdefault(name, [0, 0, 0, 0])
        row[0] += calls
        row[1] += tin
        row[2] += tout
        row[3] += int(Decimal(usd) * 10**12) + tin * p_in + tout * p_out
    got = runs["echoops"][0]["rows"]
    exact = {k: tuple(v) for k, v in expected.items()} == got
    walls = {k: [r["wall"] for r in v] for k, v in runs.items()}
    ratio = statistics.median(walls["echoops"]) / statistics.median(walls["duckdb"])
    print(f"\n### costs: {args.costs_lines:,} AI-usage lines ({size / 1e6:.0f} MB), load {load()}\n")
    print("| process | wall, median (min..max) | peak RSS, largest process | peak RSS, process tree |")
    print("|---|---|---|---|")
    memory = {
        "echoops": run(
            [*cmd, "costs", "tick", "--now", now_iso],
            {**bench_env(fresh_log_dir(work, "costs", {"ai_usage.ndjson": src})), **extra},
            sample=True,
        ),
        "duckdb": run([sys.executable, "-c", DUCK_COSTS, str(src)], dict(os.environ), sample=True),
    }  # untimed, the process tree's RSS sampled
    for name, label in (("echoops", "`echoops costs tick`"), ("duckdb", "DuckDB SUM ... GROUP BY model")):
        mem = memory[name]
        print(f"| {label} | {fmt(walls[name])} | {mem['rss_mb']:.1f} MB | {mem['tree_mb']:.1f} MB |")
    verdict = "EQUAL" if exact else "DIFFER"
    print(f"\nechoops / DuckDB: {ratio:.2f}x; calls, tokens and pico-dollars per model {verdict}")
    if not exact:
        print("  expected", expected, "\n  stored  ", got)
    return {"ratio": ratio, "exact": exact}


def callgrind(n: int, work: Path, code: Path | None) -> None:
    """Instructions per line of a single-process ingest of `n` lines (minus an import-only run)."""
    if not shutil.which("valgrind"):
        print("valgrind not found: no instruction counts")
        return
    from slo_ingest import generate

    src = work / "requests_cg.ndjson"
    generate(src, n)
    counts = {}
    for label, lines in (("import", 0), ("ingest", n)):
        d = fresh_log_dir(work, "cg", {"requests.ndjson": src} if lines else {})
        script = (
            "import sys; sys.path.insert(0, sys.argv[1]);"
            "from echoops.core.config import load_settings; from echoops.core.slo import aggregates;"
            "s = load_settings({'ECHOOPS_LOG_DIR': sys.argv[2], 'ECHOOPS_INGEST_PROCESSES': '1'});"
            "aggregates.db(s); aggregates.ingest(s, now=float(sys.argv[3]))"
        )
        out = work / f"cg.{label}"
        env = {**os.environ, "PYTHONHASHSEED": "0"}
        argv = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable, "-c", script]
        subprocess.run([*argv, str(code or ROOT), str(d), str(END)], env=env, check=True, capture_output=True)
        total = next(line for line in out.read_text().splitlines() if line.startswith("summary:"))
        counts[label] = int(total.split()[1])
    per_line = (counts["ingest"] - counts["import"]) / n
    print(f"\ncallgrind: {per_line:,.0f} instructions a line ({n:,} lines, one process)")


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def measure(args: argparse.Namespace, work: Path) -> bool:
    found = subprocess.run([sys.executable, "-c", "import duckdb; print(duckdb.__version__)"], capture_output=True)
    if found.returncode != 0:  # not imported here: this process's size would show in its children's
        raise SystemExit("duckdb is not installed: pip install -e '.[bench]'")
    cmd, extra = echoops_cmd(Path(args.code) if args.code else None)
    args.code = Path(args.code).resolve() if args.code else None
    if args.code:
        precompile(args.code)  # like this checkout (harness.main): an A/B of code, not of bytecode
    print(f"DuckDB {found.stdout.decode().strip()}, orjson {orjson.__version__}; echoops from {args.code or ROOT}")
    from slo_ingest import generate

    probe = work / "orjson_probe.ndjson"
    generate(probe, 1_000_000)
    print(f"bare orjson loop (`for line in f: orjson.loads(line)`): {orjson_rate(probe):,.0f} lines/s")
    probe.unlink()
    ok = True
    results = []
    for n in (int(x) for x in args.sizes.split(",")):
        results.append(slo_size(args, work, n, cmd, extra))
        for f in work.glob("requests_*.ndjson"):
            f.unlink()
    if args.costs_lines:
        c = costs_run(args, work, cmd, extra)
        fits = c["ratio"] <= TARGET_RATIO and c["exact"]
        ok &= fits
        print(f"costs tick {args.costs_lines:,} lines <= {TARGET_RATIO}x DuckDB, exact: {'PASS' if fits else 'FAIL'}")
    for r in results:
        if not r["exact"]:
            ok = False
            print(f"{r['n']:,} lines: accuracy FAIL")
        if r["n"] >= 1_000_000:
            fits = r["ratio"] <= TARGET_RATIO
            ok &= fits
            verdict = "PASS" if fits else "FAIL"
            print(f"slo tick {r['n']:,} lines <= {TARGET_RATIO}x DuckDB: {r['ratio']:.2f}x {verdict}")
        if r["n"] >= 5_000_000:
            fits = r["rss"] < TARGET_RSS_MB
            ok &= fits
            print(
                f"slo tick {r['n']:,} lines peak RSS < {TARGET_RSS_MB:.0f} MB: largest process {r['rss']:.1f} MB, "
                f"tree {r['tree']:.1f} MB {'PASS' if fits else 'FAIL'}"
            )
        if r["n"] <= 100_000 and r["vs_naive"] is not None:
            fits = r["vs_naive"] < 1.0
            ok &= fits
            print(f"slo tick {r['n']:,} lines faster than naive: {r['vs_naive']:.2f}x {'PASS' if fits else 'FAIL'}")
    if args.callgrind:
        callgrind(args.callgrind, work, args.code)
    return ok


if __name__ == "__main__":
    sys.exit(
        main(
            __doc__,
            measure,
            Option("--sizes", "100000,1000000,5000000", "request lines per size, comma-separated"),
            Option("--rounds", 3),
            Option("--costs-lines", 1_000_000, "0 skips the costs run"),
            Option("--naive-max", 1_000_000, "largest size the naive script runs at"),
            Option("--callgrind", 0, "lines for an instruction count (0: none)"),
            Option("--code", "", "another checkout's root to run instead of this one"),
            tmp_prefix="ingest-duckdb",
        )
    )
