"""The deploy gate: set only after a full 2h of burn over 2x, and an operator's rollback holds."""

from __future__ import annotations

import orjson
import pytest

from echoops.core import files, slo
from echoops.core.clock import iso
from tests.test_slo import T0, events, history

# the store and feature tests run on both backends (SQLite; PostgreSQL: tests/postgres_server.py)
pytestmark = pytest.mark.backends

FLAG = "deploy_gate.flag"


def burn(log_dir, *, end: float, minutes: int, err_pct: float = 6.0) -> None:
    """`minutes` of 50 requests a minute ending at `end`, `err_pct` of them failing (budget 1%)."""
    history(log_dir, end=end, minutes=minutes, per_minute=50, err_pct=err_pct)


def gate_events(log_dir, name):
    return [e for e in events(log_dir) if e["event"] == name]


# --- the rule: 2h means two hours -----------------------------------------------------------


def test_62_minutes_of_burn_sets_no_gate_and_125_minutes_does(settings, log_dir):
    start = T0 + 2 * 3600
    burn(log_dir, end=start, minutes=120, err_pct=0)
    burn(log_dir, end=start + 62 * 60, minutes=62)  # 6% errors against a 1% budget: 6x
    status = slo.tick(s=settings, now=start + 62 * 60)["status"]
    assert status["burn"]["2h"] > 2 and status["burn"]["10m"] == 6.0
    assert status["gate"]["condition"] is False and not (log_dir / FLAG).exists()
    assert status["gate_slices"]["burning"] == 6 and status["gate_slices"]["below"] == 6
    assert status["burn_alert"] != "gate"

    burn(log_dir, end=start + 125 * 60, minutes=63)
    result = slo.tick(s=settings, now=start + 125 * 60)
    assert result["gate_set"] is True and (log_dir / FLAG).exists()
    slices = result["status"]["gate_slices"]
    assert (slices["burning"], slices["below"], slices["thin"], slices["min_requests"]) == (12, 0, 0, 9)
    assert slices["burns"] == [6.0] * 12
    assert result["status"]["burn_alert"] == "gate"


def test_slices_too_thin_to_judge_are_excused_but_two_hours_of_evidence_are_needed(settings, log_dir):
    # traffic only for the last hour (the first hour silent): the burn has not been seen for 2h
    now = T0 + 3 * 3600
    burn(log_dir, end=now, minutes=60)
    status = slo.tick(s=settings, now=now)["status"]
    assert status["windows"]["2h"]["enough_traffic"] is True and status["burn"]["2h"] == 6.0
    assert status["gate_slices"]["thin"] == 6 and status["gate_slices"]["below"] == 0
    assert status["gate"]["condition"] is False and not (log_dir / FLAG).exists()


def test_two_silent_slices_inside_a_two_hour_burn_still_set_the_gate(settings, log_dir):
    now = T0 + 3 * 3600
    burn(log_dir, end=now - 70 * 60, minutes=50)
    burn(log_dir, end=now, minutes=50)  # nothing logged for the 20 minutes between: two empty slices
    status = slo.tick(s=settings, now=now)["status"]
    assert status["gate_slices"]["thin"] == 2 and status["gate_slices"]["burns"][5:7] == [None, None]
    assert status["gate"]["condition"] is True and (log_dir / FLAG).exists()


def test_a_30_minute_burst_of_any_intensity_never_sets_the_gate(settings, log_dir):
    now = T0 + 3 * 3600
    burn(log_dir, end=now - 1800, minutes=150, err_pct=0)
    burn(log_dir, end=now, minutes=30, err_pct=100)
    status = slo.tick(s=settings, now=now)["status"]
    assert status["burn"]["2h"] == 25.0 and status["gate"]["condition"] is False
    assert status["state"] == "red"  # the page tier fires: a burst pages, it does not gate


# --- an operator's rollback holds -----------------------------------------------------------


