"""The dashboard shell: local assets only, key prompt, X-Dash-Key, card isolation, phone width."""

from __future__ import annotations

import os
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

import echoops
from tests.browser import (
    DESKTOP,
    PHONE,
    card,
    csp_violations,
    enter_key,
    new_page,
    open_dashboard,
    wait_for,
    wait_ready,
)
from tests.conftest import start_server, stop_server

DASHBOARD = Path(echoops.__file__).parent / "dashboard"
CARD_FILES = ("slo", "incidents", "portal", "costs", "scale")

# Throwaway cards: one calls an /api path that does not exist (404 JSON proves the key got
# through the auth hook), one throws (only that card shows the error), one counts renders.
TEST_CARDS = """
(() => {
  const E = window.echoops;
  window.__renders = 0;
  E.registerCard({id: "probe", title: "Probe", order: 20, render: async (body) => {
    try { await E.api("/api/test-shell/missing"); body.replaceChildren("unexpected success"); }
    catch (err) {
      body.replaceChildren(E.el("p", {class: "probe-result"}, err.name + " " + err.status + " " + err.body.error));
    }
  }});
  E.registerCard({id: "broken", title: "Broken", order: 5, render: async () => { throw new Error("boom"); }});
  E.registerCard({id: "counter", title: "Counter", order: 30, render: async (body, ctx) => {
    window.__renders += 1;
    ctx.setState("green");
    body.replaceChildren(E.el("p", {class: "count"}, "renders " + window.__renders),
      E.sparkline([1, 3, null, 2, 5], {label: "demo", target: 4}));
  }});
})();
"""


class _Assets(HTMLParser):
    def __init__(self):
        super().__init__()
        self.refs: list[str] = []
        self.inline_scripts = 0
        self.style_attrs = 0
        self.style_tags = 0
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "style" in attrs:
            self.style_attrs += 1
        if tag == "style":
            self.style_tags += 1
        if any(name.startswith("on") for name in attrs):
            self.inline_scripts += 1
        for name in ("src", "href"):
            if attrs.get(name):
                self.refs.append(attrs[name])
        self._in_script = tag == "script"

    def handle_data(self, data):
        if self._in_script and data.strip():
            self.inline_scripts += 1

    def handle_endtag(self, tag):
        self._in_script = False


def test_index_references_only_local_assets():
    parser = _Assets()
    parser.feed((DASHBOARD / "index.html").read_text())
    assert parser.inline_scripts == 0 and parser.style_attrs == 0 and parser.style_tags == 0
    assets = [ref for ref in parser.refs if not ref.startswith("#")]
    for ref in assets:
        assert not re.match(r"^([a-z]+:|//)", ref, re.I), ref
        assert ref.startswith("static/"), ref
        assert (DASHBOARD / ref.removeprefix("static/")).is_file(), ref
    expected = ["static/vendor/chart-4.6.1.umd.js", "static/app.js"] + [
        f"static/cards/{name}.js" for name in CARD_FILES
    ]
    assert [ref for ref in assets if ref.endswith(".js")] == expected  # Chart.js, app.js, then the cards
    assert {f"static/cards/{name}.css" for name in CARD_FILES} <= set(assets)
    for path in [DASHBOARD / "app.js", DASHBOARD / "style.css", *sorted((DASHBOARD / "cards").iterdir())]:
        text = path.read_text()
        urls = [u for u in re.findall(r"(?:https?:)?//[\w.-]+\.[a-z]{2,}[^\s\"')]*", text) if "www.w3.org" not in u]
        assert urls == [], f"{path.name} refers to {urls}"
        assert not re.search(r"\.(innerHTML|outerHTML)\s*=|insertAdjacentHTML|document\.write", text), path.name
        assert not re.search(r"setAttribute\(\s*[\"']style", text), path.name


