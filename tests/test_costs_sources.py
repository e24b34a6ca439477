"""The cost rollback neutralises: the newest cap setting wins (environment or API), each cap says
where it came from, and COST_ENFORCE=false is monitoring-only mode."""

from __future__ import annotations

import orjson

from echoops.core import clock, costs, store
from echoops.core.costs import guardrail
from tests.test_costs import NOON, events, incidents, mini, write_usage

GPT4O = {"model": "gpt-4o", "input_tokens": 4_800_000, "output_tokens": 0}  # $12.00 at $2.50/Mtok


def check(cli, model: str, now: float) -> tuple[int, dict]:
    """`echoops costs check MODEL` -> (exit code, the decision document from core)."""
    r = cli("costs", "check", model, "--now", str(now))
    return r.exit_code, costs.check(model, now=now)


def test_cost_enforce_false_turns_a_throttle_into_allow_while_status_still_shows_100_pct(cli, log_dir, monkeypatch):
    write_usage(log_dir, mini(100_000_000))  # $15: gpt-4o-mini at its cap
    assert cli("costs", "tick", "--now", str(NOON)).exit_code == 0
    assert check(cli, "gpt-4o-mini", NOON)[0] == 1

    monkeypatch.setenv("COST_ENFORCE", "false")  # the rollback, in one step
    code, decision = check(cli, "gpt-4o-mini", NOON)  # at once, before any tick
    assert code == 0 and decision == {
        "action": "allow",
        "model": "gpt-4o-mini",
        "reason": "monitoring only (COST_ENFORCE=false): would throttle: gpt-4o-mini daily cap reached "
        "($15.00 of $15.00); no fallback configured",
        "would": "throttle",
        "retry_after_s": 0,
    }
    assert cli("costs", "tick", "--now", str(NOON + 60)).exit_code == 0
    status = orjson.loads(cli("costs", "status", "--json", "--now", str(NOON + 60)).stdout)
    mini_scope = status["models"]["gpt-4o-mini"]
    assert status["mode"] == "monitor"
    assert (mini_scope["pct"], mini_scope["state"], mini_scope["action"]) == (100.0, "throttle", "allow")
    table = cli("costs", "status", "--now", str(NOON + 60)).stdout
    assert "MONITORING ONLY (COST_ENFORCE=false)" in table
    # the file carries the mode: an app whose own environment says nothing is not throttled either
    monkeypatch.delenv("COST_ENFORCE")
    state = orjson.loads((log_dir / "cost_state.json").read_bytes())
    assert state["enforce"] is False and state["decisions"]["gpt-4o-mini"]["action"] == "allow"
    assert guardrail.guard("gpt-4o-mini", now=NOON + 60)["action"] == "allow"
    # and enforcing again is one step back
    assert cli("costs", "tick", "--now", str(NOON + 120)).exit_code == 0
    assert check(cli, "gpt-4o-mini", NOON + 120)[0] == 1


def test_monitoring_only_still_warns_and_pages_and_says_it_does_not_throttle(settings, log_dir, monkeypatch):
    monkeypatch.setenv("COST_ENFORCE", "false")
    write_usage(log_dir, mini(100_000_000))
    summary = costs.tick(now=NOON)
    assert summary["mode"] == "monitor" and summary["throttled"] == [] and summary["over_cap"] == ["gpt-4o-mini"]
    [event] = events(log_dir, "cost_throttle")
    assert event["enforced"] is False
    assert event["msg"] == (
        "gpt-4o-mini spend $15.00 of $15.00 (100.0%): cap reached (monitoring only: AI calls not throttled) "
        "(2026-11-27)"
    )
    assert ("CRITICAL", "costs:throttle:gpt-4o-mini:2026-11-27") in incidents(settings, "gpt-4o-mini")


