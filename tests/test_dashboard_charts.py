"""The dashboard's time-series charts: Chart.js 4, vendored, served from the package under the
strict CSP, drawn in real Chromium (pixels on the canvas), with hover values and a text fallback."""

from __future__ import annotations

import hashlib
import re
import zipfile
from pathlib import Path

import httpx
import pytest

from tests.browser import DESKTOP, csp_violations, enter_key, new_page, wait_for, wait_ready

ROOT = Path(__file__).resolve().parent.parent
VENDOR = ROOT / "echoops" / "dashboard" / "vendor"
CHART_JS = "chart-4.6.1.umd.js"
CHARTS = {  # chart id -> (card, caption, the first series' colour variable)
    "slo-p95": ("slo", "p95 latency vs target, last 24 h", "--chart-1"),
    "slo-burn": ("slo", "Error budget burn rate (1 h window), last 24 h", "--chart-2"),
    "costs-spend": ("costs", "AI spend today (UTC day) vs the global cap", "--chart-1"),
    "scale-workers": ("scale", "Workers and backlog, with the 30-minute forecast", "--chart-1"),
}


def test_the_vendored_chart_js_is_the_npm_build_with_its_licences():
    readme = (VENDOR / "README.md").read_text()
    [recorded] = re.findall(r"SHA-256 `([0-9a-f]{64})`", readme)
    body = (VENDOR / CHART_JS).read_bytes()
    assert hashlib.sha256(body).hexdigest() == recorded  # byte for byte the npm tarball's dist/chart.umd.js
    assert body.startswith(b"/*!\n * Chart.js v4.6.1\n")
    assert "MIT License" in (VENDOR / "chart.js.LICENSE.md").read_text()
    assert "Jukka Kurkela" in (VENDOR / "kurkle-color.LICENSE.md").read_text()  # bundled inside the UMD build
    index = (ROOT / "echoops" / "dashboard" / "index.html").read_text()
    assert index.index(f"static/vendor/{CHART_JS}") < index.index("static/app.js")  # loaded before the cards


def test_chart_js_is_served_from_the_package_with_its_type_and_a_long_cache(server):
    r = httpx.get(f"{server.url}/static/vendor/{CHART_JS}")
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/javascript; charset=utf-8"
    assert r.headers["cache-control"] == "public, max-age=31536000, immutable"  # the name carries the version
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.content == (VENDOR / CHART_JS).read_bytes()
    again = httpx.get(f"{server.url}/static/vendor/{CHART_JS}", headers={"If-None-Match": r.headers["etag"]})
    assert again.status_code == 304
    shell = httpx.get(f"{server.url}/static/app.js")  # the shell's own files are revalidated on every load
    assert shell.headers["content-type"] == "text/javascript; charset=utf-8"
    assert shell.headers["cache-control"] == "no-cache"


def test_the_wheel_ships_the_vendored_files(tmp_path):
    from hatchling.builders.wheel import WheelBuilder

    [wheel] = list(WheelBuilder(str(ROOT)).build(directory=str(tmp_path), versions=["standard"]))
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in (CHART_JS, "chart.js.LICENSE.md", "kurkle-color.LICENSE.md"):
        assert f"echoops/dashboard/vendor/{name}" in names
    assert "echoops/dashboard/index.html" in names and "echoops/dashboard/cards/scale.js" in names
    # the build hook compiles the ingest loops into it (a platform wheel), with their stub
    assert {"echoops/core/native/_ingest.c", "echoops/core/native/_ingest.pyi"} <= names
    assert any(n.startswith("echoops/core/native/_ingest.") and n.endswith(".so") for n in names)
    assert not Path(wheel).name.endswith("-py3-none-any.whl")


def _seed(cli) -> None:
    """The demo's data, every tick run (two costs ticks: spend through the day has points)."""
    assert cli("demo", "seed").exit_code == 0
    for job in (("slo", "tick"), ("costs", "tick"), ("scale", "tick"), ("scale", "tick"), ("costs", "tick")):
        assert cli(*job).exit_code in (0, 1), job


PIXELS = """([id, color]) => {
  const canvas = document.querySelector(`[data-chart="${id}"] canvas`);
  const [r, g, b] = color.match(/[0-9a-f]{2}/gi).map(h => parseInt(h, 16));
  const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  let drawn = 0, line = 0;
  for (let i = 0; i < data.length; i += 4) {
    if (data[i + 3] > 0) drawn++;
    const near = Math.abs(data[i] - r) < 40 && Math.abs(data[i + 1] - g) < 40 && Math.abs(data[i + 2] - b) < 40;
    if (near && data[i + 3] > 128) line++;
  }
  return {drawn, line, total: data.length / 4};
}"""

POINT = """(id) => {
  const canvas = document.querySelector(`[data-chart="${id}"] canvas`);
  const chart = Chart.getChart(canvas);
  const points = chart.getDatasetMeta(0).data;
  const p = points[Math.floor(points.length / 2)];
  return {x: p.x, y: p.y};
}"""

