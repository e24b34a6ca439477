"""Scale core, CLI and HTTP: signals in, decisions out, the actuator only in real mode."""

from __future__ import annotations

import shlex
import sqlite3
import sys
import time
from pathlib import Path

import orjson
import pytest

from echoops.core import files, scale
from echoops.core.errors import ValidationError

T0 = 1_790_000_000.0
ACTUATOR = """
import json, sys
with open(sys.argv[1], "a") as fh:
    fh.write(json.dumps(sys.argv[2:]) + "\\n")
sys.exit(int(sys.argv[2]) if sys.argv[2] == "{fail}" else 0)
"""


def write_queue(log_dir: Path, samples: list[dict], mode: str = "ab") -> None:
    with open(log_dir / "queue.ndjson", mode) as fh:
        fh.write(b"".join(orjson.dumps(s) + b"\n" for s in samples))


def growing_backlog(start: float, minutes: int = 30, workers: int = 2, depth0: int = 0) -> list[dict]:
    """Arrivals outrun 2 workers at 20 jobs/min: 60 in, 40 out per minute, the queue grows 20/min."""
    return [
        {"ts": start + 60 * i, "depth": depth0 + 20 * i, "workers": workers, "arrivals": 60, "completed": 40}
        for i in range(minutes + 1)
    ]


@pytest.fixture
def actuator(tmp_path, monkeypatch):
    """A real SCALE_CMD (no shell): records its argv in calls.ndjson, fails when asked for 3 workers."""
    script = tmp_path / "actuate.py"
    script.write_text(ACTUATOR.replace("{fail}", "3"))
    calls = tmp_path / "calls.ndjson"
    cmd = shlex.join([sys.executable, str(script), str(calls), "{n}", "--replicas={n}"])
    monkeypatch.setenv("SCALE_CMD", cmd)

    def read() -> list[list[str]]:
        return [orjson.loads(line) for line in calls.read_text().splitlines()] if calls.exists() else []

    return read


def test_status_shows_desired_above_actual_when_backlog_grows(log_dir, settings):
    write_queue(log_dir, growing_backlog(T0))
    body = scale.status(now=T0 + 1800)
    # backlog 600 + forecast 60/min x 30 = 1800 -> 2400 / (20 x 30) = 4 workers, 2 running
    assert (body["desired"], body["actual"], body["dry_run"]) == (4, 2, True)
    assert body["reason"] == "backlog 600 + forecast 1800 in 30m needs 4 workers at 20 jobs/min each; 2 -> 4"
    assert body["forecast"]["backlog"] == 600
    assert body["forecast"]["rate_now_per_min"] == 60.0
    assert body["forecast"]["throughput_source"] == "observed"
    assert body["samples"] == {"ingested": 31, "bad": 0, "last_sample_at": "2026-09-21T14:43:20.000Z", "age_s": 0}
    assert body["history"] == []  # status records nothing
    # the queue over the next 30 minutes: +20/min with the 2 running, -20/min (to empty) with 4
    assert [(p["in_min"], p["backlog_at_actual"], p["backlog_at_desired"]) for p in body["projection"]] == [
        (0, 600, 600), (5, 700, 500), (10, 800, 400), (15, 900, 300), (20, 1000, 200), (25, 1100, 100), (30, 1200, 0),
    ]  # fmt: skip
    assert body["projection"][-1]["ts"] == "2026-09-21T15:13:20.000Z"  # now + 30 min
    assert body["p95_window_min"] == 15


