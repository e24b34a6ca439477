"""Incidents that end by themselves (issue 15): the features that raised them resolve them when
their problem is over, through `pager.auto_resolve`, with a RESOLVED notice where the page went."""

from __future__ import annotations

import orjson

from echoops.core import costs, pager, slo
from tests.test_costs import DAY, NOON, mini, write_usage
from tests.test_slo import T0, history
from tests.test_slo_gate import burn


def incident(settings, fingerprint):
    row = pager.db(settings).execute(
        "SELECT id, state, resolved_by, resolve_note FROM pager_incidents WHERE fingerprint=? ORDER BY first_seen DESC",
        (fingerprint,),
    )
    return [dict(r) for r in row]


def resolve_events(log_dir):
    lines = [orjson.loads(x) for x in (log_dir / "incidents.ndjson").read_bytes().splitlines()]
    return [e for e in lines if e["event"] == "incident_resolve"]


def test_the_slo_red_incident_resolves_when_the_slo_is_back_to_green_or_yellow(settings, log_dir):
    start = T0 + 3 * 3600
    history(log_dir, end=start, minutes=180, per_minute=50)
    burn(log_dir, end=start + 30 * 60, minutes=30, err_pct=30)  # 30x the budget: the page tier
    red = slo.tick(s=settings, now=start + 30 * 60)
    assert red["status"]["state"] == "red" and red["incident"]["fingerprint"] == "slo:red"
    assert red["resolved"] == []
    burn(log_dir, end=start + 45 * 60, minutes=15, err_pct=30)
    assert slo.tick(s=settings, now=start + 45 * 60)["resolved"] == []  # still red: nothing resolves
    history(log_dir, end=start + 165 * 60, minutes=120, per_minute=50)  # two clean hours
    back = slo.tick(s=settings, now=start + 165 * 60)
    assert back["status"]["state"] in ("green", "yellow")
    assert back["resolved"] == [red["incident"]["id"]]
    [row] = incident(settings, "slo:red")
    assert (row["state"], row["resolved_by"], row["resolve_note"]) == (
        "resolved",
        "auto:slo",
        f"SLO back to {back['status']['state']}",
    )
    assert slo.tick(s=settings, now=start + 180 * 60)["resolved"] == []  # once


def test_the_deploy_gate_incident_resolves_when_the_gate_clears(settings, log_dir):
    start = T0 + 2 * 3600
    burn(log_dir, end=start, minutes=120, err_pct=0)
    burn(log_dir, end=start + 125 * 60, minutes=125)
    set_ = slo.tick(s=settings, now=start + 125 * 60)
    assert set_["gate_set"] is True and set_["incident"]["fingerprint"] == "slo:deploy_gate"
    cleared = slo.clear_gate("rolled back v42", s=settings, now=start + 130 * 60)
    assert cleared["resolved"] == [set_["incident"]["id"]]
    [row] = incident(settings, "slo:deploy_gate")
    assert (row["state"], row["resolve_note"]) == ("resolved", "deploy gate cleared: rolled back v42")
    # set again after the override (24h) and removed by hand: the next tick notices and resolves
    burn(log_dir, end=start + 28 * 3600, minutes=125)
    again = slo.tick(s=settings, now=start + 28 * 3600)
    assert again["gate_set"] is True and again["incident"]["deduped"] is False
    (log_dir / "deploy_gate.flag").unlink()
    after = slo.tick(s=settings, now=start + 28 * 3600 + 900)
    assert after["resolved"] == [again["incident"]["id"]]


def test_a_cost_throttle_incident_resolves_when_the_cap_is_raised_and_pages_again_on_a_new_crossing(settings, log_dir):
    write_usage(log_dir, mini(100_000_000))  # exactly $15.00: the gpt-4o-mini cap
    costs.tick(s=settings, now=NOON)
    [row] = incident(settings, "costs:throttle:gpt-4o-mini:2026-11-27")
    assert row["state"] == "open"
    costs.set_cap("model", "gpt-4o-mini", 20, s=settings, now=NOON + 60)
    [row] = incident(settings, "costs:throttle:gpt-4o-mini:2026-11-27")
    assert (row["state"], row["resolved_by"]) == ("resolved", "auto:costs")
    assert row["resolve_note"] == "gpt-4o-mini cap raised above spend ($15.00 of $20.00)"
    # spend crosses the new cap the same day: a new incident, paged again
    write_usage(log_dir, mini(40_000_000, ts=NOON + 100))  # +$6.00
    costs.tick(s=settings, now=NOON + 3600)
    rows = incident(settings, "costs:throttle:gpt-4o-mini:2026-11-27")
    assert [r["state"] for r in rows] == ["open", "resolved"]


def test_a_cost_throttle_incident_resolves_at_the_first_tick_of_the_next_utc_day(settings, log_dir):
    write_usage(log_dir, mini(100_000_000))
    costs.tick(s=settings, now=NOON)
    costs.tick(s=settings, now=DAY + 86400 - 1)  # 23:59:59: still the same day
    assert incident(settings, "costs:throttle:gpt-4o-mini:2026-11-27")[0]["state"] == "open"
    costs.tick(s=settings, now=DAY + 86400)  # the scheduler's 00:00 tick
    [row] = incident(settings, "costs:throttle:gpt-4o-mini:2026-11-27")
    assert (row["state"], row["resolve_note"]) == (
        "resolved",
        "a new UTC day (2026-11-28): spend starts again from zero",
    )
    [event] = resolve_events(log_dir)
    assert (event["by"], event["duration_s"]) == ("auto:costs", 12 * 3600)
