#!/usr/bin/env python3
"""Import benchmark: `echoops portal import` of 1M purchases vs a bare sqlite executemany.

Target (issue 5): >= 100k rows/s for `echoops portal import` of 1M rows, whole process.
Baseline in the same run: the same rows, parsed with orjson into tuples with no validation,
inserted into the same schema with one executemany in one transaction plus the email index
(what SQLite alone costs on this machine). Runs alternate baseline and echoops so load hits
both alike. Files and log dirs live in a temp dir that is deleted afterwards.

    .venv/bin/python bench/portal_import.py [--rows 1000000] [--runs 3] [--csv]
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
from harness import Option, bench_env, echoops_argv, main, write_ndjson

TARGET = 100_000


def purchases(rows: int) -> Iterator[dict]:
    """`rows` purchases by 200k customers, one in four with an invoice number; deterministic."""
    rng = random.Random(78)
    for i in range(rows):
        yield {
            "id": f"pur_{i:08d}",
            "email": f"user{rng.randrange(200_000)}@example.com",
            "created": 1_700_000_000 + i * 30,
            "amount_cents": rng.randrange(100, 100_000),
            "currency": "usd",
            "description": "Pro plan, monthly",
            "invoice_number": f"INV-{i:08d}" if i % 4 == 0 else None,
            "fee_cents": rng.randrange(30, 3000),
        }


def write_csv(path: Path, rows: int) -> None:
    """The same purchases as CSV, a header line first (None becomes an empty cell)."""
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "email", "created", "amount_cents", "currency", "description", "invoice_number", "fee_cents"])
        w.writerows(rec.values() for rec in purchases(rows))


def baseline(path: Path, db: Path) -> float:
    """Seconds for parse (orjson, no checks) + executemany + index + commit into the same schema."""
    from echoops.core import store
    from echoops.core.portal import ledger

    t0 = time.perf_counter()
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA cache_size=-262144")
    for stmt in store._statements(ledger.SCHEMA.migrations[0]):
        if "INDEX" not in stmt:
            conn.execute(stmt)
    loads = orjson.loads
    now = time.time()
    with open(path, "rb") as fh:
        rows = [
            (r["id"], r["email"], float(r["created"]), r["amount_cents"], r["currency"], r["description"], "paid",
             r.get("invoice_number"), r.get("fee_cents"), None, None, "import", now)
            for r in map(loads, fh)
        ]  # fmt: skip
    conn.execute("BEGIN")
    conn.executemany(ledger.UPSERT_SQL, rows)
    conn.execute(ledger.EMAIL_INDEX_SQL)
    conn.execute("COMMIT")
    conn.close()
    return time.perf_counter() - t0


def run_echoops(path: Path, log_dir: Path) -> tuple[float, dict]:
    t0 = time.perf_counter()
    out = subprocess.run(
        [*echoops_argv(), "portal", "import", str(path), "--json"],
        env=bench_env(log_dir),
        capture_output=True,
        check=False,
    )
    elapsed = time.perf_counter() - t0
    if out.returncode != 0:
        raise SystemExit(f"echoops portal import failed ({out.returncode}): {out.stderr.decode()[-500:]}")
    return elapsed, orjson.loads(out.stdout)


def measure(args: argparse.Namespace, tmp: Path) -> bool:
    ndjson_file = tmp / "purchases.ndjson"
    write_ndjson(ndjson_file, purchases(args.rows))
    files = [("ndjson", ndjson_file)]
    if args.csv:
        csv_file = tmp / "purchases.csv"
        write_csv(csv_file, args.rows)
        files.append(("csv", csv_file))
    print(f"{args.rows:,} rows")
    results: dict[str, list[float]] = {}
    for run in range(args.runs):
        db = tmp / f"bare{run}.db"
        results.setdefault("baseline: bare executemany (no validation)", []).append(baseline(ndjson_file, db))
        for name, f in files:
            log_dir = tmp / f"logs-{name}-{run}"
            elapsed, report = run_echoops(f, log_dir)
            assert report["landed"] == args.rows and report["bad"] == 0, report
            results.setdefault(f"echoops portal import ({name}, empty ledger)", []).append(elapsed)
            if name == "ndjson":
                again, report = run_echoops(f, log_dir)  # every row an upsert of an existing id
                assert report["landed"] == args.rows, report
                results.setdefault("echoops portal import (ndjson, re-import: 1M upserts)", []).append(again)
            shutil.rmtree(log_dir, ignore_errors=True)
        for p in tmp.glob("bare*.db*"):
            p.unlink()
        print(f"run {run + 1}: load average {os.getloadavg()[0]:.2f}")
    print()
    print("| what | median s | rows/s (median) | best rows/s |")
    print("|---|---|---|---|")
    for name, times in results.items():
        med = statistics.median(times)
        print(f"| {name} | {med:.2f} | {args.rows / med:,.0f} | {args.rows / min(times):,.0f} |")
    ok = args.rows / statistics.median(results["echoops portal import (ndjson, empty ledger)"]) >= TARGET
    print(f"\ntarget >= {TARGET:,} rows/s (ndjson, empty ledger, median): {'PASS' if ok else 'MISS'}")
    return ok


if __name__ == "__main__":
    sys.exit(
        main(
            __doc__,
            measure,
            Option("--rows", 1_000_000),
            Option("--runs", 3),
            Option("--csv", False, "also time a CSV file of the same rows"),
            tmp_prefix="portal",
        )
    )