def test_projected_backlog_never_goes_below_empty_nor_banks_idle_capacity():
    from echoops.core.scale.forecast import project_backlog

    steady = lambda minutes: 60.0 * minutes  # noqa: E731  (60 jobs/min)
    assert project_backlog(100, steady, workers=10, jobs_per_worker_min=20, horizon_min=15) == [
        (0, 100.0), (5, 0.0), (10, 0.0), (15, 0.0),
    ]  # fmt: skip
    # a burst after an idle spell is not absorbed by the capacity left unused before it
    burst = lambda minutes: 0.0 if minutes <= 5 else 2000.0  # noqa: E731
    assert project_backlog(0, burst, workers=1, jobs_per_worker_min=20, horizon_min=10) == [
        (0, 0.0),
        (5, 0.0),
        (10, 1900.0),
    ]
    # cumulative arrivals that dip (a blended forecast) never take jobs back out of the queue
    dip = {5: 300.0, 10: 200.0, 12: 400.0}.__getitem__
    assert project_backlog(0, dip, workers=0, jobs_per_worker_min=20, horizon_min=12) == [
        (0, 0.0), (5, 300.0), (10, 300.0), (12, 400.0),
    ]  # fmt: skip


def test_stale_samples_hold_and_p95_over_target_adds_a_worker(log_dir, settings):
    write_queue(log_dir, growing_backlog(T0))
    stale = scale.status(now=T0 + 1800 + 31 * 60)
    assert (stale["desired"], stale["target"], stale["held_by"]) == (4, 2, "stale")
    assert "latest queue sample is 31m old: holding 2" in stale["reason"]
    # requests in the last 15 minutes with p95 of ~1200 ms against the 800 ms objective
    now = T0 + 1800
    lines = [{"ts": now - 600 + i, "status": 200, "latency_ms": 1200.0} for i in range(200)]
    (log_dir / "requests.ndjson").write_bytes(b"".join(orjson.dumps(x) + b"\n" for x in lines))
    body = scale.status(now=now)
    assert body["p95_ms"] == pytest.approx(1200, rel=0.1)
    assert body["desired"] == 5
    assert f"p95 {body['p95_ms']:.0f}ms > 800ms target: +1" in body["reason"]  # SLO buckets: ~1210


def test_bad_lines_are_counted_not_fatal(log_dir, settings):
    write_queue(log_dir, growing_backlog(T0, minutes=3))
    with open(log_dir / "queue.ndjson", "ab") as fh:
        fh.write(
            b'not json\n{"ts": 1790000500, "depth": -4, "workers": 2}\n{"ts": 1790000000, "depth": 1, "workers": 1}\n'
        )
    assert scale.ingest(now=T0 + 600) == {
        "samples": 4,
        "bad": 3,
        "bad_reasons": {"not_json": 1, "bad_depth": 1, "out_of_order": 1},
        "events": [],
        "errors": [],
    }
    assert scale.ingest(now=T0 + 600)["samples"] == 0  # incremental: nothing new
    assert scale.status(now=T0 + 600)["samples"]["bad"] == 3


def test_actual_starts_at_scale_min_without_samples(settings):
    body = scale.status(now=T0)
    assert (body["actual"], body["actual_source"], body["desired"]) == (1, "scale_min", 1)


def test_dry_run_tick_logs_but_never_calls_the_actuator(log_dir, settings, actuator):
    write_queue(log_dir, growing_backlog(T0))
    body = scale.tick(now=T0 + 1800)
    assert (body["desired"], body["actual"], body["applied"], body["actuator"]) == (4, 2, False, None)
    assert body["reason"].endswith("2 -> 4; dry run: not applied")
    assert actuator() == []
    events = [orjson.loads(line) for line in (log_dir / "scale.ndjson").read_text().splitlines()]
    assert [(e["event"], e["desired"], e["actual"], e["dry_run"], e["applied"]) for e in events] == [
        ("scale_decision", 4, 2, True, False)
    ]
    assert scale.status(now=T0 + 1810)["history"][0]["desired"] == 4


