#!/usr/bin/env python3
"""The ingest folds alone: compiled (echoops.core.native) against their Python definitions (issue 20).

Generates --lines request lines (bench/slo_ingest.py's generator) and as many AI-usage lines
(bench/costs_ingest.py's), decodes them once into the typed structs the ingest folds (chunks of
400 lines, as ndjson.Reader hands them over), then times each fold over all of them, Python and
C alternating, best of --repeat: `slo.aggregates._fold_typed_py` vs `native.fold_requests`, and
`costs.ingest._fold_typed_py` vs `native.fold_usage`. Both must give the same result (checked).
Target: the compiled fold at least 2x faster than the Python one, for each.

    .venv/bin/python bench/native_fold.py [--lines 1000000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

from costs_ingest import usage_lines
from harness import Option, main, write_ndjson
from slo_ingest import END, generate

TARGET = 2.0
CHUNK = 400


class Bad(Counter):
    def count_bad(self, reason: str, n: int = 1) -> None:
        self[reason] += n


def chunks(path: Path, typed) -> list[list]:
    lines = path.read_bytes().splitlines(keepends=True)
    out = []
    for i in range(0, len(lines), CHUNK):
        got = typed.chunk(b"".join(lines[i : i + CHUNK]))
        if got is None:
            raise SystemExit(f"{path.name}: a chunk the typed decoder refused")
        out.append(got)
    return out


def best(fn, repeat: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return min(times), result


def measure(args: argparse.Namespace, work: Path) -> bool:
    from echoops.core import clock, native
    from echoops.core.costs import ingest as costs_ingest
    from echoops.core.slo import aggregates

    if native.fold_requests is None or native.fold_usage is None:
        raise SystemExit("echoops.core.native._ingest is not built: pip install -e . (gcc and the Python headers)")
    req, use = work / "requests.ndjson", work / "ai_usage.ndjson"
    generate(req, args.lines)
    write_ndjson(use, usage_lines(args.lines, END - 86400))
    req_chunks = chunks(req, aggregates.request_lines())
    use_chunks = chunks(use, costs_ingest.usage_lines())
    oldest = int(END // 60) - 31 * 1440

    def slo_fold(fold):
        def run():
            agg, stamps, bcache, bad = aggregates._Agg(), clock.Stamps(END), {}, Bad()
            for c in req_chunks:
                fold(c, agg, stamps, bcache, 800.0, oldest, bad)
            return agg.per, agg.old, bad  # the key lists, order included: compared untimed

        return run

    def costs_fold(fold):
        def run():
            per_day, stamps, bad = {}, clock.Stamps(END), Counter()
            for c in use_chunks:
                fold(c, per_day, stamps, bad)
            return per_day, bad

        return run

    ok = True
    print(f"\n{args.lines:,} lines each, decoded once into chunks of {CHUNK}; best of {args.repeat}\n")
    print("| fold | Python | compiled | speed-up | same result |")
    print("|---|---|---|---|---|")
    pairs = (
        ("SLO requests", slo_fold(aggregates._fold_typed_py), slo_fold(aggregates._fold_typed)),
        ("AI usage", costs_fold(costs_ingest._fold_typed_py), costs_fold(costs_ingest._fold_typed)),
    )
    for name, py, c in pairs:
        t_py, r_py = best(py, args.repeat)
        t_c, r_c = best(c, args.repeat)
        same = r_py == r_c
        ok &= same and t_py / t_c >= TARGET
        print(
            f"| {name} | {t_py:.3f} s ({t_py / args.lines * 1e9:.0f} ns/line) | {t_c:.3f} s "
            f"({t_c / args.lines * 1e9:.0f} ns/line) | {t_py / t_c:.2f}x | {'yes' if same else 'NO'} |"
        )
    print(f"\n{'PASS' if ok else 'FAIL'}: each compiled fold >= {TARGET}x its Python definition, same result")
    return ok


if __name__ == "__main__":
    sys.exit(main(__doc__, measure, Option("--lines", 1_000_000), Option("--repeat", 3), tmp_prefix="native"))
