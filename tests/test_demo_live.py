"""The live demo: the story in simulated time (every control moves as the README says), the
traffic command's guard, and `echoops up --demo` seen from a second terminal in its folder."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
from collections import Counter
from pathlib import Path

import orjson
import pytest

from echoops.core import clock, config, costs, envfile, pager, scale, slo
from echoops.core.demo import Traffic, seed, story
from echoops.core.portal import ledger
from tests.conftest import alive, free_port, wait_for
from tests.test_up import Up, children_of, wait_healthy

NOW = 1_796_000_000.0  # 2026-11-30T00:53:20Z: a night hour, the quietest traffic of the day
CRITICAL_AT_MIN = 4  # story.LOG_LINES: the loop's CRITICAL at 4:00


def lines(path: Path) -> list[dict]:
    return [orjson.loads(x) for x in path.read_bytes().splitlines()]


@pytest.mark.slow
def test_one_loop_of_the_story_moves_every_control(settings, log_dir):
    s = settings
    seed(s=s, now=NOW)
    traffic = Traffic(s, NOW)
    before = {name: len(lines(log_dir / f"{name}.ndjson")) for name in ("requests", "ai_usage", "queue", "app")}
    seen: list[dict] = []
    for minute in range(0, 17):
        t = NOW + minute * 60
        counts = traffic.advance(t) if minute else {}
        slo.tick(s=s, now=t)
        costs.tick(s=s, now=t)
        scale.tick(s=s, now=t)
        run = pager.run(s=s, now=t)
        status = slo.status(s=s, now=t)
        seen.append(
            {
                "counts": counts,
                "state": status["state"],
                "gate": status["gate"]["set"],
                "condition": status["gate"]["condition"],
                "burn_5m": status["windows"]["5m"]["burn"],
                "mini": costs.status(s=s, now=t)["models"]["gpt-4o-mini"]["state"],
                "desired": scale.status(s=s, now=t)["desired"],
                "new_incidents": run["ingest"]["new_incidents"],
            }
        )
    # SLO: the seeded 2h20m of burn sets the gate at the first tick; the loop keeps it RED with
    # the gate condition holding (every 10-minute slice above 2x), while the 5m burn swings.
    assert [m["state"] for m in seen] == ["red"] * 17
    assert all(m["gate"] and m["condition"] for m in seen)
    burns = [m["burn_5m"] for m in seen]
    assert min(burns[2:5]) < 2 < 10 < max(burns[5:9])  # normal, then the error burst
    # live traffic every minute, with the burst's 5xx share
    per_minute = [m["counts"]["requests"] for m in seen[1:]]
    assert min(per_minute) >= 30 and max(per_minute) <= 150
    burst = seen[5]["counts"]  # minute 4:00-5:00
    assert burst["errors"] / burst["requests"] >= 0.12
    quiet = seen[2]["counts"]  # 1:00-2:00, normal
    assert quiet["errors"] / quiet["requests"] <= 0.05
    # costs: WARN (the seed leaves gpt-4o-mini at 92%), then THROTTLE within the loop; the
    # app obeys the guard: no gpt-4o-mini call after the first tick that throttled it
    states = [m["mini"] for m in seen]
    assert states[0] == "warn" and "throttle" in states and states[-1] == "throttle"
    first_throttle = states.index("throttle")
    assert 5 <= first_throttle <= 11
    after = NOW + first_throttle * 60
    usage = lines(log_dir / "ai_usage.ndjson")[before["ai_usage"] :]
    assert usage and all(clock.parse_ts(u["ts"]) > NOW for u in usage)
    late_mini = [u for u in usage if u["model"] == "gpt-4o-mini" and clock.parse_ts(u["ts"]) > after + 60]
    assert late_mini == []
    # autoscale: the backlog and the arrival forecast move the desired workers
    desired = [m["desired"] for m in seen]
    assert max(desired) - min(desired) >= 2
    queue = lines(log_dir / "queue.ndjson")[before["queue"] :]
    assert len(queue) == 16 * 4  # a sample every 15 s
    depth = {round((clock.parse_ts(q["ts"]) - NOW) / 60, 2): q["depth"] for q in queue}
    assert depth[12.0] > depth[6.0] + 50  # sustained burn: arrivals at 140% of capacity
    assert depth[15.0] < depth[12.0] - 30  # recovery: it drains
    # the app's log: the loop's CRITICAL at 4:00 becomes a new incident at the page run of that minute
    app = lines(log_dir / "app.ndjson")[before["app"] :]
    assert Counter(a["level"] for a in app) == {"CRITICAL": 1, "WARNING": 2, "INFO": 2}
    critical = next(a for a in app if a["level"] == "CRITICAL")
    assert clock.parse_ts(critical["ts"]) == NOW + CRITICAL_AT_MIN * 60
    assert (critical["source"], critical["msg"]) == story.CRITICALS[0]
    assert seen[CRITICAL_AT_MIN]["new_incidents"] == 1  # written by the advance to 4:00, read by its run
    # a purchase a loop (at 7:30), in the ledger the portal reads
    assert sum(m["counts"].get("purchases", 0) for m in seen[1:]) == 1
    [bought] = [r for r in ledger.purchases_for("customer0@example.com", s=s) if r["id"].startswith("demo_live_")]
    assert bought["id"] == f"demo_live_{round(NOW + story.PURCHASE_AT_S)}"


def test_the_story_is_a_loop_of_fifteen_minutes():
    assert [story.at(m * 60).phase for m in (0, 4, 6, 12, 15, 19)] == [
        "normal",
        "error burst",
        "sustained burn",
        "recovery",
        "normal",
        "error burst",
    ]
    assert story.at(900 * 3 + 1).loop == 3
    assert story.at(720).error_pct == 7.0 and story.at(899.999).error_pct == pytest.approx(0.3, abs=0.01)
    assert story.spend_share(0) == 0.84 and story.spend_share(540) == story.spend_share(800) == 1.04


def test_the_quietest_ten_minutes_still_burn_over_twice_the_budget():
    # The gate condition must go on holding: every 10-minute slice of the loop averages > 2% 5xx.
    per_s = [story.at(t + 0.5).error_pct for t in range(int(story.LOOP_S))]
    loop = per_s + per_s
    worst = min(sum(loop[i : i + 600]) / 600 for i in range(int(story.LOOP_S)))
    assert worst > 3.0


def test_demo_traffic_refuses_a_log_dir_without_demo_data(cli, log_dir):
    (log_dir / "requests.ndjson").write_text('{"ts": 1800000000, "status": 200, "latency_ms": 5}\n')
    result = cli("demo", "traffic")
    assert result.exit_code == 2
    assert result.stderr == (
        f"Error: {log_dir} holds no demo data (no demo.json): the demo traffic appends to the app's inputs; "
        "run `echoops demo seed` first, or pass --force\n"
    )
    assert (log_dir / "requests.ndjson").read_text().count("\n") == 1


def test_demo_seed_marks_the_log_dir(cli, log_dir):
    assert cli("demo", "seed", "--now", "2026-11-29T01:33:20Z").exit_code == 0
    marker = orjson.loads((log_dir / "demo.json").read_bytes())
    assert marker["seeded_at"] == "2026-11-29T01:33:20.000Z" and marker["by"] == "echoops demo seed"


# --- `echoops up --demo` from a second terminal ---------------------------------------------------


def echoops(cwd: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "echoops", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60
    )


@pytest.mark.slow
def test_a_second_terminal_in_the_folder_reads_the_live_demo(tmp_path):
    cwd = tmp_path / "work"
    cwd.mkdir()
    port = free_port()
    # a new user's shell: no echoops variable at all, in both terminals
    plain = {k: v for k, v in os.environ.items() if k not in {v.env for v in config.VARS}}
    up = Up(cwd, {**plain, "ECHOOPS_PORT": str(port), "ECHOOPS_WORKERS": "1"}, "--demo")
    try:
        key = up.wait_line("Key:", timeout=120)
        url = f"http://127.0.0.1:{port}"
        wait_healthy(url, up, timeout=60)
        demo_dir = cwd / "logs" / "demo"
        # one place to look: ./echoops.env, private, with the demo's log dir, port and secrets
        settings_file = cwd / "echoops.env"
        assert stat.S_IMODE(settings_file.stat().st_mode) == 0o600
        values = envfile.read(settings_file)
        assert values["ECHOOPS_LOG_DIR"] == "logs/demo" and values["ECHOOPS_PORT"] == str(port)
        assert values["DASHBOARD_KEY"] == key and len(values["PORTAL_SIGNING_SECRET"]) >= 32
        assert values["ECHOOPS_SCHEDULE"] == "logs/demo/schedule.cron"
        assert (demo_dir / "schedule.cron").read_text().count("* * * * * echoops") == 5  # every default job
        # live: new request lines within 20 s
        requests = demo_dir / "requests.ndjson"
        count = requests.read_bytes().count(b"\n")
        wait_for(lambda: requests.read_bytes().count(b"\n") > count, timeout=20, what="new request lines")
        assert set(children_of(up.proc.pid)) == {"serve", "scheduler", "traffic"}

        # the second terminal: same folder, nothing exported
        def requests_seen() -> int:
            r = echoops(cwd, plain, "slo", "status", "--json")
            assert r.returncode == 0, r.stderr
            assert r.stderr == "echoops: reading logs/demo (ECHOOPS_LOG_DIR from ./echoops.env)\n"
            return orjson.loads(r.stdout)["requests"]

        wait_for(lambda: requests_seen() > 0, timeout=90, what="the first slo tick")
        receipts = echoops(cwd, plain, "portal", "receipts", "qa@echopilot.ai", "--json")
        assert receipts.returncode == 0, receipts.stderr
        purchases = orjson.loads(receipts.stdout)["purchases"]
        assert len(purchases) >= 4
        assert purchases[0]["receipt_url"].startswith(f"{url}/api/portal/download?token=v1.")
        assert not (cwd / "logs" / "echoops.db").exists()  # nothing was written in ./logs itself

        # a second `up` in the folder: exit 2, the running URL, no key
        for args in (("up", "--demo"), ("up",)):
            again = echoops(cwd, plain, *args)
            assert again.returncode == 2
            assert again.stdout == ""
            assert again.stderr == (
                f"Error: echoops up is already running for logs/demo (PID {up.proc.pid}) at {url}/: use that one, "
                "or stop it (Ctrl-C in its terminal) before starting another\n"
            )
            assert key not in again.stderr
        kids = children_of(up.proc.pid)
        up.proc.send_signal(signal.SIGTERM)
        assert up.proc.wait(60) == 0
        for pid in kids.values():
            assert not alive(pid)
        # stopped: the folder still reads the demo, and the next `up --demo` reuses its key
        assert envfile.read(settings_file)["DASHBOARD_KEY"] == key
    finally:
        up.kill()


# --- the demo app's edges: no history, fallbacks, no cap, a new day ---------------------------


def _usage(log_dir: Path) -> list[dict]:
    """The AI usage lines that parse (a test may have written bad ones on purpose)."""
    path = log_dir / "ai_usage.ndjson"
    found = []
    for raw in path.read_bytes().splitlines() if path.exists() else []:
        try:
            found.append(orjson.loads(raw))
        except orjson.JSONDecodeError:
            continue
    return found


def test_on_an_empty_log_dir_the_capped_model_catches_up_in_batch_jobs(settings, log_dir):
    traffic = Traffic(settings, NOW)
    assert traffic.advance(NOW) == {}  # nothing to write for no time
    counts = traffic.advance(NOW + 2)
    usage = _usage(log_dir)
    mini = [u for u in usage if u["model"] == "gpt-4o-mini"]
    assert {u["feature"] for u in mini} == {"chat", "nightly-batch"}
    spent = sum(u["input_tokens"] * 0.15 + u["output_tokens"] * 0.6 for u in mini) / 1e6
    assert 0.84 * 15 <= spent < 0.84 * 15 + 0.25  # the plan's start: 84% of the $15 cap
    assert counts["usd"] >= 0.84 * 15
    assert not (log_dir / "queue.ndjson").exists()  # the first sample comes at +15 s
    traffic.advance(NOW + 16)
    first = lines(log_dir / "queue.ndjson")[0]
    assert first["workers"] == 2 and first["depth"] >= 0  # no history: an empty queue, 2 workers


def test_a_throttled_model_with_a_fallback_is_switched_and_no_cap_means_steady_calls(monkeypatch, log_dir):
    monkeypatch.setenv("MODEL_CAPS_JSON", '{"gpt-4o-mini": 0.01}')
    monkeypatch.setenv("MODEL_FALLBACKS_JSON", '{"gpt-4o-mini": "gpt-4.1-nano"}')
    s = config.settings()
    (log_dir / "ai_usage.ndjson").write_text(
        '{"ts": "2026-11-30T00:10:00Z", "model": "gpt-4o-mini", "input_tokens": 200000, "output_tokens": 0}\n'
        "not json\n"
        '{"ts": "2026-11-30T00:11:00Z", "model": "gpt-4o-mini", "input_tokens": "x"}\n'
        '{"ts": "2026-11-29T23:59:00Z", "model": "gpt-4o-mini", "input_tokens": 9999999}\n'  # yesterday
    )
    costs.tick(s=s, now=NOW)  # $0.03 > the $0.01 cap: the guard switches gpt-4o-mini
    traffic = Traffic(s, NOW)
    assert traffic.spent_usd == pytest.approx(0.03)
    traffic.advance(NOW + 60)
    new = _usage(log_dir)[3:]  # after the three good lines written above
    assert {u["model"] for u in new} >= {"gpt-4.1-nano"} and "gpt-4o-mini" not in {u["model"] for u in new}
    monkeypatch.setenv("MODEL_CAPS_JSON", "{}")
    costs.tick(s=config.settings(), now=NOW + 60)  # no cap on it now: the guard allows it again
    uncapped = Traffic(config.settings(), NOW + 60)
    uncapped.advance(NOW + 120)
    later = _usage(log_dir)[3 + len(new) :]
    assert any(u["model"] == "gpt-4o-mini" and u["feature"] == "chat" for u in later)
    assert not any(u.get("feature") == "nightly-batch" for u in later)  # no plan without a cap


def test_a_new_utc_day_starts_the_spend_plan_again(settings, log_dir):
    day_end = clock.day_start(NOW) + 86400
    traffic = Traffic(settings, day_end - 5)
    traffic.advance(day_end - 1)
    before = traffic.spent_usd
    assert before >= 0.84 * 15
    traffic.advance(day_end + 1)
    assert traffic.day == day_end
    after = [u for u in _usage(log_dir) if u["model"] == "gpt-4o-mini" and clock.parse_ts(u["ts"]) >= day_end]
    spent_today = sum(u["input_tokens"] * 0.15 + u["output_tokens"] * 0.6 for u in after) / 1e6
    # counted from zero at midnight, and caught up to the plan again with the new day's own calls
    assert traffic.spent_usd == pytest.approx(spent_today) and spent_today >= 0.84 * 15


def test_the_queue_goes_on_from_the_last_good_sample(settings, log_dir):
    (log_dir / "queue.ndjson").write_text('{"ts": 1, "depth": 42, "workers": 3}\n{"depth": "junk"}\nnot json\n')
    traffic = Traffic(settings, NOW)
    assert (traffic.depth, traffic.workers) == (42, 3)


def test_poisson_draws():
    import random

    from echoops.core.demo.traffic import _poisson

    rng = random.Random(1)
    assert _poisson(rng, 0) == 0 and _poisson(rng, -1) == 0
    draws = [_poisson(rng, 4.0) for _ in range(2000)]
    assert 3.8 < sum(draws) / len(draws) < 4.2
    assert 900 < _poisson(rng, 1000.0) < 1100


def test_an_old_demo_dir_at_the_default_path_gets_its_marker(monkeypatch, tmp_path):
    from echoops.core.demo import folder

    monkeypatch.chdir(tmp_path)
    demo_dir = tmp_path / "logs" / "demo"
    demo_dir.mkdir(parents=True)
    (demo_dir / "requests.ndjson").write_text('{"ts": 1, "status": 200, "latency_ms": 1}\n')
    monkeypatch.setenv("ECHOOPS_LOG_DIR", "logs/demo")
    monkeypatch.setenv("ECHOOPS_SCHEDULE", "logs/demo/schedule.cron")
    said: list[str] = []
    assert folder.prepare(config.settings(), say=said.append) is True
    assert said == []  # not seeded over
    assert orjson.loads((demo_dir / "demo.json").read_bytes())["by"] == "echoops up --demo"
    assert (demo_dir / "schedule.cron").read_text().startswith("# The demo's schedule")
    # another dir with data but no marker is not the demo's: no live traffic there
    monkeypatch.setenv("ECHOOPS_LOG_DIR", str(tmp_path / "real"))
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "requests.ndjson").write_text('{"ts": 1, "status": 200, "latency_ms": 1}\n')
    assert folder.prepare(config.settings(), say=said.append) is False
