"""The compiled ingest loops (echoops.core.native) equal their Python definitions (issue 20).

`native.fold_requests` is `slo.aggregates._fold_typed_py` in C, `native.fold_usage` is
`costs.ingest._fold_typed_py`. Both of each pair run here on the same
batches of decoded request lines, good and bad, with the caches warm across lines (same
second, same minute, epoch numbers between ISO stamps, minute boundaries, old and future
lines): the per-minute key lists (order included), the old-line count, the bad-line reasons
and what the stamp cache learnt must be identical. The fast == careful properties
(test_fast_paths.py, test_bulk_ingest.py) run over whichever loop is installed; here the
careful path's answer is checked against the C loop directly too.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from collections import Counter

import orjson
import pytest
from hypothesis import HealthCheck, assume, example, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from echoops.core import clock, native
from echoops.core.costs import ingest as costs_ingest
from echoops.core.slo import aggregates
from tests.needs import need

NOW = 1_795_780_800.0  # 2026-11-27T12:00:00Z
OLDEST = int(NOW // 60) - 31 * 1440
TARGET_MS = 800.0


@pytest.fixture(autouse=True)
def compiled():
    if native.fold_requests is None:
        need("echoops.core.native._ingest is not built (pip install -e . with gcc and the Python headers)")


class BadLines(Counter):
    def count_bad(self, reason: str, n: int = 1) -> None:
        self[reason] += n


# Stamps near each other, so the caches are hit and missed in every order: the same second
# with different fractions, the next second and minute, a bad second or rest, an old minute
# (beyond the retention), the minute holding now + skew (careful only), the future.
ISO = [
    "2026-11-27T11:58:00Z",
    "2026-11-27T11:58:00.250Z",
    "2026-11-27T11:58:00.1234567Z",
    "2026-11-27T11:58:01.5Z",
    "2026-11-27T11:58:59.999Z",
    "2026-11-27T11:59:00Z",
    "2026-11-27T11:58:60Z",
    "2026-11-27T11:58:0aZ",
    "2026-11-27T11:58:00.Z",
    "2026-11-27T11:58:00.12aZ",
    "2026-11-27T11:58:00z",
    "2026-11-27T11:58:00.250",
    "2026-11-27T11:58:00+00:00",
    "2026-11-27T11:58",
    "2026-11-27 11:58:00Z",
    "2026-10-01T00:00:00Z",
    "2026-11-27T12:04:00Z",
    "2026-11-27T12:05:00Z",
    "2027-01-01T00:00:00Z",
    "2026-02-30T00:00:00Z",
    "",
]
EPOCH = [
    1_795_780_680.0,
    1_795_780_680.5,
    1_795_780_739.999999,
    1_795_780_740.0,
    math.nextafter(1_795_780_740.0, 0),
    1_795_780_800.0 + 299,
    1_795_780_800.0 + 301,
    1_793_000_000.0,
    0.0,
    -1.0,
    1e400,
]
STATUS = [200, 200, 404, 499, 500, 503, 999, 1000, -1, 2**63, 2**64 + 1, -(2**63) - 1]
LATENCY = [12.5, 12.5, 0, 800, 800.0001, 801, 1e12, -0.0, -1, 1e400, 3]


def line(ts: object, status: int, latency: float) -> bytes:
    """One request line as the log has it (json spells 1e400 as Infinity: written by hand)."""

    def num(v: object) -> str:
        return "1e400" if v == math.inf else repr(v)

    stamp = f'"{ts}"' if isinstance(ts, str) else num(ts)
    return f'{{"ts":{stamp},"status":{status},"latency_ms":{num(latency)}}}'.encode()


def decoded(typed, raws: list[bytes]) -> list:
    """The typed structs of the lines the typed decoder takes, one chunk a line: what msgspec
    refuses (1e400, a status past 64 bits) goes the per-line way, never to these loops."""
    return [o for raw in raws for o in typed.chunk(raw + b"\n") or []]


@st.composite
def request_batch(draw) -> list:
    picks = draw(
        st.lists(
            st.tuples(st.sampled_from(ISO + EPOCH), st.sampled_from(STATUS), st.sampled_from(LATENCY)),
            min_size=1,
            max_size=60,
        )
    )
    structs = decoded(aggregates.request_lines(), [line(*p) for p in picks])
    assume(structs)
    return structs


def fold(impl, structs) -> tuple:
    agg, bad, stamps = aggregates._Agg(), BadLines(), clock.Stamps(NOW)
    bcache: dict = {}
    impl(structs, agg, stamps, bcache, TARGET_MS, OLDEST, bad)
    return {m: keys for m, keys in agg.per.items() if keys}, agg.old, bad, stamps.minutes


@hsettings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(request_batch())
@example(
    aggregates.request_lines().chunk(
        b"".join(line(ts, 200, 12.5) + b"\n" for ts in (ISO[0], ISO[0], 1_795_780_680.5, ISO[1], ISO[3]))
    )
)
def test_fold_requests_equals_the_python_fold(structs):
    assert fold(aggregates._fold_typed, structs) == fold(aggregates._fold_typed_py, structs)


@hsettings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(request_batch())
def test_fold_requests_equals_the_careful_path_line_by_line(structs):
    fast, fast_old, fast_bad, _ = fold(aggregates._fold_typed, structs)
    careful, careful_bad = aggregates._Agg(), BadLines()
    for o in structs:
        raw = {"ts": o.ts, "status": o.status, "latency_ms": o.latency_ms}
        aggregates._careful(raw, careful, clock.Stamps(NOW), TARGET_MS, OLDEST, careful_bad)
    assert {m: Counter(k) for m, k in fast.items()} == {m: Counter(k) for m, k in careful.per.items() if k}
    assert (fast_old, fast_bad) == (careful.old, careful_bad)


def test_the_compiled_loop_is_the_one_the_ingest_runs(monkeypatch):
    calls = []
    real = native.fold_requests
    monkeypatch.setattr(native, "fold_requests", lambda *a: calls.append(len(a[0])) or real(*a))
    structs = aggregates.request_lines().chunk(line(ISO[1], 200, 12.5) + b"\n")
    agg = aggregates._Agg()
    aggregates._fold(structs, agg, clock.Stamps(NOW), {}, TARGET_MS, OLDEST, BadLines())
    assert calls == [1] and sum(map(len, agg.per.values())) == 1


def test_an_error_in_a_callback_propagates_and_nothing_leaks():
    structs = aggregates.request_lines().chunk(line(ISO[1], 200, 12.5) + b"\n")

    def boom(*_):
        raise RuntimeError("careful failed")

    with pytest.raises(RuntimeError, match="careful failed"):  # the minute is unknown: careful is asked
        native.fold_requests(structs, {}, {}, {}, OLDEST, 0.0, NOW, lambda _lat: 1, boom, (999, 500, 8192))
    with pytest.raises(ZeroDivisionError):  # the key function's own bug is not a bad line
        native.fold_requests(structs, {}, {}, {}, OLDEST, 0.0, NOW, lambda _lat: 1 / 0, boom, (999, 500, 8192))
    with pytest.raises(TypeError, match="10 arguments"):
        native.fold_requests(structs)


MODELS = ["gpt-4o", "gpt-4o-mini", "no-such-model", " ", "a\tb"]
TOKENS = [812, 0, 10**9, 10**9 + 1, -1, 2**63, None]
USD = [0.0012, 1.0, 0.0, 999.999999, 1000.5, 10**6, 10**6 + 0.5, -0.01, None]


def usage(ts: object, model: str, usd: object, tin: object, tout: object, present: int) -> bytes:
    fields = [
        f'"ts":{orjson.dumps(ts).decode() if ts != math.inf else "1e400"}',
        f'"model":{orjson.dumps(model).decode()}',
    ]
    for bit, (name, value) in enumerate((("usd", usd), ("input_tokens", tin), ("output_tokens", tout))):
        if present >> bit & 1:
            fields.append(f'"{name}":{orjson.dumps(value).decode()}')
    return ("{" + ",".join(fields) + "}").encode()


@st.composite
def usage_batch(draw) -> list:
    picks = draw(
        st.lists(
            st.tuples(
                st.sampled_from([GOOD_TS] * 8 + ISO + EPOCH + [1_795_700_000.0, 1_795_600_000.0]),
                st.sampled_from(["gpt-4o"] * 4 + MODELS),
                st.sampled_from(USD),
                st.sampled_from(TOKENS),
                st.sampled_from(TOKENS),
                st.integers(0, 7),
            ),
            min_size=1,
            max_size=60,
        )
    )
    structs = decoded(costs_ingest.usage_lines(), [usage(*p) for p in picks])
    assume(structs)
    return structs


def fold_costs(impl, structs) -> tuple:
    per_day: dict = {}
    bad: Counter = Counter()
    stamps = clock.Stamps(NOW)
    impl(structs, per_day, stamps, bad)
    return per_day, bad, stamps.minutes


def usage_structs(*lines: tuple) -> list:
    return decoded(costs_ingest.usage_lines(), [usage(*p) for p in lines])


GOOD_TS = "2026-11-27T11:58:00.250Z"


@hsettings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(usage_batch())
@example(usage_structs((GOOD_TS, "gpt-4o", None, 812, 95, 6), (GOOD_TS, "gpt-4o", None, 10**9 + 1, 95, 6)))
@example(usage_structs((GOOD_TS, "gpt-4o", 1.0, None, None, 1), (GOOD_TS, "gpt-4o", 1.0, None, 5, 5)))
@example(usage_structs((GOOD_TS, "gpt-4o", 1.0, None, None, 1), (GOOD_TS, "gpt-4o", 1.0, 5, None, 3)))
def test_fold_usage_equals_the_python_fold(structs):
    assert fold_costs(costs_ingest._fold_typed, structs) == fold_costs(costs_ingest._fold_typed_py, structs)


def test_without_the_extension_echoops_runs_the_python_loops(tmp_path):
    """A machine with no compiler installs a pure-Python echoops: the import falls back."""
    code = (
        "import sys; sys.modules['echoops.core.native._ingest'] = None\n"
        "from echoops.core import native; print(native.loops())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "python"
    config = (
        "import sys; sys.modules['echoops.core.native._ingest'] = None; sys.argv = ['echoops', 'config']\n"
        "from echoops.__main__ import main; main()"
    )
    env = {**os.environ, "ECHOOPS_LOG_DIR": str(tmp_path), "ECHOOPS_ENV_FILE": str(tmp_path / "none.env")}
    shown = subprocess.run([sys.executable, "-c", config], capture_output=True, text=True, env=env, check=True).stdout
    assert "ingest loops: python (the compiled twin is not built" in shown


def test_echoops_config_says_the_compiled_loops_run(cli):
    assert "ingest loops: compiled (echoops.core.native)" in cli("config").stdout