def test_real_mode_runs_actuator_with_argv_then_cooldown_then_scales_again(log_dir, monkeypatch, actuator):
    monkeypatch.setenv("SCALE_DRY_RUN", "false")
    write_queue(log_dir, growing_backlog(T0))
    first = scale.tick(now=T0 + 1800)
    assert (first["applied"], first["actual"], first["cooldown_remaining_s"]) == (True, 4, 600)
    assert first["actuator"]["argv"][-2:] == ["4", "--replicas=4"]
    assert actuator() == [["4", "--replicas=4"]]
    # five minutes later the backlog is far bigger: cooldown holds at 4
    write_queue(log_dir, growing_backlog(T0 + 1860, minutes=4, workers=4, depth0=2400))
    held = scale.tick(now=T0 + 2100)
    assert (held["desired"], held["actual"], held["held_by"], held["applied"]) == (6, 4, "cooldown", False)
    assert held["cooldown_remaining_s"] == 300
    assert "cooldown 5m left, stays 4" in held["reason"]
    assert actuator() == [["4", "--replicas=4"]]
    # once the ten minutes are over the change goes through
    after = scale.tick(now=T0 + 2400)
    assert (after["applied"], after["actual"]) == (True, 6)
    assert actuator()[-1] == ["6", "--replicas=6"]


def test_failing_actuator_keeps_actual_and_raises_warning_incident(log_dir, monkeypatch, actuator):
    monkeypatch.setenv("SCALE_DRY_RUN", "false")
    # 45 jobs/min in, 40 out: backlog 150 + forecast 45 x 30 = 1500 -> 1500 / (20 x 30) = 2.5 -> 3 (fake exits 3)
    write_queue(
        log_dir,
        [{"ts": T0 + 60 * i, "depth": 5 * i, "workers": 2, "arrivals": 45, "completed": 40} for i in range(31)],
    )
    with pytest.raises(scale.ActuatorFailed) as err:
        scale.apply(now=T0 + 1800)
    assert "actuator failed setting 3 workers (exited 3); actual stays 2" in err.value.detail
    assert actuator() == [["3", "--replicas=3"]]
    body = scale.status(now=T0 + 1801)
    assert (body["actual"], body["last_change_at"], body["cooldown_remaining_s"]) == (2, None, 0)
    assert body["history"][-1]["applied"] is False
    event = orjson.loads((log_dir / "scale.ndjson").read_text().splitlines()[-1])
    assert event["actuator"] == {"rc": 3, "ok": False}
    assert "actuator failed (exited 3), actual stays" in event["reason"]
    rows = sqlite3.connect(log_dir / "echoops.db").execute("SELECT severity, source FROM pager_incidents").fetchall()
    assert rows == [("WARNING", "scale")]


@pytest.mark.parametrize(
    ("argv", "error"),
    [
        (["/nonexistent/echoops-actuator", "{n}"], "could not start"),
        ([sys.executable, "-c", "import time; time.sleep(10)", "{n}"], "timed out after 1s"),
    ],
)
def test_actuator_that_cannot_start_or_hangs_keeps_actual(log_dir, monkeypatch, argv, error):
    monkeypatch.setenv("SCALE_CMD", shlex.join(argv))
    monkeypatch.setenv("SCALE_CMD_TIMEOUT_S", "1")
    write_queue(log_dir, growing_backlog(T0))
    with pytest.raises(scale.ActuatorFailed) as err:
        scale.apply(False, now=T0 + 1800)
    assert error in err.value.detail
    assert scale.status(now=T0 + 1801)["actual"] == 2


def test_gate_blocks_scale_up_but_not_down(log_dir, monkeypatch, actuator):
    monkeypatch.setenv("SCALE_DRY_RUN", "false")
    (log_dir / "deploy_gate.flag").touch()  # a hand-made flag counts
    write_queue(log_dir, growing_backlog(T0))
    up = scale.tick(now=T0 + 1800)
    assert (up["desired"], up["actual"], up["held_by"], up["applied"]) == (4, 2, "gate", False)
    assert "deploy gate set: no scale-up, stays 2" in up["reason"]
    assert up["gate"]["set"] is True
    assert actuator() == []
    files.set_flag(log_dir / "deploy_gate.flag", {"reason": "burn"})
    write_queue(log_dir, [{"ts": T0 + 1900 + 60 * i, "depth": 0, "workers": 5, "arrivals": 0} for i in range(3)])
    down = scale.tick(now=T0 + 2400)
    # down from 5 is allowed under the gate, but only to 4: the highest recommendation of the last 10 min
    assert (down["action"], down["actual"], down["applied"]) == ("scale_down", 4, True)
    assert "scale-down held at 4 (highest in last 10m)" in down["reason"]
    assert actuator() == [["4", "--replicas=4"]]


