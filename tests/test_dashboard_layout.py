"""The dashboard's layout by element positions in real Chromium: every column of the Incidents
table reachable on a phone, and a desktop grid without holes."""

from __future__ import annotations

import time

import pytest

from echoops.core import pager
from tests.browser import PHONE, open_dashboard

DESK = {"width": 1440, "height": 900}

CELLS = """() => Array.from(document.querySelectorAll("#card-incidents .inc-table tbody tr")).map(tr =>
  Array.from(tr.querySelectorAll("td")).map(td => {
    const r = td.getBoundingClientRect();
    return {label: td.dataset.label, left: r.left, right: r.right, width: r.width, height: r.height,
            shown: getComputedStyle(td, "::before").content,
            inner: Math.max(...Array.from(td.querySelectorAll("*")).map(e => e.getBoundingClientRect().right), r.left)};
  }))"""

CARDS = """() => {
  const grid = document.getElementById("cards").getBoundingClientRect();
  const gap = parseFloat(getComputedStyle(document.getElementById("cards")).columnGap);
  const cards = Array.from(document.querySelectorAll("#cards > .card")).map(c => {
    const r = c.getBoundingClientRect();
    return {id: c.id, top: Math.round(r.top), left: r.left, right: r.right, height: Math.round(r.height)};
  });
  return {left: grid.left, right: grid.right, gap: gap, cards: cards};
}"""


def _incidents() -> None:
    now = time.time()
    long_msg = "payment webhook handler timed out after 30 s; the retry queue is at 8,000 jobs " * 3
    pager.raise_incident("CRITICAL", long_msg.strip(), "payments-webhook-worker", now=now - 120)
    pager.raise_incident("WARNING", "replica lag 12 s", "db", now=now - 60)
    pager.raise_incident("CRITICAL", "checkout down", "web", now=now - 30)
    pager.run(now=now - 30)


def rows_of(cards: list[dict]) -> list[list[dict]]:
    rows: dict[int, list[dict]] = {}
    for c in cards:
        rows.setdefault(c["top"], []).append(c)
    return [sorted(row, key=lambda c: c["left"]) for _, row in sorted(rows.items())]


@pytest.mark.browser
def test_on_a_phone_every_incidents_column_is_inside_the_screen(browser, live_server):
    _incidents()
    page = open_dashboard(browser, live_server(), viewport=PHONE)
    rows = page.evaluate(CELLS)
    assert len(rows) == 3
    for cells in rows:
        labels = [c["label"] for c in cells]
        assert labels == ["last seen", "state", "incident", "count", "pages", "telegram", "email"]
        for c in cells:
            assert c["width"] > 0 and c["height"] > 0, c  # shown, not hidden
            assert c["left"] >= 0 and c["right"] <= PHONE["width"], c  # the cell, and
            assert c["inner"] <= PHONE["width"], c  # everything in it, is on the screen
            assert c["shown"] == f'"{c["label"]}"', c  # each stacked line names its column
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]  # no sideways scroll
    # the column headers stay in the page for screen readers, out of sight
    assert page.locator("#card-incidents .inc-table thead th").count() == 7
    assert page.locator("#card-incidents .inc-table").get_attribute("role") == "table"
    page.context.close()


@pytest.mark.browser
@pytest.mark.parametrize("viewport, columns", [(DESK, 3), ({"width": 1000, "height": 900}, 2), (PHONE, 1)])
def test_the_grid_has_no_holes(browser, live_server, viewport, columns):
    _incidents()
    page = open_dashboard(browser, live_server(), viewport=viewport)
    grid = page.evaluate(CARDS)
    ids = [c["id"] for c in grid["cards"]]
    assert {"card-slo", "card-incidents", "card-portal", "card-costs", "card-scale"} <= set(ids)
    width = grid["right"] - grid["left"]
    column = (width - (columns - 1) * grid["gap"]) / columns
    for row in rows_of(grid["cards"]):
        # a row is filled edge to edge: it starts at the grid's left, each card one gap after the
        # previous, ends at the grid's right; its cards are equally tall (no gap under a short one)
        assert abs(row[0]["left"] - grid["left"]) < 1, row
        assert abs(row[-1]["right"] - grid["right"]) < 1, row
        for a, b in zip(row, row[1:], strict=False):
            assert abs(b["left"] - a["right"] - grid["gap"]) < 1, row
        assert len({c["height"] for c in row}) == 1, row
        spans = [round((c["right"] - c["left"] + grid["gap"]) / (column + grid["gap"])) for c in row]
        assert sum(spans) == columns, (row, spans)
    if columns == 3:  # SLO beside Costs, Incidents across, Portal beside Autoscale
        assert [[c["id"] for c in row] for row in rows_of(grid["cards"])] == [
            ["card-slo", "card-costs"], ["card-incidents"], ["card-portal", "card-scale"],
        ]  # fmt: skip
    page.context.close()
