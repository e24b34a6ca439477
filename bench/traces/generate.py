#!/usr/bin/env python3
"""Write the four shipped queue traces (one-minute samples, queue.ndjson format) into this folder.

Each trace is an app whose fixed pool of `workers` serves `cap` jobs/min each, fed arrivals
drawn around a rate curve with Gaussian noise; deterministic per seed (the files in git are
exactly what this prints: tests/test_scale_methods.py regenerates and compares them).

- ramp.ndjson    10 h: 20 jobs/min, up to 200 over 2 h, 2 h flat, down in 1 h, then 20
- spike.ndjson   12 h: 20 jobs/min with three bursts (250/min 15 min, 400/min 10 min, 200/min 30 min)
- daily.ndjson    8 days: 20 jobs/min at night, a hump to 120 between 06:00 and 20:00 UTC
- flat.ndjson     4 days: 60 jobs/min with 15% noise (no pattern to find)

Usage: python bench/traces/generate.py [--out DIR]
"""

from __future__ import annotations

import argparse
import math
import random
import sys
from collections.abc import Callable
from pathlib import Path

import orjson

HERE = Path(__file__).resolve().parent
T0 = 1_788_739_200  # 2026-09-07T00:00:00Z, a Monday


def ramp(minute: int) -> float:
    if minute < 60:
        return 20.0
    if minute < 180:
        return 20.0 + (minute - 60) / 120 * 180
    if minute < 300:
        return 200.0
    if minute < 360:
        return 200.0 - (minute - 300) / 60 * 180
    return 20.0


SPIKES = ((120, 15, 250.0), (300, 10, 400.0), (480, 30, 200.0))  # (start minute, minutes, jobs/min)


def spike(minute: int) -> float:
    for start, length, rate in SPIKES:
        if start <= minute < start + length:
            return rate
    return 20.0


def daily(minute: int) -> float:
    hour = (minute / 60) % 24
    return 20.0 + 100.0 * math.sin(math.pi * (hour - 6) / 14) if 6 <= hour <= 20 else 20.0


def flat(minute: int) -> float:
    return 60.0


# name -> (rate curve, minutes, workers, jobs/min per worker, seed, relative noise)
TRACES: dict[str, tuple[Callable[[int], float], int, int, float, int, float]] = {
    "ramp": (ramp, 600, 2, 25.0, 7, 0.1),
    "spike": (spike, 720, 2, 25.0, 8, 0.1),
    "daily": (daily, 8 * 1440, 3, 25.0, 9, 0.1),
    "flat": (flat, 4 * 1440, 3, 25.0, 10, 0.15),
}


def trace(rate: Callable[[int], float], minutes: int, workers: int, cap: float, seed: int, noise: float) -> bytes:
    """NDJSON queue history (`ts, depth, workers, arrivals, completed`) of `minutes` one-minute samples."""
    rng = random.Random(seed)
    backlog = 0.0
    lines = []
    for i in range(minutes):
        r = rate(i)
        arrivals = max(0, round(rng.gauss(r, r * noise)))
        served = min(backlog + arrivals, workers * cap)
        backlog += arrivals - served
        sample = {"ts": T0 + 60 * i, "depth": round(backlog), "workers": workers}
        sample.update(arrivals=arrivals, completed=round(served))
        lines.append(orjson.dumps(sample))
    return b"\n".join(lines) + b"\n"


def build(name: str) -> bytes:
    return trace(*TRACES[name])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    ap.add_argument("--out", type=Path, default=HERE)
    args = ap.parse_args()
    for name in TRACES:
        path = args.out / f"{name}.ndjson"
        path.write_bytes(build(name))
        print(f"{path}: {TRACES[name][1]} samples")
    return 0


if __name__ == "__main__":
    sys.exit(main())
