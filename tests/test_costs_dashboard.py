"""The Costs dashboard card in real Chromium: bars with state colours, forecast, fees, set-cap form."""

from __future__ import annotations

import time

import orjson
import pytest
from playwright.sync_api import expect

from tests.browser import wait_ready


@pytest.mark.browser
def test_costs_card_shows_bars_states_and_sets_a_cap(open_card, log_dir, cli):
    line = {"ts": time.time() - 1, "model": "gpt-4o-mini", "input_tokens": 100_000_000, "output_tokens": 0}
    (log_dir / "ai_usage.ndjson").write_bytes(orjson.dumps(line) + b"\n")  # $15: gpt-4o-mini at its cap
    assert cli("costs", "tick").exit_code == 0
    page, section = open_card("costs")
    mini = section.locator('[data-scope="gpt-4o-mini"]')
    expect(mini.locator(".badge")).to_have_text("✕THROTTLE")
    expect(mini.locator(".meter-fill.fill-bad")).to_have_count(1)
    expect(mini.locator('[role="meter"]')).to_have_attribute("aria-valuenow", "100")
    expect(mini.locator(".costs-action")).to_have_text("throttle")
    expect(mini.locator(".costs-cap-source")).to_have_attribute("data-source", "env")
    expect(mini.locator(".costs-cap-source")).to_contain_text("cap from the environment since ")
    expect(section.locator(".costs-monitor")).to_have_count(0)
    expect(section.locator('[data-scope="global"] .badge')).to_have_text("✓OK")
    expect(section.locator("[data-metric=spent] .metric-value")).to_have_text("$15.00")
    expect(section.locator("[data-metric=forecast] .metric-value")).not_to_have_text("—")
    expect(section.locator(".costs-fees")).to_contain_text("never throttle AI")
    # an invalid cap is refused with the field named; a valid one re-renders the bars
    section.locator("#costs-scope").select_option("model")
    section.locator("#costs-usd").fill("20")
    section.get_by_role("button", name="Set cap").click()
    expect(section.locator(".costs-form-msg")).to_contain_text("key")
    section.locator("#costs-key").fill("gpt-4o-mini")
    section.get_by_role("button", name="Set cap").click()
    wait_ready(page)
    expect(section.locator(".costs-form-msg")).to_have_text("gpt-4o-mini cap set to $20.00 (was $15.00)")
    expect(mini.locator(".badge")).to_have_text("✓OK")
    expect(mini.locator('[role="meter"]')).to_have_attribute("aria-valuenow", "75")
    expect(mini.locator(".costs-cap-source")).to_contain_text("cap set through the API since ")


@pytest.mark.browser
def test_a_cap_of_zero_with_nothing_spent_shows_no_forecast_warning(open_card, cli):
    assert cli("costs", "set-cap", "--scope", "daily", "--usd", "0").exit_code == 0  # all AI off
    page, section = open_card("costs")
    expect(section.locator('[data-scope="global"] .badge')).to_have_text("✕THROTTLE")
    expect(section.locator("[data-metric=forecast] .metric-value")).to_have_text("$0.00")
    expect(section.locator(".costs-forecast-warn")).to_have_count(0)  # $0 forecast is not "over the $0 cap"


@pytest.mark.browser
def test_a_failed_fee_read_shows_on_the_card_not_as_zero(open_card, cli, monkeypatch):
    from tests.fakes_stripe import FakeStripe

    with FakeStripe({"balance_transactions": []}) as fake:
        monkeypatch.setenv("STRIPE_API_BASE", fake.url)
        monkeypatch.setenv("STRIPE_API_KEY", fake.key)
        fake.refuse("/v1/balance_transactions", 400, "Received unknown parameter: created[gte]")
        assert cli("costs", "tick").exit_code == 1
    page, section = open_card("costs")
    fees = section.locator(".costs-fees")
    expect(fees).to_have_attribute("data-error", "true")
    expect(fees.locator(".costs-fees-error")).to_contain_text(
        "READ FAILED Stripe answered 400 to /v1/balance_transactions: Received unknown parameter: created[gte]"
    )
    expect(fees).to_contain_text("source: none")


@pytest.mark.browser
def test_monitoring_only_mode_is_shown_and_nothing_reads_as_throttled(open_card, log_dir, cli, monkeypatch):
    monkeypatch.setenv("COST_ENFORCE", "false")
    line = {"ts": time.time() - 1, "model": "gpt-4o-mini", "input_tokens": 100_000_000, "output_tokens": 0}
    (log_dir / "ai_usage.ndjson").write_bytes(orjson.dumps(line) + b"\n")  # $15: gpt-4o-mini at its cap
    assert cli("costs", "tick").exit_code == 0
    page, section = open_card("costs")
    expect(section.locator(".costs-monitor")).to_contain_text("Monitoring only (COST_ENFORCE=false)")
    mini = section.locator('[data-scope="gpt-4o-mini"]')
    expect(mini.locator(".badge")).to_have_text("✕OVER")
    expect(mini.locator('[role="meter"]')).to_have_attribute("aria-valuenow", "100")
    expect(mini.locator(".costs-action")).to_have_count(0)  # the action is allow
    expect(page.locator("#card-costs .card-state .badge")).to_have_text("✕OVER")


@pytest.mark.browser
def test_the_card_shows_calls_in_flight_and_the_per_call_recording_rate(open_card):
    from echoops.core import costs

    for _ in range(3):
        costs.record_usage("gpt-4o-mini", usd=0.5)
    held = costs.reserve("gpt-4o", estimate_usd=0.25)
    assert held.action == "allow"
    page, section = open_card("costs")
    calls = section.locator(".costs-calls")
    expect(calls).to_have_attribute("data-in-flight", "1")
    expect(calls).to_contain_text("Per call: 1 in flight ($0.25 reserved) · 0.6 calls/min recorded (last 5 min)")
    expect(calls).to_contain_text("Unsettled reservations settle at their estimate after 600 s.")
    expect(section.locator("[data-metric=in-flight] .metric-value")).to_have_text("1")
    expect(section.locator("[data-metric=per-min] .metric-value")).to_have_text("0.6")
    expect(section.locator('[data-scope="gpt-4o"] .costs-held')).to_have_text("+ $0.25 reserved")
    expect(section.locator('[data-scope="global"] .costs-held')).to_have_text("+ $0.25 reserved")
    expect(section.locator("[data-metric=spent] .metric-value")).to_have_text("$1.50")  # no tick needed
    expect(section.locator('[data-scope="gpt-4o-mini"] .costs-held')).to_have_count(0)
