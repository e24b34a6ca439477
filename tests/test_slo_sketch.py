"""The latency sketch: merged minute sketches give p95/p99 within 1% relative of the exact values."""

from __future__ import annotations

import math
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from echoops.core.slo import sketch

latency = st.one_of(
    st.just(0.0),
    st.floats(min_value=sketch.MIN_MS, max_value=1e7, allow_nan=False, allow_infinity=False),
    st.integers(min_value=1, max_value=60_000),
)


def exact(values: list[float], q: float) -> float:
    ordered = sorted(float(v) for v in values)
    return ordered[sketch.rank(q, len(ordered))]


def within_1pct(estimate: float, truth: float) -> bool:
    if truth == 0.0:
        return estimate == 0.0
    return abs(estimate - truth) <= 0.01 * truth


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(latency, min_size=0, max_size=60), min_size=1, max_size=12))
def test_merged_minute_sketches_p95_p99_within_1pct(minutes):
    blobs = [sketch.encode(Counter(sketch.bucket_of(v) for v in m)) for m in minutes]
    acc = sketch.dense()
    for blob in blobs:
        sketch.merge_into(acc, blob)
    values = [v for m in minutes for v in m]
    p95, p99, p50 = sketch.quantiles(acc, (0.95, 0.99, 0.5))
    if not values:
        assert (p95, p99, p50) == (None, None, None)
        return
    for est, q in ((p95, 0.95), (p99, 0.99), (p50, 0.5)):
        assert within_1pct(est, exact(values, q)), (q, est, exact(values, q))


@given(latency)
def test_every_bucket_value_is_within_1pct_of_its_members(x):
    assert within_1pct(sketch.value_of(sketch.bucket_of(x)), float(x))


def test_encode_decode_roundtrip_and_size():
    counts = {0: 3, 51: 1, 400: 70_000, 1445: 2}
    blob = sketch.encode(counts)
    assert len(blob) == 6 * 4 and sketch.to_dict(blob) == counts
    assert sketch.encode({}) == b"" and sketch.to_dict(b"") == {}


@pytest.mark.parametrize("bad", [-1, -0.001, math.nan, math.inf, 1e10, "5", None, True, [1]])
def test_bucket_of_rejects_junk(bad):
    with pytest.raises(ValueError):
        sketch.bucket_of(bad)


def test_keys_fit_the_dense_accumulator():
    assert sketch.bucket_of(sketch.MAX_MS) < sketch.NUM_BUCKETS
    assert sketch.bucket_of(sketch.MIN_MS) > 0 and sketch.bucket_of(sketch.MIN_MS / 2) == 0