@pytest.mark.browser
def test_key_prompt_wrong_key_then_right_key(browser, server):
    page = new_page(browser, viewport=PHONE)
    page.goto(server.url + "/")
    wait_for(page, "() => document.body.dataset.keyState === 'none'")
    assert page.locator("#key-panel").is_visible()
    assert page.locator("#cards").is_hidden()
    assert page.title() == "echoops dashboard"
    page.evaluate(TEST_CARDS)

    enter_key(page, "not-the-key")
    wait_for(page, "() => document.body.dataset.keyState === 'wrong'")
    message = page.locator("#key-message")
    assert message.is_visible()
    assert message.inner_text().startswith("Wrong key")
    assert page.locator("#key-panel").is_visible()
    assert page.evaluate("window.__renders") == 0  # no card rendered without an accepted key

    sent: list[tuple[str, str | None]] = []
    page.on("request", lambda req: sent.append((req.url, req.headers.get("x-dash-key"))))
    enter_key(page, server.key)
    wait_ready(page)
    assert page.locator("#key-panel").is_hidden()
    assert page.locator("#cards").is_visible()
    assert page.evaluate("sessionStorage.getItem('echoops.dashKey')") == server.key
    assert (server.url + "/api/test-shell/missing", server.key) in sent

    # The key passed the auth hook: the probe card sees the route's 404 JSON, not a 401.
    assert card(page, "probe").locator(".probe-result").inner_text() == "ApiError 404 not_found"
    # A throwing card shows its error in place; the others still render, in `order`.
    assert "boom" in card(page, "broken").locator(".card-error").inner_text()
    assert card(page, "counter").locator(".count").inner_text() == "renders 1"
    assert card(page, "counter").locator(".badge").text_content() == "\u2713GREEN"
    ids = page.eval_on_selector_all("#cards > .card", "els => els.map(e => e.id)")
    mine = [i for i in ids if i in ("card-broken", "card-probe", "card-counter")]
    assert mine == ["card-broken", "card-probe", "card-counter"]  # phase cards may sit between
    assert page.locator("#refresh-status time").count() == 1

    # Phone width: nothing wider than the screen.
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    assert page.evaluate("document.body.scrollWidth") <= PHONE["width"]

    # Refresh re-renders every card.
    page.click("#refresh-btn")
    wait_for(page, "() => window.__renders === 2 && !document.querySelector('.card[aria-busy]')")

    # Desktop width: cards sit side by side.
    page.set_viewport_size(DESKTOP)
    tops = page.eval_on_selector_all("#cards > .card", "els => els.map(e => e.getBoundingClientRect().top)")
    assert tops[0] == tops[1]  # two cards on the first row

    # Reload: the key is remembered for the tab. Forget: prompt again, storage cleared.
    page.reload()
    wait_ready(page)
    assert page.locator("#key-panel").is_hidden()
    page.click("#forget-btn")
    wait_for(page, "() => document.body.dataset.keyState === 'none'")
    assert page.locator("#key-panel").is_visible()
    assert page.evaluate("sessionStorage.getItem('echoops.dashKey')") is None

    host = server.url + "/"
    assert page.request_urls and all(url.startswith(host) for url in page.request_urls), page.request_urls
    assert page.console_errors == []
    assert csp_violations(page) == []
    # Every static asset loaded; the only refusals are the wrong key's and the probe's 404.
    assert [(status, url) for status, url in page.bad_responses if "/api/" not in url] == []
    assert (401, server.url + "/api/ping") in page.bad_responses
    assert (404, server.url + "/api/test-shell/missing") in page.bad_responses
    page.context.close()


@pytest.mark.browser
def test_server_without_dashboard_key_is_named(browser, isolated_env):
    env = dict(os.environ, DASHBOARD_KEY="")
    srv = start_server(env, workers=1, wsgi=True)
    try:
        page = new_page(browser)
        page.goto(srv.url + "/")
        wait_for(page, "() => document.body.dataset.keyState === 'none'")
        enter_key(page, "anything")
        wait_for(page, "() => document.body.dataset.keyState === 'unset'")
        assert "no DASHBOARD_KEY" in page.locator("#key-message").inner_text()
        assert page.console_errors == []
        page.context.close()
    finally:
        stop_server(srv.proc)


@pytest.mark.browser
def test_auto_refresh_every_30s(browser, server):
    page = new_page(browser)
    page.clock.install()
    page.goto(server.url + "/")
    wait_for(page, "() => document.body.dataset.keyState === 'none'")
    page.evaluate(TEST_CARDS)
    enter_key(page, server.key)
    wait_ready(page)
    assert page.evaluate("window.__renders") == 1
    page.clock.run_for(31_000)
    wait_for(page, "() => window.__renders === 2")
    page.context.close()


