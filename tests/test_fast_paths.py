"""The ingest fast paths accept exactly what the careful paths accept (issue 12, item 7).

A line's fate must not depend on the lines before it: a list of generated lines, good and
bad, folded in one go (caches warm, the fast path taken wherever it can be) must give what
the careful path gives for each line on its own, for the SLO request ingest
(`aggregates._fold` vs `_careful`) and the costs usage ingest (`aggregate` vs `line_spend`).
The ledger import's fast/careful property test is in test_portal_ledger.py.
"""

from __future__ import annotations

from collections import Counter

import orjson
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from echoops.core import clock, costs
from echoops.core.costs import ingest as costs_ingest
from echoops.core.slo import aggregates

NOW = 1_795_780_800.0  # 2026-11-27T12:00:00Z
TARGET_MS = 800.0


class BadLines(Counter):
    """What _fold needs of its ndjson.Reader: somewhere to count bad lines by reason."""

    def count_bad(self, reason: str, n: int = 1) -> None:
        self[reason] += n


def write_lines(path, records) -> None:
    with open(path, "ab") as fh:
        fh.write(b"".join(orjson.dumps(r) + b"\n" for r in records))


# --- the cases from the issue ---------------------------------------------------------------------------


def test_slo_fast_path_refuses_what_the_careful_path_refuses(log_dir, settings):
    ok = {"ts": "2026-11-27T11:58:00.250Z", "status": 200, "latency_ms": 100}  # warms the minute's cache
    write_lines(
        log_dir / "requests.ndjson",
        [
            ok,
            {**ok, "status": 5000},
            {**ok, "status": -1},
            {**ok, "status": 1000},
            {**ok, "ts": "2026-11-27T11:58:61Z"},
            {**ok, "ts": "2026-11-27T11:58:00+05:00Z"},
            {**ok, "ts": "2026-11-27T11:58:00.12aZ"},
            {**ok, "status": 503},
        ],
    )
    report = aggregates.ingest(settings, now=NOW)
    assert report["bad_reasons"] == {"bad_status": 3, "bad_ts": 3}
    conn = aggregates.db(settings)
    assert [tuple(r) for r in conn.execute("SELECT minute, total, errors FROM slo_minute")] == [
        (int((NOW - 120) // 60), 2, 1)
    ]


def test_costs_fast_path_refuses_an_impossible_time_of_day(log_dir, settings):
    write_lines(
        log_dir / "ai_usage.ndjson",
        [
            {"ts": "2026-11-27T10:00:00.000Z", "model": "gpt-4o", "usd": 1.0},
            {"ts": "2026-11-27T99:99:99Z", "model": "gpt-4o", "usd": 10.0},
            {"ts": "2026-11-27T10:00:61.000Z", "model": "gpt-4o", "usd": 10.0},
            {"ts": "2026-11-27T10:00:00.5+01:00Z", "model": "gpt-4o", "usd": 10.0},
        ],
    )
    report = costs.tick(s=settings, now=NOW)
    assert (report["calls"], report["bad"]) == (1, {"bad_ts": 3})
    assert report["global"]["spent_usd"] == 1.0


# --- generated lines: good and bad, in every order ------------------------------------------------------

# Minute prefixes: around now (the boundary minute holding now + 5 min included), before the
# retention window, tomorrow, malformed, and the other spellings fromisoformat takes.
PREFIXES = [
    "2026-11-27T11:58",
    "2026-11-27T11:59",
    "2026-11-27T12:04",
    "2026-11-27T12:05",
    "2026-11-27T12:06",
    "2026-11-28T11:59",
    "2026-10-01T00:00",
    "2026-11-27 11:57",
    "2026-W48-5T11:56",
    "2026-11-27T24:00",
    "2026-13-27T11:58",
    "2026-11-31T11:58",
    "2026-11-27T11:5",
    "2026-11-27T11:58:00",
]
SECONDS = [":00", ":07", ":59", ":60", ":61", ":5", ":0\u0661", "", ":00:00"]
RESTS = [
    ".250Z",
    ".999Z",
    "Z",
    ".5Z",
    ".25Z",
    ".123456Z",
    ".1234567Z",
    ".000000000000Z",
    ",5Z",
    ".Z",
    " Z",
    ".12aZ",
    "+05:00Z",
    "-00:00Z",
    "ZZ",
    ".5 Z",
    "z",
    "",
    "+00:00",
    ".\u0661\u0662Z",
]
STAMPS = st.one_of(
    st.builds(lambda p, s, r: p + s + r, st.sampled_from(PREFIXES), st.sampled_from(SECONDS), st.sampled_from(RESTS)),
    st.sampled_from([NOW - 90, NOW - 90.5, NOW + 299, NOW + 301, NOW - 40 * 86400, 1795780740]),
    st.sampled_from([True, None, "", "yesterday", [1], {"a": 1}, float("nan")]),
)


def _slo_line(draw) -> dict:
    line = {}
    if draw(st.integers(0, 15)):
        line["ts"] = draw(STAMPS)
    if draw(st.integers(0, 15)):
        line["status"] = draw(
            st.one_of(
                st.sampled_from([200, 204, 404, 499, 500, 503, 999, 0]),
                st.sampled_from([1000, 5000, -1, 200.0, 500.5, True, False, "200", None]),
            )
        )
    if draw(st.integers(0, 15)):
        line["latency_ms"] = draw(
            st.one_of(
                st.sampled_from([0, 1, 12.5, 800, 800.0, 801, 1e5]),
                st.sampled_from([True, False, -1, "5", None, 1e12, float("inf")]),
            )
        )
    return line


slo_lines = st.lists(st.composite(lambda draw: _slo_line(draw))(), min_size=1, max_size=40)


OLDEST = int(NOW // 60) - 31 * 1440  # SLO_WINDOW_DAYS=30 + 1 day, as aggregates.retention_minute


def _counts(agg: aggregates._Agg) -> dict:
    return {m: Counter(keys) for m, keys in agg.per.items() if keys}


@hsettings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(slo_lines)
def test_slo_fast_path_equals_the_careful_path_line_by_line(batch):
    fast, fast_bad = aggregates._Agg(), BadLines()
    aggregates._fold(batch, fast, clock.Stamps(NOW), {}, TARGET_MS, OLDEST, fast_bad)
    careful, careful_bad = aggregates._Agg(), BadLines()
    for line in batch:  # each line on its own, with nothing cached: the careful path's answer
        aggregates._careful(line, careful, clock.Stamps(NOW), TARGET_MS, OLDEST, careful_bad)
    assert (_counts(fast), fast.old, fast_bad) == (_counts(careful), careful.old, careful_bad)


def _usage_line(draw) -> dict:
    line = {}
    if draw(st.integers(0, 15)):
        line["ts"] = draw(STAMPS)
    if draw(st.integers(0, 15)):
        line["model"] = draw(st.sampled_from(["gpt-4o", "gpt-4o-mini", "", " ", "a\nb", "x" * 201, 7, None]))
    if draw(st.booleans()):
        line["usd"] = draw(st.sampled_from([0.0012, 1, 0, -1, 10**7, True, "1", None]))
    if draw(st.booleans()):
        line["input_tokens"] = draw(st.sampled_from([812, 0, 2.0, 2.5, -3, 10**10, True, "5", None]))
        line["output_tokens"] = draw(st.sampled_from([95, 0, 3.0, -1, None]))
    return line


usage_lines = st.lists(st.composite(lambda draw: _usage_line(draw))(), min_size=1, max_size=40)


@hsettings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(usage_lines)
def test_costs_fast_path_equals_the_careful_path_line_by_line(batch):
    bad_fast: Counter = Counter()
    fast = costs_ingest.aggregate(iter([batch]), bad_fast, now=NOW)
    careful: dict = {}
    bad_careful: Counter = Counter()
    for line in batch:  # line_spend is the careful path: each line decided on its own
        found = costs_ingest.line_spend(line, NOW)
        if isinstance(found, str):
            bad_careful[found] += 1
            continue
        day, model, add = found
        key = (clock.day_iso(day * 86400), model)
        careful[key] = [a + b for a, b in zip(careful.get(key, [0] * 6), add, strict=True)]
    assert {k: v for k, v in fast.items() if v[0]} == careful
    assert bad_fast == bad_careful


@pytest.mark.parametrize(
    "stamp",
    ["2026-11-27T11:58:07.250Z", "2026-11-27T11:58:07Z", "2026-11-27T11:58:07.123456Z", "2026-11-27 11:58:07.5Z"],
)
def test_stamps_learn_a_minute_from_an_accepted_stamp(stamp):
    stamps = clock.Stamps(NOW)
    assert stamps.fast_minute(stamp) is None  # nothing learnt yet: the careful path decides
    assert stamps.careful(stamp) == clock.line_ts(stamp, NOW)
    assert stamps.fast_minute(stamp) == int(clock.line_ts(stamp, NOW) // 60)
    assert stamps.fast_minute(stamp[:16] + ":61Z") is None
    assert stamps.fast_minute(stamp[:16] + ":00+05:00Z") is None


@hsettings(max_examples=500, deadline=None)
@given(st.lists(STAMPS, max_size=30), st.lists(STAMPS, min_size=1, max_size=30))
def test_a_stamp_the_fast_path_takes_is_one_line_ts_accepts_in_that_minute(taught, asked):
    stamps = clock.Stamps(NOW)
    for stamp in taught:
        stamps.careful(stamp)
    for stamp in asked:
        minute = stamps.fast_minute(stamp)
        if minute is not None:
            ts = clock.line_ts(stamp, NOW)
            assert isinstance(ts, float) and int(ts // 60) == minute, stamp


@pytest.mark.parametrize("second", ["2026-11-27T11:58:00", "2026-11-27T11:59:59", "2026-11-27T11:59:09"])
def test_second_bounds_hold_exactly_the_stamps_of_that_second(second):
    lo, hi = clock.second_bounds(second)
    assert lo <= second + "Z" < hi and lo <= second + ".999999Z" < hi and lo <= second < hi
    for other in (second[:18], second[:18] + "/", second[:18] + ":", "2026-11-27T11:57:59Z", "2026-11-27T12:00:00Z"):
        if not other.startswith(second):
            assert not lo <= other < hi, other
