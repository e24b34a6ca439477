"""The SLO & Error Budget card in real Chromium: green, yellow and red with the gate banner."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from echoops.core import slo
from tests.test_slo import T0, history


@pytest.mark.browser
def test_slo_card_shows_green_yellow_and_red_with_the_gate(open_card, live_server, settings, log_dir):
    server = live_server()
    history(log_dir, end=T0 + 3600, minutes=60, per_minute=20)
    slo.tick(s=settings, now=T0 + 3600)
    page, section = open_card("slo", server=server)
    expect(section.locator(".card-head .badge")).to_have_text(re.compile("GREEN"))
    expect(section.locator(".slo-head .badge")).to_have_attribute("data-state", "green")
    expect(section.locator("[data-metric=p95] .metric-value")).to_have_text(
        re.compile(r"^1(19|20|21) ms$")
    )  # within the sketch's 1%
    expect(section.locator("[data-metric=p95] .metric-label")).to_have_text("p95 last 24h (target 800 ms)")
    expect(section.locator("[data-metric=error_rate] .metric-value")).to_have_text("0%")
    expect(section.locator(".slo-remaining")).to_have_text("100.0%")
    expect(section.locator("[role=meter]")).to_have_attribute("aria-valuenow", "100")
    expect(section.locator(".slo-burn dt")).to_have_text(["10m", "1h", "2h", "6h", "24h", "7d"])
    expect(section.locator(".slo-gate")).to_have_count(0)
    expect(section.locator(".slo-charts canvas")).to_have_count(2)

    # a 30-minute burst at 5%: yellow, burn 1h 2.5, no gate
    history(log_dir, end=T0 + 5400, minutes=30, per_minute=20, err_pct=5)
    slo.tick(s=settings, now=T0 + 5400)
    page, section = open_card("slo", server=server)
    expect(section.locator(".slo-head .badge")).to_have_text(re.compile("YELLOW"))
    expect(section.locator(".slo-burn-item[data-window='1h'] dd")).to_have_text("2.50\u00d7")
    expect(section.locator(".slo-burn-item[data-window='1h']")).to_have_class(re.compile("slo-hot"))
    expect(section.locator(".slo-reasons")).to_contain_text("burn 1h 2.50 > 1")
    expect(section.locator(".slo-gate")).to_have_count(0)

    # sustained: red, the gate banner with its reason
    history(log_dir, end=T0 + 10800, minutes=90, per_minute=20, err_pct=5)
    slo.tick(s=settings, now=T0 + 10800)
    page, section = open_card("slo", server=server)
    expect(section.locator(".slo-head .badge")).to_have_text(re.compile("RED"))
    expect(section.locator(".card-head .badge")).to_have_attribute("data-state", "red")
    expect(section.locator(".slo-alert")).to_have_text("burn alert: gate")
    expect(section.locator(".slo-gate")).to_contain_text("Deploy gate set")
    expect(section.locator(".slo-gate-reason")).to_contain_text("error budget burn 5.00x over 2h")
    expect(section.locator(".slo-charts canvas")).to_have_count(2)
    points = "ch => Chart.getChart(ch).data.datasets[0].data.map(p => p.y)"
    p95s = section.locator("[data-chart='slo-p95'] canvas").evaluate(points)
    assert len(p95s) == 6 and all(118 <= p <= 122 for p in p95s)  # the six ticks' p95, within the sketch's 1%
    # the burn chart plots burn 1h (5x over the last hour; burn 24h would end at 3.33), with the 1x and 2x lines
    burn = section.locator("[data-chart='slo-burn'] canvas")
    assert burn.evaluate(points) == [0, 0, 0, 0, 2.5, 5]  # the 15-minute backfill, then the three ticks
    assert burn.evaluate("ch => Chart.getChart(ch).data.datasets.map(d => d.label)") == [
        "burn 1 h", "1\u00d7 on budget", "2\u00d7 gate (sustained 2 h)",
    ]  # fmt: skip
    expect(section.locator("[data-chart='slo-burn'] .chart-latest")).to_have_text(
        "burn 5.00\u00d7 at Fri 27 Nov, 15:00 UTC (1\u00d7 spends the budget exactly)"  # a viewer in UTC
    )


@pytest.mark.browser
def test_slo_card_shows_the_operators_override(open_card, live_server, settings, log_dir):
    server = live_server()
    history(log_dir, end=T0 + 10800, minutes=180, per_minute=20, err_pct=5)
    slo.tick(s=settings, now=T0 + 10800)
    slo.clear_gate("rolled back <v42>", for_s="6h", s=settings, now=T0 + 10860)
    slo.tick(s=settings, now=T0 + 11700)
    page, section = open_card("slo", server=server)
    expect(section.locator(".slo-gate")).to_have_count(0)
    box = section.locator(".slo-override")
    expect(box).to_have_attribute("data-by", "command")
    expect(box.locator("strong")).to_have_text("Gate override")
    expect(box.locator(".slo-override-reason")).to_have_text("rolled back <v42>")  # text, never markup
    expect(box.locator(".slo-override-until")).to_contain_text("The gate condition holds right now.")
    expect(box.locator(".slo-override-until")).to_contain_text("after it drops to 2\u00d7 or below")


@pytest.mark.browser
def test_slo_card_says_when_the_prometheus_source_is_stale(open_card, live_server, monkeypatch):
    monkeypatch.setenv("SLO_SOURCE", "prometheus")
    monkeypatch.setenv("PROMETHEUS_URL", "http://127.0.0.1:9")  # nothing listens on the discard port
    from echoops.core import config, store
    from echoops.core.slo import SourceUnavailable

    store.close_all()
    with pytest.raises(SourceUnavailable):
        slo.tick(s=config.settings(), now=T0)
    server = live_server()
    page, section = open_card("slo", server=server)
    box = section.locator(".slo-stale")
    expect(box.locator("strong")).to_have_text("Stale: the SLO source cannot answer")
    expect(box.locator(".slo-stale-error")).to_contain_text("Prometheus at http://127.0.0.1:9 is unavailable")
    expect(box).to_contain_text("No tick has succeeded yet.")


@pytest.mark.browser
def test_a_dashboard_refresh_asks_conditionally_and_keeps_the_card(open_card, live_server, settings, log_dir):
    server = live_server()
    history(log_dir, end=T0 + 3600, minutes=60, per_minute=20)
    slo.tick(s=settings, now=T0 + 3600)
    page, section = open_card("slo", server=server)
    expect(section.locator(".slo-head .badge")).to_have_text(re.compile("GREEN"))

    def refresh() -> int:
        with page.expect_response(lambda r: r.url.endswith("/api/slo/status")) as answer:
            page.click("#refresh-btn")
        return answer.value.status

    assert refresh() == 304  # nothing changed: the card is drawn again from the body it holds
    expect(section.locator(".slo-head .badge")).to_have_text(re.compile("GREEN"))
    expect(section.locator("[data-metric=p95] .metric-value")).to_have_text(re.compile(r"^1(19|20|21) ms$"))
    history(log_dir, end=T0 + 5400, minutes=30, per_minute=20, err_pct=5)
    slo.tick(s=settings, now=T0 + 5400)
    assert refresh() == 200
    expect(section.locator(".slo-head .badge")).to_have_text(re.compile("YELLOW"))
