"""`echoops demo seed`: formats, the burst, determinism, never clobbering real logs."""

from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path

import orjson
import pytest

from echoops.core import clock, config, demo
from echoops.core.errors import ValidationError

NOW = clock.parse_ts("2026-11-18T11:06:40Z")
PRICES = {"gpt-4o-mini": (0.15, 0.60), "gpt-4o": (2.50, 10.00), "text-embedding-3-small": (0.02, 0.0)}


def _settings(path: Path) -> config.Settings:
    return config.load_settings({"ECHOOPS_LOG_DIR": str(path)})


def _lines(path: Path) -> list[dict]:
    with open(path, "rb") as fh:
        return [orjson.loads(line) for line in fh]


@pytest.fixture(scope="module")
def seeded(tmp_path_factory) -> tuple[Path, dict]:
    """One seeded log dir shared by the read-only tests (seeding is the slow part)."""
    path = tmp_path_factory.mktemp("demo")
    return path, demo.seed(s=_settings(path), now=NOW)


@pytest.fixture(scope="module")
def requests_rows(seeded) -> list[tuple[float, dict]]:
    """Parsed request lines with their epoch timestamps, parsed once."""
    return [(clock.parse_ts(r["ts"]), r) for r in _lines(seeded[0] / "requests.ndjson")]


def test_seed_reports_counts_per_input(seeded):
    path, result = seeded
    assert result["now"] == "2026-11-18T11:06:40.000Z"
    assert result["log_dir"] == str(path)
    assert list(result["counts"]) == ["requests", "ai_usage", "queue", "app", "purchases"]
    for name, file in zip(list(result["counts"])[:4], demo.INPUT_FILES, strict=True):  # purchases go to the store
        assert len(_lines(path / file)) == result["counts"][name]


