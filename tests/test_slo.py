"""SLO core and CLI: ingest, budget maths, windows, state, deploy gate, incidents, rebaseline, outputs."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from echoops.core import clock, files, pager, scheduler, slo, store
from echoops.core.clock import iso
from echoops.core.errors import ValidationError
from echoops.core.slo import aggregates, budget, rules

# the store and feature tests run on both backends (SQLite; PostgreSQL: tests/postgres_server.py)
pytestmark = pytest.mark.backends

# 2026-11-27T12:00:00Z: every SLO test evaluates at or after this instant
T0 = 1795780800.0


# --- helpers (imported by the other test_slo_* modules) ------------------------------------


def request_lines(
    start: float, minutes: int, per_minute: int, err_pct: float, latency_ms: float = 120.0
) -> list[bytes]:
    """`per_minute` lines a minute from `start`; the first round(per_minute * err_pct / 100) are 503s."""
    out = []
    errors = round(per_minute * err_pct / 100)
    for m in range(minutes):
        base = start + m * 60
        for i in range(per_minute):
            status = 503 if i < errors else 200
            out.append(
                orjson.dumps({"ts": iso(base + i * 59.0 / per_minute), "status": status, "latency_ms": latency_ms})
                + b"\n"
            )
    return out


def write_requests(log_dir: Path, lines: list[bytes], name: str = "requests.ndjson") -> Path:
    """Append `lines` to `log_dir/name`."""
    path = log_dir / name
    with open(path, "ab") as fh:
        fh.write(b"".join(lines))
    return path


def history(log_dir: Path, *, end: float, minutes: int, per_minute: int = 20, err_pct: float = 0.0, latency_ms=120.0):
    """`minutes` of requests in the minutes just before `end`."""
    write_requests(log_dir, request_lines(end - minutes * 60, minutes, per_minute, err_pct, latency_ms))


def finite_everywhere(obj) -> bool:
    """True when no float in `obj` (nested) is NaN or infinite."""
    if isinstance(obj, float):
        return math.isfinite(obj)
    if isinstance(obj, dict):
        return all(finite_everywhere(v) for v in obj.values())
    if isinstance(obj, list):
        return all(finite_everywhere(v) for v in obj)
    return True


def events(log_dir: Path, name: str = "slo_budget.ndjson") -> list[dict]:
    path = log_dir / name
    return [orjson.loads(x) for x in path.read_bytes().splitlines()] if path.exists() else []


def incidents(settings) -> list[dict]:
    rows = pager.db(settings).execute("SELECT fingerprint, severity, source, msg, paged FROM pager_incidents")
    return [dict(r) for r in rows]


# --- acceptance: the brief's gate ----------------------------------------------------------


def test_three_hours_at_5pct_errors_sets_the_gate_with_its_reason_and_pages_once(settings, log_dir):
    now = T0 + 3 * 3600
    history(log_dir, end=now, minutes=180, per_minute=20, err_pct=5)
    result = slo.tick(s=settings, now=now)

    assert result["gate_set"] is True
    flag = files.read_flag(log_dir / "deploy_gate.flag")
    assert set(flag) == {"reason", "burn_2h", "burn_10m", "since", "set_at"}
    assert flag["burn_2h"] == 5.0 and flag["burn_10m"] == 5.0
    assert flag["reason"].startswith(
        "error budget burn 5.00x over 2h (> 2x the daily budget of 1% for 2h: 12 of 12 10-minute slices above 2x, "
        "0 too thin to judge; last 10m 5.00x)"
    )
    assert "120 of 2400 requests failed in 2h" in flag["reason"]
    assert flag["since"] == iso(now - 7200) and flag["set_at"] == iso(now)
    status = result["status"]
    assert status["state"] == "red" and status["burn_alert"] == "gate"
    assert status["gate"]["set"] is True and status["gate"]["condition"] is True
    assert status["gate"]["reason"] == flag["reason"]
    found = incidents(settings)
    assert len(found) == 1
    assert found[0]["severity"] == "CRITICAL" and found[0]["source"] == "slo" and found[0]["paged"] == 1
    assert found[0]["msg"].startswith("SLO deploy gate set: error budget burn 5.00x")

    # the next tick (still burning) neither re-sets nor pages again
    history(log_dir, end=now + 600, minutes=10, per_minute=20, err_pct=5)
    again = slo.tick(s=settings, now=now + 600)
    assert again["gate_set"] is False and again["incident"] is None
    assert files.read_flag(log_dir / "deploy_gate.flag") == flag
    assert len(incidents(settings)) == 1
    assert [e["gate_set"] for e in events(log_dir) if e["event"] == "slo_tick"] == [True, False]


def test_a_30_minute_burst_alone_does_not_set_the_gate(settings, log_dir):
    now = T0 + 3 * 3600
    history(log_dir, end=now - 1800, minutes=150, per_minute=20, err_pct=0)
    history(log_dir, end=now, minutes=30, per_minute=20, err_pct=5)
    result = slo.tick(s=settings, now=now)

    status = result["status"]
    assert result["gate_set"] is False and not (log_dir / "deploy_gate.flag").exists()
    assert status["burn"]["10m"] == 5.0 and status["burn"]["2h"] == 1.25  # 30 of 120 minutes at 5x
    assert status["gate"]["condition"] is False
    assert status["burn_alert"] == "none"
    assert status["state"] == "yellow"  # burn 1h 2.5 > 1
    assert "burn 1h 2.50 > 1" in status["reasons"]
    assert incidents(settings) == []


def test_even_a_hot_30_minute_burst_does_not_set_the_gate(settings, log_dir):
    # 30 minutes at 20x: the 2h average is 5x and the last 10 minutes burn, but only 3 of the
    # twelve 10-minute slices of the 2h burned: not "for 2h"
    now = T0 + 3 * 3600
    history(log_dir, end=now - 1800, minutes=150, per_minute=20, err_pct=0)
    history(log_dir, end=now, minutes=30, per_minute=20, err_pct=20)
    status = slo.tick(s=settings, now=now)["status"]
    assert status["burn"]["2h"] == 5.0 and status["burn"]["10m"] == 20.0
    assert status["gate_slices_burning"] == 3 and status["gate"]["condition"] is False
    assert not (log_dir / "deploy_gate.flag").exists()


def test_one_quiet_slice_does_not_hide_a_sustained_burn(settings, log_dir):
    # 2h at 5% ended 5 minutes ago: the last 10-minute slice burns 2.5x, the rest 5x
    now = T0 + 3 * 3600
    history(log_dir, end=now - 900, minutes=120, per_minute=20, err_pct=5)
    history(log_dir, end=now, minutes=15, per_minute=20, err_pct=0)
    status = slo.tick(s=settings, now=now)["status"]
    assert status["burn"]["10m"] == 0.0
    assert status["gate_slices"]["below"] == 1 and status["gate_slices"]["burning"] == 11
    assert status["gate"]["condition"] is True and (log_dir / "deploy_gate.flag").exists()


def test_two_quiet_slices_stop_the_gate(settings, log_dir):
    now = T0 + 3 * 3600
    history(log_dir, end=now - 1500, minutes=120, per_minute=20, err_pct=5)
    history(log_dir, end=now, minutes=25, per_minute=20, err_pct=0)
    status = slo.tick(s=settings, now=now)["status"]
    assert status["burn"]["2h"] > 2 and status["gate_slices"]["below"] == 2
    assert status["gate"]["condition"] is False and not (log_dir / "deploy_gate.flag").exists()


# --- the CLI gate --------------------------------------------------------------------------


def test_gate_cli_exit_codes_and_logged_clear(cli, settings, log_dir):
    r = cli("slo", "gate")
    assert r.exit_code == 0 and r.stdout.strip() == "deploy gate open"

    now = T0 + 3 * 3600
    history(log_dir, end=now, minutes=180, per_minute=20, err_pct=5)
    slo.tick(s=settings, now=now)
    reason = files.read_flag(log_dir / "deploy_gate.flag")["reason"]

    r = cli("slo", "gate")
    assert r.exit_code == 1
    assert "deploy gate is set since 2026-11-27T13:00:00.000Z" in r.stderr
    assert reason[:60] in " ".join(r.stderr.split())

    r = cli("slo", "gate", "--json")
    assert r.exit_code == 1 and orjson.loads(r.stdout)["set"] is True

    r = cli("slo", "gate", "--clear")
    assert r.exit_code == 2 and "give a reason" in r.stderr
    assert (log_dir / "deploy_gate.flag").exists()

    r = cli("slo", "gate", "--for", "6h")
    assert r.exit_code == 2 and "--for goes with --clear" in r.stderr

    r = cli("slo", "gate", "--clear", "--reason", "rolled back v42", "--now", iso(now + 60))
    assert r.exit_code == 0
    assert " ".join(r.stdout.split()) == (
        f"deploy gate cleared (reason: rolled back v42); override until {iso(now + 60 + 86400)}"
    )
    assert not (log_dir / "deploy_gate.flag").exists()
    cleared = [e for e in events(log_dir) if e["event"] == "slo_gate_cleared"]
    assert len(cleared) == 1 and cleared[0]["reason"] == "rolled back v42" and cleared[0]["gate"]["reason"] == reason
    assert cleared[0]["by"] == "command" and cleared[0]["until"] == iso(now + 60 + 86400)
    assert cli("slo", "gate").exit_code == 0


def test_a_hand_made_gate_flag_still_closes_the_gate(cli, log_dir):
    (log_dir / "deploy_gate.flag").write_text("frozen for the launch\n")
    r = cli("slo", "gate")
    assert r.exit_code == 1 and "frozen for the launch" in r.stderr


def test_a_json_gate_flag_without_a_reason_still_reports_one(settings, log_dir):
    (log_dir / "deploy_gate.flag").write_text('{"set_at": "2026-11-27T12:00:00.000Z"}')
    assert slo.gate(s=settings) == {
        "set": True,
        "reason": "flag file present (no reason recorded)",
        "burn_2h": None,
        "burn_10m": None,
        "since": None,
        "set_at": "2026-11-27T12:00:00.000Z",
        "override": None,
    }


# --- state ---------------------------------------------------------------------------------


def test_fast_burn_page_tier_turns_red_and_pages_once_per_transition(settings, log_dir):
    now = T0 + 7 * 3600
    history(log_dir, end=now - 3600, minutes=360, per_minute=20, err_pct=0)
    history(log_dir, end=now, minutes=60, per_minute=20, err_pct=20)  # burn 20 over 1h and 5m
    status = slo.tick(s=settings, now=now)["status"]
    assert status["burn"]["1h"] == 20.0 and status["burn"]["5m"] == 20.0
    assert "page" in status["alerts"] and status["state"] == "red"
    assert any(r.startswith("page tier: burn 1h > 14.4 and 5m > 14.4") for r in status["reasons"])
    # the gate does not (one hour of the 2h burned): one incident, for the turn to red
    assert status["gate"]["condition"] is False
    found = incidents(settings)
    assert [i["msg"].split(":")[0] for i in found] == ["SLO state red"]


def test_p95_over_target_is_red_and_the_transition_raises_one_incident(settings, log_dir):
    now = T0 + 3600
    history(log_dir, end=now, minutes=60, per_minute=20, err_pct=0, latency_ms=950.0)
    first = slo.tick(s=settings, now=now)
    status = first["status"]
    assert status["state"] == "red" and status["p95_ms"] == pytest.approx(950.0, rel=0.01)
    assert status["reasons"] == [f"p95 {status['p95_ms']:.0f} ms > target 800 ms"]
    assert first["incident"]["deduped"] is False
    found = incidents(settings)
    assert len(found) == 1 and found[0]["msg"].startswith("SLO state red: p95 ")
    # still red at the next tick: no new incident
    history(log_dir, end=now + 300, minutes=5, per_minute=20, err_pct=0, latency_ms=950.0)
    assert slo.tick(s=settings, now=now + 300)["incident"] is None
    assert len(incidents(settings)) == 1


def test_yellow_when_p95_above_80pct_of_target(settings, log_dir):
    now = T0 + 3600
    history(log_dir, end=now, minutes=60, per_minute=20, err_pct=0, latency_ms=700.0)
    status = slo.tick(s=settings, now=now)["status"]
    assert status["state"] == "yellow"
    assert status["reasons"] == [f"p95 {status['p95_ms']:.0f} ms > 80% of target 800 ms"]


def test_green_with_healthy_traffic(settings, log_dir):
    now = T0 + 3600
    history(log_dir, end=now, minutes=60, per_minute=20, err_pct=0)
    status = slo.tick(s=settings, now=now)["status"]
    assert (status["state"], status["reasons"], status["burn_alert"]) == ("green", [], "none")
    assert status["remaining_budget_pct"] == 100.0 and status["error_rate"] == 0.0


def test_slow_burn_page_pair_6h_and_30m_turns_red(settings, log_dir):
    # 6h at 10x: under the 14.4 of the 1h/5m pair, over the 6 of the 6h/30m pair
    now = T0 + 7 * 3600
    history(log_dir, end=now - 6 * 3600, minutes=60, per_minute=20, err_pct=0)
    history(log_dir, end=now, minutes=360, per_minute=20, err_pct=10)
    status = slo.tick(s=settings, now=now)["status"]
    assert status["burn"]["1h"] == 10.0 and status["burn"]["6h"] == 10.0 and status["burn"]["30m"] == 10.0
    assert "page" in status["alerts"] and status["state"] == "red"
    assert "page tier: burn 6h > 6 and 30m > 6" in status["reasons"]
    assert not any(r.startswith("page tier: burn 1h") for r in status["reasons"])


def test_remaining_budget_below_25pct_alone_is_yellow(settings, log_dir):
    # an hour at 5% two days ago, a clean hour now: no window burns today, the 30d budget is spent
    now = T0 + 3 * 86400
    history(log_dir, end=now - 2 * 86400, minutes=60, per_minute=20, err_pct=5)
    history(log_dir, end=now, minutes=60, per_minute=20, err_pct=0)
    status = slo.tick(s=settings, now=now)["status"]
    assert status["remaining_budget_pct"] == -150.0  # 60 errors of 24 allowed in 2400 requests
    assert status["burn"]["1h"] == 0.0 and status["alerts"] == []
    assert (status["state"], status["reasons"]) == ("yellow", ["remaining budget -150.0% < 25%"])


@pytest.mark.parametrize(
    ("burns", "reason"),
    [
        ({"24h": 4.0, "2h": 4.0}, "ticket tier: burn 24h > 3 and 2h > 3"),
        ({"7d": 1.5, "6h": 1.5}, "ticket tier: burn 7d > 1 and 6h > 1"),
    ],
)
def test_ticket_tier_alone_is_yellow(burns, reason):
    windows = {name: {"burn": burns.get(name, 0.0), "enough_traffic": True} for name in rules.WINDOWS}
    verdict = rules.evaluate(
        windows,
        p95_ms=100.0,
        period_enough=True,
        remaining_pct=90.0,
        budget_enough=True,
        target_ms=800.0,
        slices={"judged": 12, "burning": 0, "below": 12, "thin": 0},
    )
    assert verdict == {
        "state": "yellow",
        "reasons": [reason],
        "burn_alert": "ticket",
        "alerts": ["ticket"],
        "gate_condition": False,
    }


@pytest.mark.parametrize(
    ("p95", "state", "reasons"),
    [
        (800.0, "yellow", ["p95 800 ms > 80% of target 800 ms"]),  # at the objective (p95 <= target): met
        (800.01, "red", ["p95 800 ms > target 800 ms"]),
        (640.0, "green", []),  # exactly 80% of the target: not yet yellow
        (640.01, "yellow", ["p95 640 ms > 80% of target 800 ms"]),
    ],
)
def test_p95_boundaries_at_the_target_and_at_80_percent(p95, state, reasons):
    windows = {name: {"burn": 0.0, "enough_traffic": True} for name in rules.WINDOWS}
    verdict = rules.evaluate(
        windows,
        p95_ms=p95,
        period_enough=True,
        remaining_pct=100.0,
        budget_enough=True,
        target_ms=800.0,
        slices=rules.judge_slices([(100, 0)] * rules.GATE_SLICES, 1.0, 100),
    )
    assert (verdict["state"], verdict["reasons"], verdict["alerts"]) == (state, reasons, [])


# --- budget maths --------------------------------------------------------------------------


def test_budget_maths_remaining_and_burn(settings, log_dir):
    now = T0 + 2 * 86400
    # 1000 requests with 5 errors (0.5%): half the budget of 1% is spent
    history(log_dir, end=now - 86400, minutes=50, per_minute=20, err_pct=0)
    write_requests(
        log_dir,
        [orjson.dumps({"ts": iso(now - 86400 - 30 + i), "status": 500, "latency_ms": 5}) + b"\n" for i in range(5)],
    )
    status = slo.tick(s=settings, now=now)["status"]
    assert status["budget"] == {
        "window": "30d",
        "requests": 1005,
        "errors": 5,
        "allowed_errors": 10.05,
        "remaining_budget_pct": pytest.approx(100 * (1 - 5 / 10.05), abs=0.001),
    }
    assert status["burn"]["7d"] == pytest.approx((5 / 1005) / 0.01, abs=1e-4)
    assert status["burn"]["24h"] == 0.0 and status["requests"] == 0  # all of it is older than 24h


def test_remaining_budget_goes_below_zero(settings, log_dir):
    now = T0 + 3600
    history(log_dir, end=now, minutes=10, per_minute=20, err_pct=5)
    status = slo.tick(s=settings, now=now)["status"]
    assert status["remaining_budget_pct"] == -400.0  # 5% failed of a 1% budget


def test_zero_traffic_has_no_nan_and_says_so(settings, log_dir):
    result = slo.tick(s=settings, now=T0)
    status = result["status"]
    assert status["error_rate"] == 0.0 and status["p95_ms"] is None and status["p99_ms"] is None
    assert set(status["burn"].values()) == {0.0} and status["remaining_budget_pct"] == 100.0
    assert status["state"] == "green" and status["burn_alert"] == "none"
    assert status["notes"][0].startswith("insufficient traffic (< 100 requests) in 5m, 10m, 30m, 1h, 2h, 6h, 24h, 7d")
    assert finite_everywhere(status)
    tick_event = events(log_dir)[-1]
    assert tick_event["p95"] is None and tick_event["err_rate"] == 0.0 and tick_event["burn"] == 0.0
    assert b"NaN" not in (log_dir / "slo_status.json").read_bytes()


def test_low_traffic_windows_never_alarm(settings, log_dir):
    now = T0 + 3 * 3600
    # 5 requests a minute, every one failing: burn 100 everywhere but 10m has 50 requests
    history(log_dir, end=now, minutes=12, per_minute=5, err_pct=100)
    status = slo.tick(s=settings, now=now)["status"]
    assert status["burn"]["10m"] == 100.0 and status["windows"]["10m"]["enough_traffic"] is False
    assert status["burn_alert"] == "none" and status["alerts"] == []
    assert status["gate"]["condition"] is False and not (log_dir / "deploy_gate.flag").exists()
    assert "insufficient traffic" in status["notes"][0]
    assert status["remaining_budget_pct"] == -9900.0  # reported, but 60 requests are too few to judge
    assert status["state"] == "green" and status["reasons"] == []
    assert "insufficient traffic in the 30d budget window: the budget is not judged" in status["notes"]
    assert finite_everywhere(status)


def test_min_requests_is_configurable(monkeypatch, log_dir):
    monkeypatch.setenv("SLO_MIN_REQUESTS", "10")
    now = T0 + 3 * 3600
    history(log_dir, end=now, minutes=180, per_minute=2, err_pct=50)
    status = slo.tick(now=now)["status"]
    assert status["windows"]["10m"]["enough_traffic"] is True and status["gate"]["condition"] is True


# --- ingest --------------------------------------------------------------------------------


def test_bad_lines_are_skipped_and_counted_in_the_tick_event(settings, log_dir):
    good = request_lines(T0 - 600, 1, 10, 0)
    bad = [
        b"not json\n",
        b"[1, 2]\n",
        b'{"ts": "2026-11-27T11:50:00Z", "status": 200}\n',  # no latency
        b'{"ts": "yesterday", "status": 200, "latency_ms": 5}\n',
        b'{"ts": "2026-11-27T11:50:00Z", "status": "ok", "latency_ms": 5}\n',
        b'{"ts": "2026-11-27T11:50:00Z", "status": 200, "latency_ms": -1}\n',
        b'{"ts": "2026-11-27T11:50:00Z", "status": 200, "latency_ms": "fast"}\n',
        b'{"ts": "2026-11-27T11:50:00Z", "status": true, "latency_ms": 5}\n',
        b"\xff\xfe\n",
    ]
    write_requests(log_dir, good[:5] + bad + good[5:])
    result = slo.tick(s=settings, now=T0)
    assert result["ingest"]["lines"] == 19 and result["ingest"]["bad"] == 9
    event = events(log_dir)[-1]
    assert event["bad"] == 9 and event["lines"] == 19
    assert event["bad_reasons"] == {
        "not_json": 1,
        "not_object": 1,
        "missing_field": 1,
        "bad_ts": 1,
        "bad_status": 2,
        "bad_latency": 2,
        "not_utf8": 1,
    }
    assert result["status"]["windows"]["24h"]["requests"] == 10


def test_boolean_latency_is_bad_even_after_the_same_number_was_seen(settings, log_dir):
    # True == 1 in Python: a bucket cache keyed by value must not let `true` pass as 1 ms
    lines = [
        b'{"ts": "2026-11-27T11:50:00Z", "status": 200, "latency_ms": 1}\n',  # careful path: fills the minute
        b'{"ts": "2026-11-27T11:50:00Z", "status": 200, "latency_ms": 1}\n',  # fast path: caches bucket of 1
        b'{"ts": "2026-11-27T11:50:01Z", "status": 200, "latency_ms": true}\n',
        b'{"ts": "2026-11-27T11:50:02Z", "status": 200, "latency_ms": 1.0}\n',
    ]
    write_requests(log_dir, lines)
    result = slo.tick(s=settings, now=T0)
    assert result["ingest"]["bad"] == 1
    assert events(log_dir)[-1]["bad_reasons"] == {"bad_latency": 1}
    assert result["status"]["windows"]["24h"]["requests"] == 3


def test_timestamps_as_epoch_seconds_and_offsets_land_in_the_right_minute(settings, log_dir):
    lines = [
        {"ts": T0 - 61, "status": 200, "latency_ms": 10},  # 11:58:59
        {"ts": "2026-11-27T13:59:30+02:00", "status": 500, "latency_ms": 10},  # 11:59:30Z
        {"ts": "2026-11-27T11:59:45Z", "status": 200, "latency_ms": 10},
        {"ts": "2026-11-27T11:59:50", "status": 200, "latency_ms": 10},  # naive = UTC
    ]
    write_requests(log_dir, [orjson.dumps(x) + b"\n" for x in lines])
    slo.tick(s=settings, now=T0)
    rows = aggregates.db(settings).execute("SELECT minute, total, errors FROM slo_minute ORDER BY minute").fetchall()
    assert [tuple(r) for r in rows] == [(int(T0 // 60) - 2, 1, 0), (int(T0 // 60) - 1, 3, 1)]


def test_ingest_is_incremental_and_reads_every_source_file(settings, log_dir):
    history(log_dir, end=T0, minutes=5, per_minute=10)
    write_requests(log_dir, request_lines(T0 - 300, 5, 4, 50), name="requests-api2.ndjson")
    write_requests(log_dir, request_lines(T0 - 300, 5, 4, 50), name="other.ndjson")  # not a source
    first = slo.tick(s=settings, now=T0)
    assert first["ingest"]["lines"] == 70 and first["ingest"]["sources"] == ["requests-api2.ndjson", "requests.ndjson"]
    assert first["status"]["windows"]["10m"] == {
        "requests": 70, "errors": 10, "slow": 0, "error_rate": round(10 / 70, 6),
        "burn": round(10 / 70 / 0.01, 4), "enough_traffic": False,
    }  # fmt: skip
    second = slo.tick(s=settings, now=T0 + 1)
    assert second["ingest"]["lines"] == 0 and second["status"]["windows"]["10m"]["requests"] == 70
    history(log_dir, end=T0 + 60, minutes=1, per_minute=10)
    third = slo.tick(s=settings, now=T0 + 60)
    assert third["ingest"]["lines"] == 10 and third["status"]["windows"]["10m"]["requests"] == 80


def test_windows_that_cut_through_hours_add_the_edge_minutes_to_the_hour_rollups(settings, log_dir):
    # at 15:30 the 2h and 24h windows are whole hours plus the minutes 15:00-15:29 (and 13:30-13:59
    # for 2h); the slow, failing requests sit only in those edge minutes
    now = T0 + 3 * 3600 + 1800
    history(log_dir, end=now - 1800, minutes=180, per_minute=20, latency_ms=100.0)
    history(log_dir, end=now, minutes=30, per_minute=20, err_pct=5, latency_ms=2000.0)
    status = slo.tick(s=settings, now=now)["status"]
    w2, w24 = status["windows"]["2h"], status["windows"]["24h"]
    assert (w2["requests"], w2["errors"], w2["slow"]) == (2400, 30, 600)
    assert (w24["requests"], w24["errors"], w24["slow"]) == (4200, 30, 600)
    # 600 of 4200 requests took 2 s: p95 and p99 over 24h are 2 s (merged sketches, within 1%)
    assert status["p95_ms"] == pytest.approx(2000.0, rel=0.01) and status["p99_ms"] == pytest.approx(2000.0, rel=0.01)


def test_the_oldest_edge_of_a_long_window_counts_its_minutes(settings, log_dir):
    # 40 minutes from 12:00 one day; at 12:30 the next day the 24h window starts at 12:30, so
    # 10 of those minutes are in it (an edge hours older than the tail kept in memory); 7d has all
    now = T0 + 86400 + 1800
    history(log_dir, end=T0 + 2400, minutes=40, per_minute=20, err_pct=5)
    status = slo.tick(s=settings, now=now)["status"]
    w24, w7d = status["windows"]["24h"], status["windows"]["7d"]
    assert (w24["requests"], w24["errors"]) == (200, 10) and (w7d["requests"], w7d["errors"]) == (800, 40)


def test_rotation_reads_the_rest_of_the_old_file_then_the_new_one_once(settings, log_dir):
    history(log_dir, end=T0 - 600, minutes=2, per_minute=10)
    path = log_dir / "requests.ndjson"
    assert slo.tick(s=settings, now=T0)["ingest"]["lines"] == 20
    history(log_dir, end=T0 - 300, minutes=1, per_minute=10)  # appended before the rotation
    path.rename(log_dir / "requests.ndjson.1")
    history(log_dir, end=T0, minutes=1, per_minute=10)  # the new file
    result = slo.tick(s=settings, now=T0)
    assert result["ingest"]["lines"] == 20 and result["ingest"]["events"] == ["requests.ndjson: rotated"]
    assert result["status"]["windows"]["1h"]["requests"] == 40
    assert slo.tick(s=settings, now=T0)["ingest"]["lines"] == 0


def test_slow_counts_latencies_above_the_target(settings, log_dir):
    write_requests(log_dir, request_lines(T0 - 120, 1, 10, 0, latency_ms=800.0))  # equal: not slow
    write_requests(log_dir, request_lines(T0 - 60, 1, 10, 0, latency_ms=800.5))
    status = slo.tick(s=settings, now=T0)["status"]
    assert status["windows"]["10m"]["slow"] == 10


def test_old_minutes_are_pruned_and_old_lines_skipped(settings, log_dir):
    history(log_dir, end=T0, minutes=3, per_minute=10)
    slo.tick(s=settings, now=T0)
    conn = aggregates.db(settings)
    assert conn.execute("SELECT count(*) FROM slo_minute").fetchone()[0] == 3
    later = T0 + 31 * 86400 + 3600  # past SLO_WINDOW_DAYS (30) + 1 day
    history(log_dir, end=T0 + 2 * 86400, minutes=1, per_minute=10)  # inside the 30 days before `later`
    result = slo.tick(s=settings, now=later)
    assert conn.execute("SELECT count(*) FROM slo_minute").fetchone()[0] == 1
    assert conn.execute("SELECT count(*) FROM slo_minute_sketch").fetchone()[0] == 1
    assert conn.execute("SELECT count(*) FROM slo_hour").fetchone()[0] == 1
    assert result["status"]["budget"]["requests"] == 10
    # lines already older than the retention are not stored
    history(log_dir, end=T0, minutes=2, per_minute=10)
    assert slo.tick(s=settings, now=later)["ingest"]["too_old"] == 20
    assert conn.execute("SELECT count(*) FROM slo_minute").fetchone()[0] == 1


# --- rebaseline ----------------------------------------------------------------------------


def test_rebaseline_excludes_older_data_from_every_window_without_deleting(cli, settings, log_dir):
    now = T0 + 3 * 3600
    history(log_dir, end=now, minutes=180, per_minute=20, err_pct=5)
    assert slo.tick(s=settings, now=now)["status"]["state"] == "red"
    result = slo.rebaseline("fixed the bad deploy", s=settings, now=now + 30)
    status = result["status"]
    assert result["rebaseline_at"] == iso(now + 30) and result["reason"] == "fixed the bad deploy"
    assert status["rebaseline_at"] == iso(now + 30)
    assert all(w["requests"] == 0 for w in status["windows"].values())
    assert status["budget"]["requests"] == 0 and status["remaining_budget_pct"] == 100.0
    assert status["state"] == "green" and status["p95_ms"] is None
    assert aggregates.db(settings).execute("SELECT sum(total) FROM slo_minute").fetchone()[0] == 3600  # kept
    logged = [e for e in events(log_dir) if e["event"] == "slo_rebaseline"]
    assert logged == [
        {
            "ts": iso(now + 30),
            "event": "slo_rebaseline",
            "reason": "fixed the bad deploy",
            "rebaseline_at": iso(now + 30),
        }
    ]
    # windows restart at the next whole minute; new data counts again
    history(log_dir, end=now + 300, minutes=4, per_minute=20, err_pct=0)
    status = slo.tick(s=settings, now=now + 300)["status"]
    assert status["windows"]["10m"]["requests"] == 80 and status["windows"]["7d"]["requests"] == 80
    # the gate flag stays until an operator removes it
    assert status["gate"]["set"] is True


def test_gate_set_after_a_rebaseline_dates_the_burn_from_the_rebaseline(settings, log_dir):
    # an hour of 5% right after a rebaseline is not two hours of evidence; two hours are,
    # and `since` is the rebaseline
    slo.rebaseline("new service version", s=settings, now=T0)
    history(log_dir, end=T0 + 3600, minutes=60, per_minute=20, err_pct=5)
    result = slo.tick(s=settings, now=T0 + 3600)
    assert result["gate_set"] is False and result["status"]["gate_slices"]["thin"] == 6
    history(log_dir, end=T0 + 7200, minutes=60, per_minute=20, err_pct=5)
    result = slo.tick(s=settings, now=T0 + 7200)
    assert result["gate_set"] is True and result["status"]["gate_slices_burning"] == 12
    flag = files.read_flag(log_dir / "deploy_gate.flag")
    assert flag["since"] == iso(T0) and flag["set_at"] == iso(T0 + 7200)
    assert "120 of 2400 requests failed in 2h" in flag["reason"]


def test_rebaseline_cli_and_reason_validation(cli, settings, log_dir):
    r = cli("slo", "rebaseline", "--reason", "new SLO period", "--json")
    assert r.exit_code == 0 and orjson.loads(r.stdout)["reason"] == "new SLO period"
    r = cli("slo", "rebaseline", "--reason", "x" * 501)
    assert r.exit_code == 2 and "longer than 500" in r.stderr


# --- outputs and the CLI -------------------------------------------------------------------


def test_tick_writes_status_file_event_and_history(cli, settings, log_dir):
    history(log_dir, end=T0, minutes=30, per_minute=20, err_pct=1)
    for i in range(3):
        slo.tick(s=settings, now=T0 + i * 900)
    on_disk = orjson.loads((log_dir / "slo_status.json").read_bytes())
    assert on_disk == slo.status(s=settings)
    # the first tick replayed 11:45 from the aggregates (the data starts at 11:30)
    assert [h["ts"] for h in on_disk["history"]] == [iso(T0 - 900), iso(T0), iso(T0 + 900), iso(T0 + 1800)]
    assert [h["backfilled"] for h in on_disk["history"]] == [True, False, False, False]
    assert set(on_disk["history"][0]) == {
        "ts", "state", "p95_ms", "p99_ms", "error_rate", "burn_1h", "burn_24h", "remaining_budget_pct", "backfilled",
    }  # fmt: skip
    for key in ("p95_ms", "p99_ms", "error_rate", "period", "remaining_budget_pct", "burn_alert"):
        assert key in on_disk
    assert set(on_disk["burn"]) >= {"10m", "1h", "2h", "6h", "24h", "7d"}
    assert on_disk["period"] == "24h" and on_disk["updated_at"] == iso(T0 + 1800)
    tick = events(log_dir)[-1]
    assert tick["event"] == "slo_tick"
    assert tick["p95"] == on_disk["p95_ms"] and tick["err_rate"] == on_disk["error_rate"]
    assert tick["burn"] == on_disk["burn"]["24h"]
    # the CLI prints the same document
    r = cli("slo", "status", "--json")
    assert r.exit_code == 0 and orjson.loads(r.stdout) == on_disk
    r = cli("slo", "status")
    assert r.exit_code == 0 and "SLO & Error Budget" in r.stdout and "GREEN" in r.stdout


def test_first_tick_backfills_a_day_of_history_showing_the_burst(settings, log_dir):
    now = T0 + 6 * 3600
    history(log_dir, end=now - 1800, minutes=330, per_minute=20, err_pct=0)
    history(log_dir, end=now, minutes=30, per_minute=20, err_pct=10)
    hist = slo.tick(s=settings, now=now)["status"]["history"]
    # every 15 minutes after the data starts (06:00), then the tick itself
    assert [h["ts"] for h in hist[:2]] == [iso(T0 + 900), iso(T0 + 1800)] and hist[-1]["ts"] == iso(now)
    assert len(hist) == 24 and [h["backfilled"] for h in hist].count(False) == 1
    burns = [h["burn_1h"] for h in hist]
    assert set(burns[:-2]) == {0.0} and burns[-2] == 2.5 and burns[-1] == 5.0  # 15 then 30 minutes at 10x
    assert [h["state"] for h in hist[-2:]] == ["yellow", "yellow"]
    # later ticks do not backfill again
    assert len(slo.tick(s=settings, now=now + 900)["status"]["history"]) == 25


def test_history_keeps_the_last_24h_of_ticks(settings, log_dir):
    for i in range(30):
        slo.tick(s=settings, now=T0 + i * 3600)
    hist = slo.status(s=settings)["history"]
    assert len(hist) == 24 and hist[0]["ts"] == iso(T0 + 6 * 3600) and hist[-1]["ts"] == iso(T0 + 29 * 3600)


def test_history_is_thinned_to_288_points_keeping_the_newest(settings):
    # a tick every 2 minutes for 24h (720 rows): the endpoint sends at most 288, oldest to newest
    conn = aggregates.db(settings)
    rows = [(T0 + i * 120, "green", 100.0, 150.0, 0.0, 0.0, 0.0, 100.0, 0) for i in range(720)]
    with store.transaction(conn):
        conn.executemany("INSERT INTO slo_ticks VALUES(?,?,?,?,?,?,?,?,?)", rows)
    hist = slo.status(s=settings, now=T0 + 86400)["history"]
    assert len(hist) == budget.HISTORY_POINTS == 288
    assert hist[0]["ts"] == iso(T0) and hist[-1]["ts"] == iso(T0 + 719 * 120)
    stamps = [clock.parse_ts(h["ts"]) for h in hist]
    assert stamps == sorted(set(stamps))


def test_status_before_any_tick_says_so(settings):
    status = slo.status(s=settings, now=T0)
    assert status["updated_at"] is None and status["notes"][0] == "no tick has run yet: run `echoops slo tick`"
    assert status["history"] == []


def test_tick_cli_with_now(cli, log_dir):
    history(log_dir, end=T0, minutes=10, per_minute=20, err_pct=0)
    r = cli("slo", "tick", "--now", "2026-11-27T12:00:00Z", "--json")
    assert r.exit_code == 0
    body = orjson.loads(r.stdout)
    assert body["ingest"]["lines"] == 200 and body["status"]["updated_at"] == iso(T0)
    r = cli("slo", "tick", "--now", "soon")
    assert r.exit_code == 2 and "--now" in r.stderr


def test_every_slo_command_has_help_with_an_example(cli):
    for cmd in ([], ["status"], ["tick"], ["rebaseline"], ["gate"]):
        r = cli("slo", *cmd, "--help")
        assert r.exit_code == 0 and "Example:" in r.stdout, cmd


def test_recent_p95_ingests_and_covers_only_the_last_minutes(settings, log_dir):
    assert slo.recent_p95_ms(s=settings, now=T0) is None
    history(log_dir, end=T0 - 900, minutes=30, per_minute=20, latency_ms=100.0)
    history(log_dir, end=T0, minutes=15, per_minute=20, latency_ms=400.0)
    assert slo.recent_p95_ms(s=settings, now=T0) == pytest.approx(400.0, rel=0.01)
    assert slo.recent_p95_ms(s=settings, now=T0, minutes=60) == pytest.approx(400.0, rel=0.01)
    assert slo.recent_p95_ms(s=settings, now=T0 - 900, minutes=5) == pytest.approx(100.0, rel=0.01)
    with pytest.raises(ValidationError, match="minutes") as raised:
        slo.recent_p95_ms(s=settings, now=T0, minutes=0)
    assert raised.value.field == "minutes"


# --- the scheduler runs it -----------------------------------------------------------------


def test_the_scheduled_job_updates_slo_status_json(settings, log_dir, tmp_path):
    (tmp_path / "schedule.cron").write_text("*/15 * * * * echoops slo tick\n")
    now = clock.now_s()
    history(log_dir, end=now, minutes=20, per_minute=10, err_pct=0)
    record = scheduler.run_once("slo tick", s=settings)
    assert record["rc"] == 0
    status = orjson.loads((log_dir / "slo_status.json").read_bytes())
    assert status["windows"]["24h"]["requests"] == 200
    assert now - 5 <= clock.parse_ts(status["updated_at"]) <= clock.now_s()


def fill_30_days(settings, now: float) -> None:
    """43,200 minute rows (40 requests, ~40 buckets each) and their hour rollups, written directly."""
    from echoops.core.slo import sketch

    conn = aggregates.db(settings)
    cur = aggregates.last_minute(now)
    minute_sketch = sketch.encode({k: 1 for k in range(640, 680)})
    hour_sketch = sketch.encode({k: 60 for k in range(600, 720)})
    minutes = range(cur - 43_199, cur + 1)
    with store.transaction(conn):
        conn.executemany(
            "INSERT INTO slo_minute(minute, total, errors, slow) VALUES(?,?,?,?)",
            ((m, 40, int(m % 3 == 0), 0) for m in minutes),
        )
        conn.executemany(
            "INSERT INTO slo_minute_sketch(minute, sketch) VALUES(?,?)", ((m, minute_sketch) for m in minutes)
        )
        hours = sorted({m // 60 for m in minutes})
        conn.executemany(
            "INSERT INTO slo_hour(hour, total, errors, slow, sketch) VALUES(?,?,?,?,?)",
            ((h, 2400, 20, 0, hour_sketch) for h in hours),
        )


@pytest.mark.sqlite_only
@pytest.mark.slow
def test_no_new_data_tick_over_30_days_of_minutes_reads_nothing_and_keeps_the_budget(settings, log_dir):
    # How fast this is (< 50 ms in process, < 0.5 s for the process) is measured by
    # bench/slo_tick.py, never timed here: this checks the work a quiet tick does.
    history(log_dir, end=T0, minutes=1, per_minute=10)
    slo.tick(s=settings, now=T0 - 86400 * 2)  # reads the file once, records a tick (no backfill later)
    fill_30_days(settings, T0)
    for i in range(7):
        result = slo.tick(s=settings, now=T0 - 0.001 * i)
        assert result["ingest"]["lines"] == 0
    assert result["status"]["budget"]["requests"] == 43_200 * 40
    proc = subprocess.run([sys.executable, "-m", "echoops", "slo", "tick"], env=dict(os.environ), capture_output=True)
    assert proc.returncode == 0, proc.stderr
