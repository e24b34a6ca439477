"""Per-call cost enforcement in the core: spend() reservations, record_usage(), their bound on
overshoot under concurrency (threads and processes on one SQLite store), expiry, monitoring-only
mode, fallbacks, and cost_state.json rewritten when a decision changes."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import threading
import time
from pathlib import Path

import orjson
import pytest
from hypothesis import given
from hypothesis import settings as settings_hypothesis
from hypothesis import strategies as st

from echoops.api import CostThrottled, record_usage, spend
from echoops.core import config, costs, store
from echoops.core.costs import admission, reservations
from echoops.core.errors import NotFound, ValidationError

DAY = 1795737600  # 2026-11-27T00:00:00Z
NOON = DAY + 12 * 3600
ROOT = Path(__file__).resolve().parent.parent
PICO = 10**12

# the store and feature tests run on both backends (SQLite; PostgreSQL: tests/postgres_server.py)
pytestmark = pytest.mark.backends

LOOP = """
import sys
from echoops.api import spend

calls = 0
while True:
    with spend("gpt-4o-mini", estimate_usd=0.05) as s:
        if s.action != "allow":
            break
        s.record(usd=0.05)
        calls += 1
print(calls)
"""


@pytest.fixture
def capped(monkeypatch):
    """gpt-4o-mini capped at $1, global at $25; returns the settings."""
    monkeypatch.setenv("MODEL_CAPS_JSON", '{"gpt-4o-mini": 1, "embeddings": 2}')
    return config.settings()


def _spawn(code: str, n: int) -> list[subprocess.Popen]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return [
        subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(n)
    ]


def test_eight_processes_spending_against_a_one_dollar_cap_make_exactly_20_calls(capped, cli):
    procs = _spawn(LOOP, 8)
    counts = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode()
        counts.append(int(out))
    assert sum(counts) == 20
    status = cli("costs", "status", "--json")
    assert status.exit_code == 0
    mini = orjson.loads(status.stdout)["models"]["gpt-4o-mini"]
    assert (mini["spent_usd"], mini["reserved_usd"], mini["state"]) == (1.0, 0.0, "throttle")
    table = cli("costs", "status", env={"COLUMNS": "200"})
    row = next(line for line in table.stdout.splitlines() if line.startswith("gpt-4o-mini "))
    assert row.split()[:3] == ["gpt-4o-mini", "$1.00", "$1.00"]  # scope, spent, cap
    assert "THROTTLE" in row
    assert "per call: 0 in flight ($0.00 reserved)" in table.stdout


def _hammer(threads: int, calls: int, pick, s) -> list[tuple[int, int]]:
    """`threads` threads each trying `calls` spend() calls on gpt-4o-mini; `pick(rng)` gives
    (estimate, actual) in pico-dollars. Returns the (estimate, actual) of every call made."""
    made: list[tuple[int, int]] = []
    lock = threading.Lock()
    start = threading.Barrier(threads)

    def run(seed: int) -> None:
        rng = random.Random(seed)
        start.wait()
        for _ in range(calls):
            est, actual = pick(rng)
            with spend("gpt-4o-mini", estimate_usd=est / PICO, s=s) as held:
                if held.action == "allow":
                    held.record(usd=actual / PICO)
                    with lock:
                        made.append((est, actual))
        store.close_all()

    workers = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return made


def _spent_p(s) -> int:
    row = costs.caps.db(s).execute("SELECT SUM(cost_p) FROM costs_spend WHERE model='gpt-4o-mini'").fetchone()
    return row[0] or 0


def test_with_exact_estimates_concurrent_calls_never_pass_the_cap(capped):
    cap = PICO  # $1

    def exact(rng: random.Random) -> tuple[int, int]:
        est = rng.randrange(10**9, 8 * 10**10)
        return est, est

    made = _hammer(6, 60, exact, capped)
    spent = _spent_p(capped)
    assert spent == sum(a for _, a in made)
    assert spent <= cap
    assert cap - spent < 8 * 10**10  # stopped only because the next estimate did not fit


def test_under_estimates_pass_the_cap_by_at_most_their_excess(capped):
    cap = PICO

    def pick(rng: random.Random) -> tuple[int, int]:
        est = rng.randrange(10**9, 8 * 10**10)
        return est, max(0, est + rng.randrange(-3 * 10**10, 3 * 10**10))

    made = _hammer(6, 60, pick, capped)
    spent = _spent_p(capped)
    excess = sum(actual - est for est, actual in made if actual > est)
    assert spent == sum(a for _, a in made)
    assert spent <= cap + excess
    assert any(actual > est for est, actual in made)


def test_record_usage_counts_at_once_and_every_guard_sees_the_cap_crossed(capped, log_dir):
    assert costs.guard("gpt-4o-mini", s=capped)["action"] == "allow"
    first = record_usage("gpt-4o-mini", usd=0.5, s=capped)
    assert first == {
        "recorded_usd": 0.5,
        "decision": {"action": "allow", "model": "gpt-4o-mini", "reason": "within caps", "retry_after_s": 0},
    }
    assert not (log_dir / "cost_state.json").exists()  # no decision changed: nothing rewritten
    second = record_usage("gpt-4o-mini", input_tokens=2_000_000, output_tokens=500_000, s=capped)
    assert second["recorded_usd"] == 0.6  # 2M x $0.15 + 0.5M x $0.60 per Mtok
    assert second["decision"]["action"] == "throttle"
    state = orjson.loads((log_dir / "cost_state.json").read_bytes())
    assert state["decisions"]["gpt-4o-mini"]["action"] == "throttle"
    assert state["models"]["gpt-4o-mini"]["spent_usd"] == 1.1
    events = [orjson.loads(x) for x in (log_dir / "costs.ndjson").read_bytes().splitlines()]
    assert [(e["event"], e["scope"]) for e in events] == [("cost_throttle", "gpt-4o-mini")]
    version = state["version"]
    record_usage("gpt-4o-mini", usd=0.01, s=capped)  # still over: no decision changed, no rewrite
    assert orjson.loads((log_dir / "cost_state.json").read_bytes())["version"] == version


def test_usage_recorded_and_a_log_line_each_count_once_after_two_ticks(capped, log_dir):
    record_usage("gpt-4o", usd=0.10, ts=NOON - 30, s=capped, now=NOON)
    line = {"ts": NOON - 20, "model": "gpt-4o", "usd": 0.20}
    (log_dir / "ai_usage.ndjson").write_bytes(orjson.dumps(line) + b"\n")
    first = costs.tick(s=capped, now=NOON)
    second = costs.tick(s=capped, now=NOON + 60)
    assert (first["calls"], second["calls"]) == (1, 0)
    status = costs.status(s=capped, now=NOON + 60)
    assert status["models"]["gpt-4o"]["spent_usd"] == 0.3
    assert status["global"]["spent_usd"] == 0.3
    assert (log_dir / "ai_usage.ndjson").read_bytes() == orjson.dumps(line) + b"\n"  # recorded usage never goes there


def test_leaving_without_record_settles_at_the_estimate_and_an_exception_releases(capped):
    with spend("gpt-4o", estimate_usd=0.25, s=capped, now=NOON) as held:
        assert held.action == "allow" and held.open
        assert costs.calls_status(s=capped, now=NOON)["in_flight"] == 1
    assert held.recorded is not None and held.recorded["recorded_usd"] == 0.25
    with pytest.raises(RuntimeError), spend("gpt-4o", estimate_usd=0.5, s=capped, now=NOON) as failing:
        raise RuntimeError("the AI call failed")
    assert not failing.open and failing.recorded is None
    status = costs.status(s=capped, now=NOON)
    assert (status["models"]["gpt-4o"]["spent_usd"], status["global"]["reserved_usd"]) == (0.25, 0.0)
    assert status["calls"] | {} == {
        "in_flight": 0,
        "reserved_usd": 0.0,
        "expired": 0,
        "recorded_5m": 1,
        "per_min": 0.2,
        "ttl_s": 600,
    }


def test_a_throttled_call_reserves_nothing_and_cannot_be_recorded(capped):
    record_usage("gpt-4o-mini", usd=1.0, s=capped, now=NOON)
    with spend("gpt-4o-mini", estimate_usd=0.01, s=capped, now=NOON) as held:
        assert (held.action, held.reservation, held.estimate_usd, held.retry_after_s) == ("throttle", None, 0.0, 43200)
        assert held.reason == "gpt-4o-mini daily cap reached ($1.00 of $1.00); no fallback configured"
        with pytest.raises(CostThrottled) as err:
            held.record(usd=0.01)
        assert err.value.retry_after_s == 43200
    assert held.document() == {
        "reservation": None,
        "action": "throttle",
        "model": "gpt-4o-mini",
        "reason": "gpt-4o-mini daily cap reached ($1.00 of $1.00); no fallback configured",
        "estimate_usd": 0.0,
        "expires_at": None,
        "retry_after_s": 43200,
    }
    assert costs.status(s=capped, now=NOON)["models"]["gpt-4o-mini"]["spent_usd"] == 1.0


def test_an_estimate_that_does_not_fit_is_throttled_before_the_cap_is_reached(capped):
    record_usage("gpt-4o-mini", usd=0.97, s=capped, now=NOON)
    with spend("gpt-4o-mini", estimate_usd=0.05, s=capped, now=NOON) as held:
        assert held.action == "throttle"
        assert held.reason == (
            "gpt-4o-mini daily cap: $0.97 spent + $0.00 reserved + $0.05 for this call > $1.00; no fallback configured"
        )
    with spend("gpt-4o-mini", estimate_usd=0.03, s=capped, now=NOON) as held:
        assert (held.action, held.reason) == ("allow", "gpt-4o-mini near its daily cap")


def test_switch_reserves_against_the_fallbacks_cap(monkeypatch):
    monkeypatch.setenv("MODEL_CAPS_JSON", '{"gpt-4o": 1, "gpt-4o-mini": 0.5}')
    monkeypatch.setenv("MODEL_FALLBACKS_JSON", '{"gpt-4o": "gpt-4o-mini"}')
    s = config.settings()
    record_usage("gpt-4o", usd=0.9, s=s, now=NOON)
    with spend("gpt-4o", estimate_usd=0.3, s=s, now=NOON) as first:
        assert (first.action, first.model) == ("switch", "gpt-4o-mini")
        assert (
            first.reason
            == "gpt-4o daily cap: $0.90 spent + $0.00 reserved + $0.30 for this call > $1.00; gpt-4o-mini has headroom"
        )
        status = costs.status(s=s, now=NOON)
        assert status["models"]["gpt-4o-mini"]["reserved_usd"] == 0.3
        with spend("gpt-4o", estimate_usd=0.3, s=s, now=NOON) as second:  # the fallback's room is held
            assert second.action == "throttle"
            assert second.reason.endswith("; no fallback has headroom")
        first.record(usd=0.1)
    assert costs.status(s=s, now=NOON)["models"]["gpt-4o-mini"]["spent_usd"] == 0.1


def test_the_global_cap_throttles_every_model(monkeypatch):
    monkeypatch.setenv("COST_CAP_DAILY_USD", "1")
    s = config.settings()
    with spend("gpt-4o", estimate_usd=0.6, s=s, now=NOON) as a, spend("o3", estimate_usd=0.6, s=s, now=NOON) as b:
        assert (a.action, b.action) == ("allow", "throttle")
        assert b.reason == "global daily AI cap: $0.00 spent + $0.60 reserved + $0.60 for this call > $1.00"


def test_monitoring_only_allows_but_still_reserves_and_records(capped, monkeypatch):
    monkeypatch.setenv("COST_ENFORCE", "false")
    s = config.settings()
    record_usage("gpt-4o-mini", usd=1.0, s=s, now=NOON)
    with spend("gpt-4o-mini", estimate_usd=0.2, s=s, now=NOON) as held:
        assert (held.action, held.model, held.would) == ("allow", "gpt-4o-mini", "throttle")
        assert held.reason.startswith("monitoring only (COST_ENFORCE=false): would throttle: gpt-4o-mini daily cap")
        assert held.document()["would"] == "throttle"
        assert costs.status(s=s, now=NOON)["models"]["gpt-4o-mini"]["reserved_usd"] == 0.2
        held.record(usd=0.15)
    assert costs.status(s=s, now=NOON)["models"]["gpt-4o-mini"]["spent_usd"] == 1.15


def test_a_killed_processs_reservation_is_settled_at_its_estimate_after_the_ttl(capped, log_dir):
    code = "import os\nfrom echoops.api import spend\ncm = spend('gpt-4o', estimate_usd=0.4, ttl_s=60)\n"
    code += "s = cm.__enter__()\nprint(s.reservation, flush=True)\nos.kill(os.getpid(), 9)\n"
    (proc,) = _spawn(code, 1)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == -9
    token = out.decode().strip()
    calls = costs.calls_status(s=capped)
    assert (calls["in_flight"], calls["reserved_usd"]) == (1, 0.4)
    assert costs.tick(s=capped)["expired_reservations"] == 0  # within its TTL: still held
    assert costs.status(s=capped)["calls"]["in_flight"] == 1
    now = time.time() + 61
    assert costs.calls_status(s=capped, now=now)["expired"] == 1
    tick = costs.tick(s=capped, now=now)
    assert tick["expired_reservations"] == 1
    status = costs.status(s=capped, now=now)
    assert (status["models"]["gpt-4o"]["spent_usd"], status["calls"]["in_flight"], status["calls"]["expired"]) == (
        0.4,
        0,
        0,
    )
    # the process's work was billed after all at $0.10: a late settle corrects the estimate
    assert costs.settle(token, usd=0.1, s=capped, now=now)["recorded_usd"] == 0.1
    assert costs.status(s=capped, now=now)["models"]["gpt-4o"]["spent_usd"] == 0.1
    with pytest.raises(NotFound):
        costs.settle(token, usd=0.1, s=capped, now=now)


def test_settling_twice_counts_once_and_a_release_counts_nothing(capped):
    held = costs.reserve("gpt-4o", estimate_usd=0.2, s=capped, now=NOON)
    assert held.reservation is not None and held.reservation.startswith("rsv_")
    assert costs.settle(held.reservation, input_tokens=1000, output_tokens=100, s=capped, now=NOON)["recorded_usd"] == (
        0.0035
    )
    with pytest.raises(NotFound) as err:
        costs.settle(held.reservation, usd=1, s=capped, now=NOON)
    assert err.value.field == "reservation"
    other = costs.reserve("gpt-4o", estimate_usd=0.2, s=capped, now=NOON)
    assert costs.release_request({"reservation": other.reservation}) == {
        "reservation": other.reservation,
        "released": True,
    }
    with pytest.raises(NotFound):
        other.release()  # the Spend object does not know: the store says it is gone
    assert costs.status(s=capped, now=NOON)["models"]["gpt-4o"]["spent_usd"] == 0.0035


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"usd": -1}, "usd"),
        ({"usd": float("nan")}, "usd"),
        ({"usd": float("inf")}, "usd"),
        ({"usd": True}, "usd"),
        ({"input_tokens": -1}, "input_tokens"),
        ({"output_tokens": 1.5}, "output_tokens"),
        ({"input_tokens": "12"}, "input_tokens"),
        ({"usd": 1, "ts": "yesterday"}, "ts"),
    ],
)
def test_record_usage_rejects_bad_amounts_naming_the_field(capped, kwargs, field):
    with pytest.raises(ValidationError) as err:
        record_usage("gpt-4o", **kwargs, s=capped)
    assert err.value.field == field


def test_spend_rejects_a_bad_estimate_or_model(capped):
    for bad, field in ((-0.1, "estimate_usd"), (float("nan"), "estimate_usd"), (None, "estimate_usd")):
        with pytest.raises(ValidationError) as err, spend("gpt-4o", estimate_usd=bad, s=capped):  # type: ignore[arg-type]
            pass
        assert err.value.field == field
    with pytest.raises(ValidationError) as err, spend(" ", estimate_usd=0.1, s=capped):
        pass
    assert err.value.field == "model"
    with pytest.raises(ValidationError) as err, spend("gpt-4o", estimate_usd=0.1, ttl_s=0, s=capped):
        pass
    assert err.value.field == "ttl_s"


def test_a_cap_raised_in_another_process_is_seen_by_the_next_reservation(capped, cli):
    record_usage("gpt-4o-mini", usd=1.0, s=capped)
    with spend("gpt-4o-mini", estimate_usd=0.1, s=capped) as held:
        assert held.action == "throttle"
    code = "from echoops.core import costs\ncosts.set_cap('model', 'gpt-4o-mini', 2)\n"
    (proc,) = _spawn(code, 1)
    assert proc.wait(60) == 0
    with spend("gpt-4o-mini", estimate_usd=0.1, s=capped) as held:
        assert held.action == "allow"  # the cached caps were dropped: their version moved


def test_a_reservation_counts_on_the_day_it_was_made(capped):
    before_midnight = DAY + 86400 - 1
    held = costs.reserve("gpt-4o", estimate_usd=0.2, s=capped, now=before_midnight)
    costs.settle(held.reservation, usd=0.3, s=capped, now=before_midnight + 5)
    assert costs.status(s=capped, now=before_midnight)["models"]["gpt-4o"]["spent_usd"] == 0.3
    assert "gpt-4o" not in costs.status(s=capped, now=before_midnight + 5)["models"]


def test_call_ids_are_time_ordered_and_tokens_round_trip():
    a, b = reservations.new_id(NOON), reservations.new_id(NOON + 0.001)
    assert a < b and reservations.id_floor(NOON) <= a < reservations.id_floor(NOON + 0.001) <= b
    assert reservations.parse_token(reservations.token(a)) == a
    for junk in ("rsv_", "rsv_-1", "rsv_1x", "abc", "rsv_" + "9" * 20):
        assert reservations.parse_token(junk) is None


def test_spend_saturates_instead_of_overflowing(capped):
    conn = costs.caps.db(capped)
    with store.transaction(conn):
        reservations.add_spend(conn, "2026-11-27", "m", 1, 0, 0, reservations._MAX - 5, 0)
        reservations.add_spend(conn, "2026-11-27", "m", 1, 0, 0, 10**12, 0)
    assert conn.execute("SELECT cost_p, calls FROM costs_spend WHERE model='m'").fetchone()[:] == (
        reservations._MAX,
        2,
    )


APP = """
import orjson
from echoops.api import record_usage, spend
print(orjson.dumps(record_usage("gpt-4o", usd=1.0)["decision"]).decode())
with spend("gpt-4o", estimate_usd=0.1) as held:
    print(held.action, held.model)
