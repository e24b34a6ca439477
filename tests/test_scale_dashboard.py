"""The Autoscale dashboard card in real Chromium: desired vs actual, dry-run badge, reason, sparklines."""

from __future__ import annotations

import time

import pytest
from playwright.sync_api import expect

from tests.browser import wait_ready
from tests.test_scale import growing_backlog, write_queue


@pytest.mark.browser
def test_scale_card_shows_desired_vs_actual_and_records_a_dry_run(open_card, log_dir):
    write_queue(log_dir, growing_backlog(time.time() - 1800))
    (log_dir / "deploy_gate.flag").write_text("")
    page, section = open_card("scale")
    expect(section.locator(".scale-mode")).to_have_text("DRY RUN")
    expect(section.locator("[data-metric=desired] .metric-value")).to_have_text("4")
    expect(section.locator("[data-metric=actual] .metric-value")).to_have_text("2")
    expect(section.locator(".scale-reason")).to_contain_text("backlog 600 + forecast 1800 in 30m needs 4 workers")
    expect(section.locator(".scale-reason")).to_contain_text("deploy gate set: no scale-up, stays 2")
    # the kv rows themselves: the reason above also says "deploy gate set: no scale-up"
    expect(section.locator("tr", has_text="deploy gate").locator("td")).to_contain_text("set: no scale-up")
    expect(section.locator("tr", has_text="cooldown").locator("td")).to_have_text("none")  # dry run: no change
    # which forecast is in use and why: half an hour of samples is no seasonal history
    expect(section.locator(".scale-method")).to_have_text(
        "damped trend (phi 0.98/min); no seasonal profile yet: daily profile needs 3 days of samples "
        "(have 0.0); weekly profile needs 14 days of samples (have 0.0)"
    )
    source = section.locator("tr", has_text="queue source").locator("td")
    expect(source).to_have_text("file (the app writes queue.ndjson)")
    # the p95 the autoscaler reacts to is the last 15 minutes' (the SLO card's is 24 h)
    expect(section.locator("tr", has_text="p95 last 15 min").locator("td")).to_have_text("no requests (target 800 ms)")
    expect(section).to_contain_text("No decisions recorded yet")
    chart = section.locator("[data-chart='scale-workers']")
    expect(chart.locator("figcaption")).to_have_text("Workers and backlog, with the 30-minute forecast")
    labels = "ch => Chart.getChart(ch).data.datasets.map(d => [d.label, d.data.length])"
    # now, and the queue ahead (every 5 minutes for 30): +20/min with 2 workers, down to empty with 4
    assert chart.locator("canvas").evaluate(labels) == [
        ["desired", 1], ["actual", 1], ["backlog", 1], ["backlog ahead, 2 workers", 7], ["backlog ahead, 4 workers", 7],
    ]  # fmt: skip
    ahead = "ch => Chart.getChart(ch).data.datasets.slice(3).map(d => d.data.map(p => p.y))"
    assert chart.locator("canvas").evaluate(ahead) == [
        [600, 700, 800, 900, 1000, 1100, 1200], [600, 500, 400, 300, 200, 100, 0],
    ]  # fmt: skip
    expect(chart.locator(".chart-latest")).to_have_text(
        "now: desired 4, actual 2 workers, backlog 600 jobs; in 30 min: 1,200 with 2 workers, 0 with 4"
    )
    section.get_by_role("button", name="Decide now (dry run)").click()
    wait_ready(page)
    expect(section).to_contain_text("One decision so far")
    section.get_by_role("button", name="Decide now (dry run)").click()
    wait_ready(page)
    expect(section.locator(".scale-few")).to_have_count(0)
    assert chart.locator("canvas").evaluate(labels)[:3] == [["desired", 3], ["actual", 3], ["backlog", 3]]
    assert (log_dir / "scale.ndjson").read_text().count('"event":"scale_decision"') == 2