def test_raising_cost_cap_daily_usd_after_an_api_daily_cap_unthrottles(cli, log_dir, monkeypatch):
    assert cli("costs", "set-cap", "--scope", "daily", "--usd", "10").exit_code == 0  # the API cap: $10 a day
    write_usage(log_dir, {"ts": NOON - 60, **GPT4O})
    cli("costs", "tick", "--now", str(NOON))
    code, decision = check(cli, "gpt-4o", NOON)
    assert code == 1 and decision["reason"].startswith("global daily AI cap reached ($12.00 of $10.00)")

    monkeypatch.setenv("COST_CAP_DAILY_USD", "1000")  # the brief's rollback: "COST_CAP_DAILY_USD high"
    cli("costs", "tick", "--now", str(NOON + 60))
    assert check(cli, "gpt-4o", NOON + 60) == (
        0,
        {"action": "allow", "model": "gpt-4o", "reason": "within caps", "retry_after_s": 0},
    )
    glob = orjson.loads(cli("costs", "status", "--json", "--now", str(NOON + 60)).stdout)["global"]
    assert (glob["cap_usd"], glob["cap_source"], glob["cap_since"]) == (1000.0, "env", clock.iso(NOON + 60))
    [superseded] = events(log_dir, "cap_superseded")
    assert {k: superseded[k] for k in ("scope", "key", "api_usd_cap", "env_usd_cap")} == {
        "scope": "daily",
        "key": None,
        "api_usd_cap": 10.0,
        "env_usd_cap": 1000.0,
    }
    # setting it through the API again is newer again
    costs.set_cap("daily", None, 5, now=NOON + 120)
    assert check(cli, "gpt-4o", NOON + 120)[0] == 1
    glob = costs.status(now=NOON + 120)["global"]
    assert (glob["cap_usd"], glob["cap_source"], glob["cap_since"]) == (5.0, "api", clock.iso(NOON + 120))


def test_an_api_cap_holds_while_the_environment_it_overrode_is_unchanged(settings, log_dir, monkeypatch):
    costs.tick(now=NOON - 3600)  # the environment's caps are noted
    costs.set_cap("model", "gpt-4o-mini", 20, now=NOON - 1800)
    write_usage(log_dir, mini(110_000_000))  # $16.50: over the env's 15, under the API's 20
    for t in (NOON, NOON + 3600):
        costs.tick(now=t)
        entry = costs.status(now=t)["models"]["gpt-4o-mini"]
        assert (entry["cap_usd"], entry["cap_source"], entry["cap_since"], entry["action"]) == (
            20.0,
            "api",
            clock.iso(NOON - 1800),
            "allow",
        )
    assert costs.status(now=NOON)["global"]["cap_since"] == clock.iso(NOON - 3600)
    # another model's environment change leaves it alone; its own does not
    monkeypatch.setenv("MODEL_CAPS_JSON", '{"gpt-4o-mini":15,"embeddings":3}')
    costs.tick(now=NOON + 7200)
    assert costs.status(now=NOON + 7200)["models"]["gpt-4o-mini"]["cap_source"] == "api"
    monkeypatch.setenv("MODEL_CAPS_JSON", '{"gpt-4o-mini":30,"embeddings":3}')
    costs.tick(now=NOON + 9000)
    entry = costs.status(now=NOON + 9000)["models"]["gpt-4o-mini"]
    assert (entry["cap_usd"], entry["cap_source"], entry["cap_since"]) == (30.0, "env", clock.iso(NOON + 9000))


def test_api_caps_set_before_the_upgrade_survive_it(settings, log_dir):
    # a store written by an echoops that did not note the environment yet
    conn = store.db(settings, costs.SCHEMA)
    with store.transaction(conn):
        conn.execute("INSERT INTO costs_caps(scope, key, cap_micro, set_at) VALUES('daily', '', 40000000, ?)", (NOON,))
    costs.tick(now=NOON + 60)
    glob = costs.status(now=NOON + 60)["global"]
    assert (glob["cap_usd"], glob["cap_source"], glob["cap_since"]) == (40.0, "api", clock.iso(NOON))
    assert events(log_dir, "cap_superseded") == []