"""


def test_an_app_without_the_cost_variables_uses_the_published_configuration(monkeypatch, cli, log_dir):
    monkeypatch.setenv("MODEL_CAPS_JSON", '{"gpt-4o": 1, "gpt-4o-mini": 15}')
    monkeypatch.setenv("MODEL_FALLBACKS_JSON", '{"gpt-4o": "gpt-4o-mini"}')
    monkeypatch.setenv("MODEL_PRICES_JSON", '{"gpt-4o": {"input": 5}}')
    assert cli("costs", "set-cap", "--scope", "model", "--key", "gpt-4o-mini", "--usd", "3").exit_code == 0
    assert cli("costs", "tick").exit_code == 0  # the scheduler: notes the environment, publishes
    app_env = {k: v for k, v in os.environ.items() if not k.startswith(("MODEL_", "COST_"))}
    app_env["PYTHONPATH"] = str(ROOT)
    run = subprocess.run([sys.executable, "-c", APP], env=app_env, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    decision, held = run.stdout.splitlines()
    assert orjson.loads(decision) == {
        "action": "switch",
        "model": "gpt-4o-mini",
        "reason": "gpt-4o daily cap reached ($1.00 of $1.00); gpt-4o-mini has headroom",
        "retry_after_s": orjson.loads(decision)["retry_after_s"],
    }
    assert held == "switch gpt-4o-mini"  # the published fallback, the noted $1 cap
    state = orjson.loads((log_dir / "cost_state.json").read_bytes())
    assert (state["fallbacks"], state["prices"], state["enforce"]) == (
        {"gpt-4o": "gpt-4o-mini"},
        {"gpt-4o": {"input": 5.0}},
        True,
    )
    assert (state["caps"]["models"], state["caps"]["sources"]) == (
        {"gpt-4o": 1.0, "gpt-4o-mini": 3.0},
        {"gpt-4o": "env", "gpt-4o-mini": "api"},
    )
    events = [orjson.loads(x)["event"] for x in (log_dir / "costs.ndjson").read_bytes().splitlines()]
    assert "cap_superseded" not in events  # the app's environment was never noted
    status = costs.status()
    assert (status["models"]["gpt-4o-mini"]["cap_usd"], status["models"]["gpt-4o"]["cap_usd"]) == (3.0, 1.0)


@settings_hypothesis(max_examples=300, deadline=None)
@given(
    spent=st.dictionaries(st.sampled_from(["gpt-4o", "gpt-4o-mini", "o3"]), st.integers(0, 3 * PICO), max_size=3),
    held=st.dictionaries(st.sampled_from(["gpt-4o", "gpt-4o-mini", "o3"]), st.integers(0, PICO), max_size=3),
    caps=st.dictionaries(st.sampled_from(["gpt-4o", "gpt-4o-mini"]), st.integers(0, 2 * PICO), max_size=2),
    daily=st.integers(0, 5 * PICO),
    estimate=st.integers(0, PICO),
    model=st.sampled_from(["gpt-4o", "gpt-4o-mini", "o3"]),
)
def test_admit_never_holds_more_than_a_cap_has_room_for(spent, held, caps, daily, estimate, model):
    limits = admission.Caps(daily, caps, {"gpt-4o": "gpt-4o-mini", "o3": "gpt-4o"}, costs.prices.BUILTIN)
    adm = admission.admit(limits, model, lambda _m: estimate, spent, held)
    if adm.action == "throttle":
        assert adm.estimate_p == 0
        return
    scope = limits.scope(adm.name)
    used_all = sum(spent.values()) + sum(held.values())
    assert used_all < daily and used_all + estimate <= daily
    if scope in caps:
        used = spent.get(scope, 0) + held.get(scope, 0)
        assert used < caps[scope] and used + estimate <= caps[scope]
    assert (adm.action == "switch") == (adm.model != model)