def test_a_flag_removed_by_hand_stays_removed_through_the_next_tick_while_the_burn_continues(settings, log_dir):
    now = T0 + 3 * 3600
    burn(log_dir, end=now, minutes=180)
    assert slo.tick(s=settings, now=now)["gate_set"] is True
    flag = files.read_flag(log_dir / FLAG)
    (log_dir / FLAG).unlink()  # the brief's rollback: "Remove deploy_gate.flag to re-enable deploys"

    burn(log_dir, end=now + 900, minutes=15)
    result = slo.tick(s=settings, now=now + 900)
    assert result["gate_set"] is False and not (log_dir / FLAG).exists()
    assert result["status"]["gate"]["condition"] is True  # still burning, yet the rollback holds
    override = result["status"]["gate"]["override"]
    assert override == {
        "since": iso(now + 900),
        "by": "file",
        "reason": "deploy_gate.flag removed by hand",
        "until": iso(now + 900 + 86400),
        "burn_dropped_at": None,
        "ends": f"at {iso(now + 900 + 86400)}, or once the burn has stayed above 2x for 2h after it drops to 2x "
        "or below",
    }
    [cleared] = gate_events(log_dir, "slo_gate_cleared")
    assert cleared["by"] == "file" and cleared["cleared"] is True and cleared["gate"]["reason"] == flag["reason"]
    assert cleared["until"] == iso(now + 900 + 86400)

    burn(log_dir, end=now + 1800, minutes=15)
    assert slo.tick(s=settings, now=now + 1800)["gate_set"] is False
    assert len(gate_events(log_dir, "slo_gate_cleared")) == 1  # noticed once
    assert slo.status(s=settings)["gate"]["override"]["by"] == "file"


def test_the_override_ends_when_the_burn_drops_and_then_rises_again_for_a_full_2h(cli, settings, log_dir):
    now = T0 + 3 * 3600
    burn(log_dir, end=now, minutes=180)
    slo.tick(s=settings, now=now)
    r = cli("slo", "gate", "--clear", "--reason", "rolled back v42", "--for", "2d", "--now", iso(now))
    assert r.exit_code == 0 and not (log_dir / FLAG).exists()
    t = now
    # the burn goes on for an hour (held), then a clean 2h (the drop is noted)
    for err in [6.0] * 4 + [0.0] * 8:
        burn(log_dir, end=t + 900, minutes=15, err_pct=err)
        t += 900
        assert slo.tick(s=settings, now=t)["gate_set"] is False
    override = slo.gate(s=settings, now=t)["override"]
    assert override["by"] == "command" and override["reason"] == "rolled back v42"
    dropped = override["burn_dropped_at"]
    assert dropped is not None and override["until"] == iso(now + 2 * 86400)
    # it burns again: 2h of it, counted from after the drop, before the gate may set again
    set_at = None
    for _ in range(12):
        burn(log_dir, end=t + 900, minutes=15)
        t += 900
        if slo.tick(s=settings, now=t)["gate_set"]:
            set_at = t
            break
    assert set_at is not None and iso(set_at - 7200) >= dropped
    [ended] = gate_events(log_dir, "slo_gate_override_end")
    assert ended["why"] == "burn_rose_again" and ended["override"]["reason"] == "rolled back v42"
    assert slo.gate(s=settings)["override"] is None and (log_dir / FLAG).exists()


def test_clear_for_expires_and_the_gate_comes_back_while_the_burn_goes_on(cli, settings, log_dir):
    now = T0 + 3 * 3600
    burn(log_dir, end=now, minutes=180)
    slo.tick(s=settings, now=now)
    out = slo.clear_gate("investigating", for_s="1h", s=settings, now=now)
    assert out["cleared"] is True and out["override"]["until"] == iso(now + 3600)
    burn(log_dir, end=now + 2700, minutes=45)
    assert slo.tick(s=settings, now=now + 2700)["gate_set"] is False
    burn(log_dir, end=now + 4500, minutes=30)
    assert slo.tick(s=settings, now=now + 4500)["gate_set"] is True
    [ended] = gate_events(log_dir, "slo_gate_override_end")
    assert ended["why"] == "expired"


def test_clear_validates_for(cli, log_dir):
    for bad, detail in (("0", "at least 60 s"), ("8d", "at most 7 days"), ("soon", "not a duration"), ("-1h", "")):
        r = cli("slo", "gate", "--clear", "--reason", "x", "--for", bad)
        assert r.exit_code == 2 and "for:" in r.stderr and detail in r.stderr
    r = cli("slo", "gate", "--clear", "--reason", "pre-emptive", "--for", "90m", "--json")
    body = orjson.loads(r.stdout)
    assert r.exit_code == 0 and body["cleared"] is False and body["override"]["by"] == "command"


def test_status_endpoint_shows_the_override(server, settings, log_dir):
    now = T0 + 3 * 3600
    burn(log_dir, end=now, minutes=180)
    slo.tick(s=settings, now=now)
    slo.clear_gate("rolled back v42", for_s="6h", s=settings, now=now + 60)
    with server.client() as http:
        gate = http.get("/api/slo/status").json()["gate"]
    assert gate["set"] is False and gate["condition"] is True
    assert {k: gate["override"][k] for k in ("since", "by", "reason", "until")} == {
        "since": iso(now + 60),
        "by": "command",
        "reason": "rolled back v42",
        "until": iso(now + 60 + 6 * 3600),
    }