def test_real_mode_needs_scale_cmd(log_dir, monkeypatch, cli):
    with pytest.raises(ValidationError) as err:
        scale.apply(False)
    assert err.value.field == "dry_run"
    monkeypatch.setenv("SCALE_DRY_RUN", "false")
    result = cli("scale", "tick")
    assert result.exit_code == 2
    assert "SCALE_CMD" in result.stderr


def test_cli_status_json_equals_core_and_apply_flags(log_dir, cli, actuator):
    write_queue(log_dir, growing_backlog(T0))
    now = str(T0 + 1800)
    out = cli("scale", "status", "--json", "--now", now)
    assert out.exit_code == 0
    assert orjson.loads(out.stdout) == scale.status(now=T0 + 1800)
    dry = cli("scale", "apply", "--dry-run", "--json", "--now", now)
    assert orjson.loads(dry.stdout)["applied"] is False
    real = cli("scale", "apply", "--no-dry-run", "--json", "--now", now)
    assert real.exit_code == 0
    assert orjson.loads(real.stdout)["actual"] == 4
    human = cli("scale", "status", "--now", str(T0 + 1900))
    assert "LIVE" not in human.stdout and "DRY RUN" in human.stdout
    assert "cooldown 500s left" in human.stdout


def test_cli_failing_actuator_exits_1(log_dir, cli, monkeypatch, tmp_path):
    monkeypatch.setenv("SCALE_CMD", shlex.join([sys.executable, "-c", "import sys; sys.exit(7)", "{n}"]))
    write_queue(log_dir, growing_backlog(T0))
    result = cli("scale", "apply", "--no-dry-run", "--now", str(T0 + 1800))
    assert result.exit_code == 1
    assert "actuator failed setting 4 workers (exited 7); actual stays 2" in result.stderr


def test_every_scale_command_has_help_with_example(cli):
    for cmd in ("status", "tick", "apply", "simulate", "sample", "systemd-units"):
        out = cli("scale", cmd, "--help")
        assert out.exit_code == 0
        assert "Example:" in out.stdout


def test_http_status_and_apply(live_server, log_dir):
    now = time.time()
    write_queue(log_dir, growing_backlog(now - 1800))
    server = live_server()
    with server.client() as c:
        status = c.get("/api/scale/status")
        assert status.status_code == 200
        body = status.json()
        assert {"desired", "actual", "reason", "dry_run", "forecast", "cooldown_remaining_s", "gate"} <= set(body)
        assert (body["desired"], body["actual"], body["dry_run"]) == (4, 2, True)
        ok = c.post("/api/scale/apply", json={})
        assert ok.status_code == 200
        assert (ok.json()["applied"], ok.json()["dry_run"]) == (False, True)
        no_cmd = c.post("/api/scale/apply", json={"dry_run": False})
        assert no_cmd.status_code == 400
        assert no_cmd.json()["field"] == "dry_run"
        bad = c.post("/api/scale/apply", json={"dry_run": "yes"})
        assert bad.status_code == 400
        assert bad.json() == {"error": "invalid", "detail": "dry_run must be true or false", "field": "dry_run"}
        extra = c.post("/api/scale/apply", json={"workers": 9})
        assert (extra.status_code, extra.json()["field"]) == (400, "workers")
        assert c.get("/api/scale/status").json()["history"][-1]["desired"] == 4
    with server.client(key=None) as anon:
        assert anon.get("/api/scale/status").status_code == 401


def test_cli_dry_run_flag_overrides_real_mode(log_dir, cli, monkeypatch, actuator):
    monkeypatch.setenv("SCALE_DRY_RUN", "false")
    write_queue(log_dir, growing_backlog(T0))
    out = cli("scale", "apply", "--dry-run", "--json", "--now", str(T0 + 1800))
    assert out.exit_code == 0
    body = orjson.loads(out.stdout)
    assert (body["dry_run"], body["applied"], body["actual"], body["actuator"]) == (True, False, 2, None)
    assert actuator() == []
