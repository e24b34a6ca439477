"""Future-dated input lines (issue 12, item 1): a line stamped after now + clock.MAX_SKEW_S
(5 minutes) is a bad line counted as `future`, never "the latest", for every input: queue
samples (scale), requests (SLO), AI usage (costs) and ledger imports (portal)."""

from __future__ import annotations

import shlex
import sys

import orjson
import pytest

from echoops.core import clock, costs, portal, scale
from echoops.core.slo import aggregates

NOW = 1_795_780_800.0  # 2026-11-27T12:00:00Z
ACTUATOR = """
import json, sys
with open(sys.argv[1], "a") as fh:
    fh.write(json.dumps(sys.argv[2:]) + "\\n")
"""


def write_lines(path, records) -> None:
    with open(path, "ab") as fh:
        fh.write(b"".join(orjson.dumps(r) + b"\n" for r in records))


def test_the_skew_is_five_minutes():
    assert clock.MAX_SKEW_S == 300
    assert clock.line_ts(NOW + 300, NOW) == NOW + 300
    assert clock.line_ts(NOW + 300.001, NOW) == "future"
    assert clock.line_ts("2026-11-28T12:00:00Z", NOW) == "future"
    assert clock.line_ts("2026-11-27T12:05:00Z", NOW) == NOW + 300
    assert clock.line_ts("yesterday", NOW) == "bad_ts"


def test_one_sample_dated_tomorrow_does_not_scale_a_growing_backlog_down(log_dir, tmp_path, monkeypatch):
    """The HIGH case: 59 samples with the backlog growing to 2,460, then one dated tomorrow with
    depth 0. It used to become the latest sample: "backlog 0 ... 2 -> 1; applied"."""
    script = tmp_path / "actuate.py"
    script.write_text(ACTUATOR)
    calls = tmp_path / "calls.ndjson"
    monkeypatch.setenv("SCALE_CMD", shlex.join([sys.executable, str(script), str(calls), "{n}"]))
    monkeypatch.setenv("SCALE_DRY_RUN", "false")
    start = NOW - 58 * 60
    samples = [
        {"ts": clock.iso(start + 60 * i), "depth": 82 + 41 * i, "workers": 2, "arrivals": 81, "completed": 40}
        for i in range(59)
    ]
    assert samples[-1]["depth"] == 2460
    samples.append({"ts": clock.iso(NOW + 86400), "depth": 0, "workers": 2, "arrivals": 0, "completed": 0})
    write_lines(log_dir / "queue.ndjson", samples)

    body = scale.tick(now=NOW)

    assert body["ingest"] == {
        "samples": 59,
        "bad": 1,
        "bad_reasons": {"future": 1},
        "events": [],
        "errors": [],
    }
    assert body["forecast"]["backlog"] == 2460
    assert body["samples"]["last_sample_at"] == "2026-11-27T12:00:00.000Z"
    assert (body["target"], body["actual"], body["applied"], body["action"]) == (6, 6, True, "scale_up")
    assert body["reason"].endswith("2 -> 6; applied")
    assert [orjson.loads(x) for x in calls.read_text().splitlines()] == [["6"]]
    event = orjson.loads((log_dir / "scale.ndjson").read_text().splitlines()[-1])
    assert event["ingest"]["bad_reasons"] == {"future": 1}
    # the sample dated tomorrow is gone for good: tomorrow it is not "the latest" either
    assert scale.status(now=NOW + 86400)["samples"]["last_sample_at"] == "2026-11-27T12:00:00.000Z"


def test_a_sample_within_the_skew_is_taken(log_dir):
    write_lines(
        log_dir / "queue.ndjson",
        [
            {"ts": clock.iso(NOW - 60), "depth": 10, "workers": 2},
            {"ts": clock.iso(NOW + 120), "depth": 12, "workers": 2},  # the app's clock is 2 minutes ahead
        ],
    )
    read = scale.ingest(now=NOW)
    assert (read["samples"], read["bad"]) == (2, 0)


def test_slo_counts_future_requests_as_bad_lines(log_dir, settings):
    rows = [
        {"ts": "2026-11-27T11:59:00.500Z", "status": 200, "latency_ms": 100},
        {"ts": "2026-11-27T11:59:30Z", "status": 500, "latency_ms": 100},
        {"ts": "2026-11-27T12:04:59.999Z", "status": 200, "latency_ms": 100},  # within the skew
        {"ts": "2026-11-27T12:05:00.001Z", "status": 500, "latency_ms": 100},
        {"ts": "2026-11-28T11:59:30.250Z", "status": 500, "latency_ms": 100},  # same minute of day, tomorrow
        {"ts": NOW + 86400, "status": 500, "latency_ms": 100},
    ]
    write_lines(log_dir / "requests.ndjson", rows)
    report = aggregates.ingest(settings, now=NOW)
    assert (report["lines"], report["bad"], report["bad_reasons"]) == (6, 3, {"future": 3})
    conn = aggregates.db(settings)
    assert conn.execute("SELECT sum(total), sum(errors), max(minute) FROM slo_minute").fetchone()[:] == (
        3,
        1,
        int((NOW + 299) // 60),
    )


def test_costs_ignore_spend_dated_in_the_future(log_dir, settings):
    write_lines(
        log_dir / "ai_usage.ndjson",
        [
            {"ts": "2026-11-27T11:00:00.000Z", "model": "gpt-4o", "usd": 1.0},
            {"ts": "2026-11-27T12:04:00.000Z", "model": "gpt-4o", "usd": 2.0},
            {"ts": "2026-11-27T12:06:00.000Z", "model": "gpt-4o", "usd": 40.0},
            {"ts": "2026-11-28T09:00:00.000Z", "model": "gpt-4o", "usd": 50.0},
            {"ts": NOW + 3600, "model": "gpt-4o", "usd": 60.0},
        ],
    )
    report = costs.tick(s=settings, now=NOW)
    assert (report["calls"], report["bad"]) == (2, {"future": 3})
    assert report["global"]["spent_usd"] == 3.0
    # tomorrow the lines dated tomorrow do not come back: they were bad lines, not pending ones
    assert costs.tick(s=settings, now=NOW + 86400)["global"]["spent_usd"] == 0.0


@pytest.mark.parametrize("created", ["2026-11-28T12:00:00Z", NOW + 3600])
def test_ledger_import_rejects_a_purchase_dated_in_the_future(tmp_path, settings, created):
    good = {
        "id": "ch_1",
        "email": "a@b.io",
        "created": "2026-11-27T11:00:00Z",
        "amount_cents": 1200,
        "currency": "usd",
        "description": "Plan",
    }
    f = tmp_path / "p.ndjson"
    write_lines(f, [good, {**good, "id": "ch_2", "created": created}, {**good, "id": "ch_3", "created": NOW + 299}])
    report = portal.import_purchases(f, s=settings, now=NOW)
    assert (report["rows"], report["landed"], report["bad"]) == (3, 2, 1)
    assert report["errors"] == [{"line": 2, "error": "created: is in the future (more than 300 s after now)"}]