TOOLTIP = """(id) => {
  const chart = Chart.getChart(document.querySelector(`[data-chart="${id}"] canvas`));
  return {active: chart.tooltip.getActiveElements().length, opacity: chart.tooltip.opacity,
          title: chart.tooltip.title, body: chart.tooltip.body.map(b => b.lines.join(" "))};
}"""


@pytest.mark.slow
@pytest.mark.browser
def test_every_chart_draws_and_shows_values_on_hover(open_card, cli):
    _seed(cli)
    page, _ = open_card("slo", timezone_id="Europe/Berlin")
    assert page.evaluate("Chart.version") == "4.6.1"
    for chart_id, (card_id, caption, colour) in CHARTS.items():
        fig = page.locator(f"#card-{card_id} [data-chart='{chart_id}']")
        assert fig.locator("figcaption").inner_text() == caption
        canvas = fig.locator("canvas")
        canvas.scroll_into_view_if_needed()
        # the caption sits above its chart, the latest values as text under it
        cap_box, canvas_box = fig.locator("figcaption").bounding_box(), canvas.bounding_box()
        latest_box = fig.locator(".chart-latest").bounding_box()
        assert (
            cap_box["y"] + cap_box["height"]
            <= canvas_box["y"]
            < canvas_box["y"] + canvas_box["height"]
            <= latest_box["y"]
        )
        assert canvas_box["width"] > 250 and canvas_box["height"] > 150
        latest = fig.locator(".chart-latest").inner_text()
        assert canvas.get_attribute("aria-label") == f"{caption}: {latest}"  # the screen reader's text
        colour_hex = page.evaluate(f"getComputedStyle(document.documentElement).getPropertyValue('{colour}').trim()")
        pixels = page.evaluate(PIXELS, [chart_id, colour_hex])
        assert pixels["drawn"] > 0.02 * pixels["total"], (chart_id, pixels)  # axes, grid, labels, lines
        assert pixels["line"] > 30, (chart_id, pixels)  # the first series itself, in its colour
        # hover a point: the tooltip shows the time (viewer's zone and UTC) and the value
        point = page.evaluate(POINT, chart_id)
        page.mouse.move(canvas_box["x"] + point["x"], canvas_box["y"] + point["y"])
        wait_for(
            page,
            f"() => Chart.getChart(document.querySelector('[data-chart=\"{chart_id}\"] canvas')).tooltip.opacity > 0",
        )
        tip = page.evaluate(TOOLTIP, chart_id)
        assert tip["active"] >= 1, (chart_id, tip)
        assert re.fullmatch(
            r"\w{3} \d{1,2} \w{3}, \d\d:\d\d CET \((\w{3} \d{1,2} \w{3}, )?\d\d:\d\d UTC\)", tip["title"][0]
        ), tip
        assert tip["body"] and all(": " in line for line in tip["body"]), tip
    slo_latest = page.locator("[data-chart='slo-p95'] .chart-latest").inner_text()
    when = r"\w{3} \d+ \w{3}, \d\d:\d\d CET \((\w{3} \d+ \w{3}, )?\d\d:\d\d UTC\)"
    assert re.fullmatch(rf"p95 \d+ ms at {when} \(target 800 ms\)", slo_latest)
    spend = page.locator("[data-chart='costs-spend'] .chart-latest").inner_text()
    assert re.fullmatch(r"spent \$[\d,]+\.\d\d by .+; forecast \$[\d,]+\.\d\d by midnight UTC; cap \$25\.00", spend)
    scale = page.locator("[data-chart='scale-workers'] .chart-latest").inner_text()
    assert re.fullmatch(r"now: desired \d, actual \d workers, backlog [\d,]+ jobs; in 30 min: .+", scale)
    assert csp_violations(page) == []  # Chart.js sizes its canvas through the CSSOM, which the CSP allows


@pytest.mark.browser
def test_without_chart_js_each_chart_keeps_its_caption_and_latest_values(browser, live_server, cli):
    _seed(cli)
    server = live_server()
    page = new_page(browser, viewport=DESKTOP)
    page.route(f"**/static/vendor/{CHART_JS}", lambda route: route.abort())  # a failed load
    page.goto(server.url + "/")
    wait_for(page, "() => document.body.dataset.shell === 'started' && !!window.echoops")
    enter_key(page, server.key)
    wait_ready(page)
    assert page.evaluate("typeof window.Chart") == "undefined"
    for chart_id, (_, caption, _) in CHARTS.items():
        fig = page.locator(f"[data-chart='{chart_id}']")
        assert fig.locator("figcaption").inner_text() == caption
        assert fig.locator(".chart-latest").inner_text()
        assert fig.locator(".chart-missing").inner_text().startswith("The chart library did not load")
    assert page.console_errors == [] and csp_violations(page) == []
    page.context.close()
