"""Browser fixtures for dashboard tests: Debian's headless Chromium driven by Playwright.

Never downloads a browser: it launches `/usr/bin/chromium` with flags that keep it off the
network (this machine has none). tests/conftest.py registers this module as a plugin, so
the fixtures `browser` and `dashboard` are available to every test (one Chromium for the
whole session); import only the helpers you use:

    from tests.browser import DESKTOP, card, open_dashboard

Fixtures:

- `browser`: one Chromium for the whole session.
- `dashboard`: a page on the live `server` (conftest) with the key entered and every card
  rendered once; its context is closed after the test.
- `open_card`: what every card test starts with. `open_card("costs", **env)` starts a live
  server with `env` (seed or tick first), opens the dashboard at desktop width and returns
  `(page, section)`; `open_card("slo", server=server)` reuses a server (to see it again after
  another tick); `viewport=PHONE` and `timezone_id="Europe/Berlin"` open it as that viewer.
  After the test every page is closed, and a console error or CSP violation on any of them
  fails the test.

Helpers (for tests that need more control):

- `open_dashboard(browser, server, *, key=None, setup_js=None, viewport=PHONE, timezone_id=None) -> page`
  opens the server in a fresh context, runs `setup_js` (e.g. an `echoops.registerCard(...)`
  for a throwaway card) before the key is entered, enters `key` (default `server.key`) and
  waits until the shell is ready. The caller closes `page.context`.
- `wait_ready(page)`: waits until the key is accepted and no card is still rendering.
- `card(page, id)`: the card's `<section>` locator (`#card-<id>`).
- Every page opened here records `page.console_errors` (console.error and uncaught errors;
  Chromium's "Failed to load resource" lines are left out, see the next list),
  `page.bad_responses` (`(status, url)` of every answer >= 400) and `page.request_urls`
  (every URL requested); `csp_violations(page)` lists what the CSP blocked.

Example (a phase's card test):

    @pytest.mark.browser
    def test_slo_card_shows_state(open_card, log_dir):
        ...                                         # write inputs, tick: then open
        page, section = open_card("slo")
        expect(section.locator(".badge")).to_have_text(re.compile("GREEN|YELLOW|RED"))
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest

CHROMIUM = os.environ.get("ECHOOPS_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}

# Injected before the page's own scripts (CDP, so the page's CSP does not apply to it):
# keeps CSP violations where a test can read them.
_RECORD_CSP = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", function (e) {
  window.__cspViolations.push(e.violatedDirective + " " + (e.blockedURI || "inline"));
});
"""


@pytest.fixture(scope="session", name="browser")
def browser_fixture():
    """One headless Debian Chromium per test session (skips when it is not installed)."""
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} not found (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()


def new_page(browser, *, viewport: dict | None = None, timezone_id: str | None = None):
    """A page in a fresh context (the viewer's time zone `timezone_id`, default the machine's)
    that records console errors and request URLs."""
    context = browser.new_context(viewport=viewport or DESKTOP, service_workers="block", timezone_id=timezone_id)
    context.add_init_script(_RECORD_CSP)
    page = context.new_page()
    page.console_errors = []
    page.request_urls = []
    page.bad_responses = []
    page.on("console", lambda msg: _on_console(page, msg))
    page.on("pageerror", lambda exc: page.console_errors.append(f"pageerror: {exc}"))
    page.on("request", lambda req: page.request_urls.append(req.url))
    page.on("response", lambda resp: resp.status >= 400 and page.bad_responses.append((resp.status, resp.url)))
    page.set_default_timeout(10_000)
    return page


def _on_console(page, msg) -> None:
    # Chromium also logs every non-2xx fetch as a console error; those are in bad_responses.
    if msg.type == "error" and not msg.text.startswith("Failed to load resource"):
        where = (msg.location or {}).get("url", "")
        page.console_errors.append(f"{msg.text} [{where}]")


def csp_violations(page) -> list[str]:
    """CSP violations the page reported so far."""
    return page.evaluate("window.__cspViolations || []")


def wait_for(page, js_function: str, timeout_s: float = 10.0):
    """Poll `js_function` (e.g. "() => ...") until truthy; returns its value.

    `page.wait_for_function` compiles its predicate with eval, which the dashboard's CSP
    refuses; `page.evaluate` goes through the debugger protocol, which the CSP does not see.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        value = page.evaluate(js_function)
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"still false after {timeout_s} s: {js_function}")
        page.wait_for_timeout(50)


def wait_ready(page) -> None:
    """Wait until the key is accepted and every registered card has rendered at least once."""
    wait_for(
        page,
        "() => document.body.dataset.keyState === 'ok' && !!document.body.dataset.refreshedAt"
        " && !document.querySelector('.card[aria-busy]')",
    )


def card(page, card_id: str):
    """Locator of one card's `<section>` (`#card-<id>`)."""
    return page.locator(f"#card-{card_id}")


def enter_key(page, key: str) -> None:
    page.fill("#key-input", key)
    page.click("#key-submit")


def open_dashboard(
    browser, server, *, key: str | None = None, setup_js: str | None = None, viewport=None, timezone_id=None
):
    """Open the dashboard on `server`, run `setup_js`, enter the key, wait for the shell; -> page."""
    page = new_page(browser, viewport=viewport, timezone_id=timezone_id)
    page.goto(server.url + "/")
    wait_for(page, "() => document.body.dataset.shell === 'started' && !!window.echoops")
    if setup_js:
        page.evaluate(setup_js)
    enter_key(page, server.key if key is None else key)
    wait_ready(page)
    return page


@pytest.fixture(name="open_card")
def open_card_fixture(browser, live_server) -> Iterator:
    """Factory: open_card(card_id, server=None, **env) -> (page, card section); see the module doc."""
    pages = []

    def open_(card_id: str, server=None, viewport=None, timezone_id=None, **env: str):
        page = open_dashboard(
            browser, server or live_server(**env), viewport=viewport or DESKTOP, timezone_id=timezone_id
        )
        pages.append(page)
        return page, card(page, card_id)

    yield open_
    problems = []
    for page in pages:
        problems += [f"console: {e}" for e in page.console_errors] + [f"CSP: {v}" for v in csp_violations(page)]
        page.context.close()
    assert problems == [], "the dashboard logged errors"


@pytest.fixture(name="dashboard")
def dashboard_fixture(browser, server) -> Iterator:
    """The dashboard on the live `server`, key entered, cards rendered (desktop width)."""
    page = open_dashboard(browser, server)
    yield page
    page.context.close()
