"""Mergeable log-bucket latency sketch (DDSketch-style) for per-minute SLO aggregates.

A latency x (ms) falls in bucket `floor(log(x) / log(GAMMA)) + OFFSET`; bucket i (i > 0)
covers [GAMMA^(i-OFFSET), GAMMA^(i-OFFSET+1)) and is reported as 2*GAMMA^(i-OFFSET+1)/(1+GAMMA),
which is within ALPHA relative of every value in it. GAMMA = (1+ALPHA)/(1-ALPHA) with
ALPHA = 0.0099, so quantiles are within 1% relative of the exact order statistic (the
0.01% left over absorbs float rounding at bucket edges). Values below MIN_MS (0 included)
share bucket 0, reported as 0. Sketches merge by adding counts, so a window's percentile
comes from merging minute (or hour) sketches, never from averaging percentiles.

Stored form: little-endian uint16 keys then uint32 counts (6 bytes per non-empty bucket).
"""

from __future__ import annotations

import math
import sys
from array import array
from collections.abc import Iterable, Mapping

ALPHA = 0.0099
GAMMA = (1 + ALPHA) / (1 - ALPHA)
INV_LOG_GAMMA = 1.0 / math.log(GAMMA)
OFFSET = 400.0  # keeps keys positive for every x >= MIN_MS, so int() is floor()
MIN_MS = 0.001
MAX_MS = 1e9  # ~11.6 days: anything longer is not a request latency
NUM_BUCKETS = int(math.log(MAX_MS) * INV_LOG_GAMMA + OFFSET) + 2
_SWAP = sys.byteorder != "little"


def bucket_of(latency_ms: object) -> int:
    """Bucket key of one latency in ms; ValueError for non-numbers, negatives, NaN or > MAX_MS."""
    if latency_ms.__class__ is bool or not isinstance(latency_ms, (int, float)):
        raise ValueError("latency_ms is not a number")
    x = float(latency_ms)
    if not (0.0 <= x <= MAX_MS):  # also rejects NaN
        raise ValueError("latency_ms out of range")
    if x < MIN_MS:
        return 0
    return int(math.log(x) * INV_LOG_GAMMA + OFFSET)


def value_of(key: int) -> float:
    """Representative latency (ms) of bucket `key`: within ALPHA relative of its members."""
    if key <= 0:
        return 0.0
    return 2.0 * GAMMA ** (key - OFFSET + 1) / (1.0 + GAMMA)


def encode(counts: Mapping[int, int]) -> bytes:
    """Pack {bucket: count} (counts > 0) as uint16 keys then uint32 counts."""
    keys = sorted(k for k, c in counts.items() if c)
    ka = array("H", keys)
    ca = array("I", [counts[k] for k in keys])
    if _SWAP:
        ka.byteswap()
        ca.byteswap()
    return ka.tobytes() + ca.tobytes()


def decode(blob: bytes) -> tuple[array, array]:
    """(keys, counts) arrays from `encode` output."""
    n = len(blob) // 6
    ka = array("H")
    ca = array("I")
    ka.frombytes(blob[: 2 * n])
    ca.frombytes(blob[2 * n : 6 * n])
    if _SWAP:
        ka.byteswap()
        ca.byteswap()
    return ka, ca


def to_dict(blob: bytes | None) -> dict[int, int]:
    """{bucket: count} from a stored sketch (empty for None)."""
    if not blob:
        return {}
    ka, ca = decode(blob)
    return dict(zip(ka, ca, strict=True))


def dense() -> list[int]:
    """An empty dense sketch (a count per bucket): the fast accumulator for merges."""
    return [0] * NUM_BUCKETS


def merge_into(acc: list[int], blob: bytes | None) -> None:
    """Add a stored sketch into the dense accumulator `acc`."""
    if not blob:
        return
    ka, ca = decode(blob)
    for k, c in zip(ka, ca, strict=True):
        acc[k] += c


def add_counts(acc: dict[int, int], counts: Mapping[int, int]) -> None:
    """Add {bucket: count} into the sparse accumulator `acc`."""
    get = acc.get
    for k, c in counts.items():
        acc[k] = get(k, 0) + c


def rank(q: float, n: int) -> int:
    """0-based rank of quantile `q` among `n` sorted values (the lower order statistic)."""
    return min(n - 1, max(0, int(math.floor(q * (n - 1)))))


def quantiles(acc: Iterable[int], qs: Iterable[float]) -> list[float | None]:
    """Estimated quantiles (ms) from a dense accumulator; None for each when it is empty."""
    counts = list(acc)
    n = sum(counts)
    qs = list(qs)
    if n == 0:
        return [None] * len(qs)
    ranks = sorted((rank(q, n), i) for i, q in enumerate(qs))
    out: list[float | None] = [None] * len(qs)
    cum = 0
    j = 0
    for key, c in enumerate(counts):
        if not c:
            continue
        cum += c
        while j < len(ranks) and ranks[j][0] < cum:
            out[ranks[j][1]] = value_of(key)
            j += 1
        if j == len(ranks):
            break
    return out
