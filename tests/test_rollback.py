"""The README's Rollback section, step by step: each step a test, named in the README.

Each test takes the step exactly as the README writes it (an env var, a `#` in schedule.cron, a
file removed, a command) and checks what the README says it does.
"""

from __future__ import annotations

import orjson
import pytest

from echoops.core import pager, portal, scale, slo
from echoops.core.errors import NotConfigured
from tests.test_costs import NOON, mini, write_usage
from tests.test_scale import T0 as SCALE_T0
from tests.test_scale import actuator, growing_backlog, write_queue  # noqa: F401 (fixture)
from tests.test_slo import T0 as SLO_T0
from tests.test_slo import history

SCHEDULE = """\
*/15 * * * * echoops slo tick
*/5  * * * * echoops page run
0    * * * * echoops costs tick
#*/10 * * * * echoops scale tick
"""


def test_rollback_all_disable_a_job_with_a_hash_and_the_endpoints_stay(cli, server, tmp_path):
    (tmp_path / "schedule.cron").write_text(SCHEDULE)
    jobs = orjson.loads(cli("scheduler", "list", "--json").stdout)["jobs"]
    assert {j["name"]: j["enabled"] for j in jobs} == {
        "slo tick": True,
        "page run": True,
        "costs tick": True,
        "scale tick": False,
    }
    with server.client() as http:
        assert http.get("/api/scale/status").status_code == 200


def test_rollback_76_remove_the_flag_and_deploys_stay_open(cli, settings, log_dir):
    now = SLO_T0 + 3 * 3600
    history(log_dir, end=now, minutes=180, per_minute=20, err_pct=5)
    slo.tick(s=settings, now=now)
    assert cli("slo", "gate").exit_code == 1
    (log_dir / "deploy_gate.flag").unlink()  # the step
    for minutes in (15, 30, 45, 60):  # the burn goes on; every tick keeps the rollback
        history(log_dir, end=now + minutes * 60, minutes=15, per_minute=20, err_pct=5)
        slo.tick(s=settings, now=now + minutes * 60)
        assert cli("slo", "gate").exit_code == 0


def test_rollback_76_clear_with_a_reason_for_a_while(cli, settings, log_dir):
    now = SLO_T0 + 3 * 3600
    history(log_dir, end=now, minutes=180, per_minute=20, err_pct=5)
    slo.tick(s=settings, now=now)
    r = cli("slo", "gate", "--clear", "--reason", "rolled back v42", "--for", "6h", "--now", str(now))
    assert r.exit_code == 0
    history(log_dir, end=now + 3600, minutes=60, per_minute=20, err_pct=5)
    slo.tick(s=settings, now=now + 3600)
    assert cli("slo", "gate").exit_code == 0


def test_rollback_77_unset_the_channels_and_nothing_is_sent(settings, log_dir):
    out = pager.raise_incident("CRITICAL", "db down", "db", send=True)
    assert out["channels"] == {"telegram": "skipped", "email": "skipped"}
    assert out["deliveries"] == {"telegram": "skipped", "email": "skipped"}


def test_rollback_78_unset_the_signing_secret_and_no_link_is_signed(monkeypatch, log_dir):
    monkeypatch.delenv("PORTAL_SIGNING_SECRET", raising=False)
    with pytest.raises(NotConfigured, match="PORTAL_SIGNING_SECRET"):
        portal.receipts("qa@echopilot.ai")


def test_rollback_79_cost_enforce_false_then_a_tick(cli, log_dir, monkeypatch):
    write_usage(log_dir, mini(100_000_000))  # gpt-4o-mini at its $15 cap
    cli("costs", "tick", "--now", str(NOON))
    assert cli("costs", "check", "gpt-4o-mini", "--now", str(NOON)).exit_code == 1
    monkeypatch.setenv("COST_ENFORCE", "false")
    assert cli("costs", "tick", "--now", str(NOON + 60)).exit_code == 0
    monkeypatch.delenv("COST_ENFORCE")  # an app without the variable reads the mode from cost_state.json
    assert cli("costs", "check", "gpt-4o-mini", "--now", str(NOON + 60)).exit_code == 0


def test_rollback_79_high_caps_then_a_tick(cli, log_dir, monkeypatch):
    cli("costs", "set-cap", "--scope", "daily", "--usd", "10")
    cli("costs", "set-cap", "--scope", "model", "--key", "gpt-4o-mini", "--usd", "10")
    write_usage(log_dir, mini(100_000_000))
    cli("costs", "tick", "--now", str(NOON))
    assert cli("costs", "check", "gpt-4o-mini", "--now", str(NOON)).exit_code == 1
    monkeypatch.setenv("COST_CAP_DAILY_USD", "100000")
    monkeypatch.setenv("MODEL_CAPS_JSON", "{}")
    assert cli("costs", "tick", "--now", str(NOON + 60)).exit_code == 0
    assert cli("costs", "check", "gpt-4o-mini", "--now", str(NOON + 60)).exit_code == 0
    # and the cap-reached incidents are resolved: the problem is over (issue 15)
    summary = orjson.loads(cli("page", "summarize", "--json", "--now", str(NOON + 60)).stdout)
    notes = {g["fingerprint"]: (g["state"], g["note"]) for g in summary["groups"] if "throttle" in g["fingerprint"]}
    assert notes == {
        "costs:throttle:global:2026-11-27": ("resolved", "global cap raised above spend ($15.00 of $100,000.00)"),
        "costs:throttle:gpt-4o-mini:2026-11-27": ("resolved", "gpt-4o-mini no longer has a cap"),
    }


def test_rollback_80_scale_dry_run_true_applies_nothing(log_dir, monkeypatch, actuator):  # noqa: F811
    monkeypatch.setenv("SCALE_DRY_RUN", "true")
    write_queue(log_dir, growing_backlog(SCALE_T0))
    body = scale.tick(now=SCALE_T0 + 1800)
    assert (body["desired"], body["applied"]) == (4, False) and actuator() == []