def test_requests_three_days_realistic(seeded, requests_rows):
    path, _ = seeded
    assert (path / "requests.ndjson").stat().st_size < 30 * 1024 * 1024
    ts = [t for t, _ in requests_rows]
    rows = [r for _, r in requests_rows]
    assert None not in ts
    assert ts == sorted(ts)
    assert NOW - 3 * 86400 - 60 <= ts[0] < NOW - 3 * 86400 + 60
    assert ts[-1] <= NOW
    per_min = Counter(int(t // 60) for t in ts[:-120])
    assert min(per_min.values()) >= 15 and max(per_min.values()) <= 130
    for r in rows:
        assert r["status"] in (200, 201, 401, 404, 500, 503, 504)
        assert isinstance(r["latency_ms"], float) and r["latency_ms"] > 0
        assert r["method"] in ("GET", "POST") and r["path"].startswith("/")
    before = sorted(r["latency_ms"] for r, t in zip(rows, ts, strict=True) if t < NOW - 7200)
    p95 = before[int(len(before) * 0.95)]
    assert 300 <= p95 <= 500, p95


def test_error_burst_in_last_two_hours(requests_rows):
    def error_ratio(selected: list[dict]) -> float:
        return sum(r["status"] >= 500 for r in selected) / len(selected)

    recent = [r for t, r in requests_rows if t >= NOW - 7200]
    earlier = [r for t, r in requests_rows if t < NOW - 7200]
    last_hour = [r for t, r in requests_rows if t >= NOW - 3600]
    assert error_ratio(earlier) < 0.005
    assert error_ratio(recent) > 0.03
    assert error_ratio(last_hour) > 0.05  # well past the 1% daily budget: the SLO card is red
    slow = sorted(r["latency_ms"] for r in last_hour)
    assert slow[int(len(slow) * 0.95)] > 800  # above SLO_LAT_P95_MS


def test_the_demo_burst_sets_the_deploy_gate(tmp_path):
    # the README's promise: the card turns red *and* the gate sets, under the 2h rule
    from echoops.core import slo

    s = _settings(tmp_path)
    demo.seed(s=s, now=NOW)
    result = slo.tick(s=s, now=NOW)
    assert result["status"]["state"] == "red" and result["gate_set"] is True
    assert result["status"]["gate_slices"]["burning"] == 12


def test_ai_usage_today_near_default_caps(seeded):
    path, _ = seeded
    rows = _lines(path / "ai_usage.ndjson")
    spend: Counter[str] = Counter()
    day0 = clock.day_start(NOW)
    for r in rows:
        t = clock.parse_ts(r["ts"])
        assert day0 <= t <= NOW
        assert r["input_tokens"] > 0 and r["output_tokens"] >= 0
        price_in, price_out = PRICES[r["model"]]
        spend[r["model"]] += (r["input_tokens"] * price_in + r["output_tokens"] * price_out) / 1e6
    assert set(spend) == set(PRICES)
    assert 0.9 * 15 <= spend["gpt-4o-mini"] < 15  # WARN, not yet throttled
    assert 0.2 * 2 <= spend["text-embedding-3-small"] < 0.9 * 2
    assert 0.6 * 25 <= sum(spend.values()) <= 0.8 * 25


def test_queue_backlog_rises_in_last_hour(seeded):
    path, _ = seeded
    rows = _lines(path / "queue.ndjson")
    assert len(rows) == 6 * 60 + 1
    ts = [clock.parse_ts(r["ts"]) for r in rows]
    assert ts[-1] == NOW and all(b - a == 60 for a, b in zip(ts, ts[1:], strict=False))
    assert {r["workers"] for r in rows} == {2}
    for r in rows:
        assert min(r["depth"], r["arrivals"], r["completed"]) >= 0
    hour_ago = rows[-61]["depth"]
    assert rows[-1]["depth"] > hour_ago + 200
    assert max(r["depth"] for r in rows[:-61]) < 50


def test_app_log_has_one_critical(seeded):
    path, _ = seeded
    rows = _lines(path / "app.ndjson")
    levels = Counter(r["level"] for r in rows)
    assert levels["CRITICAL"] == 1 and levels["INFO"] >= 2 and levels["WARNING"] >= 2
    critical = next(r for r in rows if r["level"] == "CRITICAL")
    assert NOW - 3600 < clock.parse_ts(critical["ts"]) <= NOW
    assert critical["msg"] and critical["source"]


def test_deterministic_for_same_now(seeded, tmp_path):
    path, _ = seeded
    demo.seed(s=_settings(tmp_path), now=NOW)
    for name in demo.INPUT_FILES:
        a = hashlib.sha256((path / name).read_bytes()).hexdigest()
        b = hashlib.sha256((tmp_path / name).read_bytes()).hexdigest()
        assert a == b, name


def test_is_empty_and_refuses_to_overwrite(tmp_path):
    s = _settings(tmp_path)
    assert demo.is_empty(s=s)
    (tmp_path / "queue.ndjson").write_text('{"ts": 1, "depth": 1, "workers": 1}\n')
    assert not demo.is_empty(s=s)
    with pytest.raises(ValidationError) as exc:
        demo.seed(s=s, now=NOW)
    assert "queue.ndjson" in exc.value.detail and "--force" in exc.value.detail
    assert (tmp_path / "queue.ndjson").read_text() == '{"ts": 1, "depth": 1, "workers": 1}\n'
    assert not (tmp_path / "requests.ndjson").exists()


def test_cli_seed_exit_codes(cli, log_dir):
    result = cli("demo", "seed", "--now", "2026-11-18T11:06:40Z", "--json")
    assert result.exit_code == 0, result.output
    body = orjson.loads(result.stdout)
    assert body["now"] == "2026-11-18T11:06:40.000Z"
    assert body["counts"]["queue"] == 361 and body["counts"]["app"] == 8

    again = cli("demo", "seed", "--now", "2026-11-18T11:06:40Z")
    assert again.exit_code == 2
    assert "requests.ndjson already exists" in again.stderr

    forced = cli("demo", "seed", "--now", "2026-11-19T11:06:40Z", "--force")
    assert forced.exit_code == 0
    assert "queue" in forced.stdout and "361" in forced.stdout
    last = _lines(log_dir / "queue.ndjson")[-1]
    assert last["ts"] == "2026-11-19T11:06:40.000Z"

    bad = cli("demo", "seed", "--now", "yesterday", "--force")
    assert bad.exit_code == 2
    assert "--now" in bad.stderr