@pytest.mark.browser
def test_helpers(browser, server):
    page = open_dashboard(browser, server)
    out = page.evaluate(
        """() => {
        const E = window.echoops, svgInfo = (s) => ({
          tag: s.tagName, title: s.querySelector("title").textContent, label: s.getAttribute("aria-label"),
          paths: s.querySelectorAll("path.spark-line").length, dots: s.querySelectorAll("circle").length,
          target: s.querySelectorAll("line.spark-target").length, empty: s.querySelectorAll("line.spark-empty").length,
          width: s.getAttribute("width"), d: (s.querySelector("path") || {getAttribute: () => ""}).getAttribute("d")});
        return {
          empty: svgInfo(E.sparkline([], {label: "p95"})),
          one: svgInfo(E.sparkline([7], {label: "one"})),
          flat: svgInfo(E.sparkline([3, 3, 3], {label: "flat", width: 90, height: 20})),
          gaps: svgInfo(E.sparkline([1, null, 2, NaN, 3], {label: "gaps", target: 2.5})),
          nulls: svgInfo(E.sparkline([null, null], {label: "nulls"})),
          badges: ["green", "yellow", "red", "ok", "warn", "throttle", "failed", "pending", "skipped", "weird"].map(
            (s) => [E.stateBadge(s).className, E.stateBadge(s).textContent]),
          fmt: [E.fmt.ms(85.4), E.fmt.ms(1234), E.fmt.ms(null), E.fmt.pct(92.34), E.fmt.pct(0.05), E.fmt.pct(0),
                E.fmt.ratio(0.0123), E.fmt.usd(13.8), E.fmt.usd(0.0042), E.fmt.usd(1234.5), E.fmt.num(12345.678, 1),
                E.fmt.usd(150.832), E.fmt.usd(7.67002), E.fmt.usd(0.00001), E.fmt.usd(-3.5),
                E.fmt.ago("2026-01-01T00:00:00Z", "2026-01-01T00:05:00Z"), E.fmt.ago(1767225600, 1767225602),
                E.fmt.ago("junk")],
          elText: E.el("p", {class: "x"}, "<b>not html</b>").innerHTML,
          apiError: (() => { const e = new E.ApiError(400, {error: "invalid", detail: "bad cap"});
                             return [e instanceof Error, e.name, e.status, e.message]; })(),
        };
      }"""
    )
    assert out["empty"]["title"] == "p95: no data" and out["empty"]["empty"] == 1 and out["empty"]["tag"] == "svg"
    assert out["one"]["dots"] == 1 and out["one"]["paths"] == 0 and out["one"]["title"].startswith("one: 1 points")
    assert out["flat"]["paths"] == 1 and out["flat"]["width"] == "90"
    assert out["flat"]["d"] == "M3.0 10.0 L45.0 10.0 L87.0 10.0"
    assert out["gaps"]["target"] == 1 and out["gaps"]["d"].count("M") == 3 and "target 2.5" in out["gaps"]["title"]
    assert out["nulls"]["title"] == "nulls: no data"
    assert out["badges"] == [
        ["badge badge-good", "\u2713GREEN"],
        ["badge badge-warn", "!YELLOW"],
        ["badge badge-bad", "\u2715RED"],
        ["badge badge-good", "\u2713OK"],
        ["badge badge-warn", "!WARN"],
        ["badge badge-bad", "\u2715THROTTLE"],
        ["badge badge-bad", "\u2715FAILED"],
        ["badge badge-info", "\u2026PENDING"],
        ["badge badge-muted", "\u2013SKIPPED"],
        ["badge badge-muted", "\u2013WEIRD"],
    ]
    assert out["fmt"] == [
        "85 ms",
        "1.23 s",
        "\u2014",
        "92.3%",
        "0.05%",
        "0%",
        "1.23%",
        "$13.80",
        "$0.0042",
        "$1,234.50",
        "12,345.7",
        "$150.83",
        "$7.67",
        "<$0.0001",
        "-$3.50",
        "5 min ago",
        "just now",
        "\u2014",
    ]
    assert out["elText"] == "&lt;b&gt;not html&lt;/b&gt;"
    assert out["apiError"] == [True, "ApiError", 400, "bad cap"]
    assert page.console_errors == []
    page.context.close()


@pytest.mark.browser
@pytest.mark.parametrize(
    "zone, expected",
    [
        ("Europe/Berlin", ["Mon 30 Nov, 07:51 CET (06:51 UTC)", "Tue 1 Dec, 00:30 CET (Mon 30 Nov, 23:30 UTC)"]),
        ("UTC", ["Mon 30 Nov, 06:51 UTC", "Mon 30 Nov, 23:30 UTC"]),
        ("America/New_York", ["Mon 30 Nov, 01:51 GMT-5 (06:51 UTC)", "Mon 30 Nov, 18:30 GMT-5 (23:30 UTC)"]),
    ],
)
def test_dates_carry_the_day_and_the_time_in_the_viewers_zone_and_utc(browser, server, zone, expected):
    page = open_dashboard(browser, server, timezone_id=zone)
    shown = page.evaluate(
        "() => [echoops.fmt.when('2026-11-30T06:51:42Z'), echoops.fmt.when(1796081400), echoops.fmt.when(null)]"
    )
    assert shown == [*expected, "\u2014"]
    page.context.close()


def test_card_body_skips_null_children(browser, server):
    """Cards write `cond ? node : null`; the card body must not print the word "null"."""
    setup = """
    window.echoops.registerCard({id: "nulls", title: "Nulls", order: 1, render: async (body, ctx) => {
      body.replaceChildren(ctx.el("p", {class: "kept"}, "kept"), null, false, undefined, "text");
    }});
    """
    page = open_dashboard(browser, server, setup_js=setup)
    try:
        section = card(page, "nulls")
        wait_for(page, "() => document.querySelector('#card-nulls .kept') !== null")
        assert section.locator(".card-body").inner_text().split() == ["kept", "text"]
    finally:
        page.context.close()
