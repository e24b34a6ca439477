"""`echoops scale simulate`: the backtest of the production policy against a reactive baseline.

`trace()` is the test trace generator (also used by bench/scale_simulate.py): one-minute
queue samples of an app whose fixed workers serve `cap` jobs/min each, with Gaussian noise
on the arrival rate, deterministic per seed.
"""

from __future__ import annotations

import math
import random
import re
from pathlib import Path

import orjson
import pytest

from echoops.core.scale import backtest

T0 = 1_790_000_000


def ramp_rate(minute: int) -> float:
    """20 jobs/min for an hour, up to 200 over two hours, two hours flat, down in one, then 20."""
    if minute < 60:
        return 20.0
    if minute < 180:
        return 20.0 + (minute - 60) / 120 * 180
    if minute < 300:
        return 200.0
    if minute < 360:
        return 200.0 - (minute - 300) / 60 * 180
    return 20.0


def oscillating_rate(minute: int) -> float:
    """60 +- 40 jobs/min with a 20-minute period: a load that tempts a scaler to flap."""
    return 60.0 + 40.0 * math.sin(2 * math.pi * minute / 20)


def diurnal_rate(minute: int) -> float:
    """A business day: 20 jobs/min at night, a sine hump up to 120 between 06:00 and 20:00."""
    hour = (minute / 60) % 24
    return 20.0 + 100.0 * max(0.0, math.sin(math.pi * (hour - 6) / 14)) if 6 <= hour <= 20 else 20.0


def trace(rate, minutes: int, *, workers: int = 2, cap: float = 25.0, seed: int = 7, noise: float = 0.1) -> bytes:
    """NDJSON queue history (`ts, depth, workers, arrivals, completed`) of `minutes` one-minute samples."""
    rng = random.Random(seed)
    backlog = 0.0
    lines = []
    for i in range(minutes):
        r = rate(i)
        arrivals = max(0, round(rng.gauss(r, r * noise)))
        served = min(backlog + arrivals, workers * cap)
        backlog += arrivals - served
        sample = {"ts": T0 + 60 * i, "depth": round(backlog), "workers": workers}
        sample.update(arrivals=arrivals, completed=round(served))
        lines.append(orjson.dumps(sample))
    return b"\n".join(lines) + b"\n"


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def summary_rows(stdout: str) -> dict[str, list[float]]:
    """The printed summary table: method -> [changes, backlog-minutes, worker-minutes, peak backlog, MAPE]."""
    rows = {}
    for line in stdout.splitlines():
        m = re.match(r"^\W*(reactive|holt|damped\+seas\S*|damped)\*?" + r"\W+([\d.]+)" * 5, line)
        if m:
            rows[m.group(1).rstrip("*")] = [float(x) for x in m.groups()[1:]]
    return rows


def test_ramp_every_method_side_by_side_and_holt_is_the_old_predictive(tmp_path, cli, monkeypatch):
    monkeypatch.setenv("SCALE_MAX", "12")
    path = write(tmp_path, "ramp.ndjson", trace(ramp_rate, 600))
    out = cli("scale", "simulate", str(path), env={"COLUMNS": "200"})  # every reason on its row's line
    assert out.exit_code == 0
    rows = summary_rows(out.stdout)
    assert set(rows) == {"reactive", "holt", "damped", "damped+seasonal"}
    # Holt is the forecast `scale tick` used before issue 18: the same numbers as then
    # (predictive 1802 backlog-min / 2369 worker-min, reactive 13305 / 2329)
    assert rows["holt"][1:3] == [1802.0, 2369.0]
    assert rows["reactive"][1:3] == [13305.0, 2329.0]
    assert rows["holt"][1] < 0.5 * rows["reactive"][1]
    # a 10-hour trace has no seasonal history: the default is the damped trend alone
    assert rows["damped+seasonal"] == rows["damped"]
    assert rows["damped"][4] < rows["holt"][4]  # the damped forecast's MAPE
    assert "* the method scale tick uses (SCALE_FORECAST=damped+seasonal)" in out.stdout
    assert "reactive vs holt: backlog-minutes +638.3%, worker-minutes -1.7%" in out.stdout
    # the printed decisions name their numbers
    assert re.search(r"holt\s+3 -> 5\s+29\s+backlog 29 \+ forecast 3082 in 30m needs 5 workers", out.stdout)
    js = orjson.loads(cli("scale", "simulate", str(path), "--json").stdout)
    assert list(js["methods"]) == ["reactive", "holt", "damped", "damped+seasonal"]
    assert js["methods"]["holt"]["summary"]["backlog_minutes"] == 1802.0
    assert js["methods"]["damped"]["summary"]["mape_pct"] == rows["damped"][4]
    assert js["model"]["jobs_per_worker_min"] == 25.0
    assert js["model"]["capacity_source"] == "trace"
    assert js["model"]["production_method"] == "damped+seasonal"
    assert js["trace"]["samples"] == 600
    assert js["comparison"]["reactive"]["backlog_minutes_change_pct"] == 638.3
    one = orjson.loads(cli("scale", "simulate", str(path), "--json", "--method", "damped").stdout)
    assert list(one["methods"]) == ["damped"] and "comparison" not in one
    assert one["methods"]["damped"] == js["methods"]["damped"]  # replayed alone or beside the others


def test_phases_average_the_summary_over_decision_offsets(tmp_path, cli, monkeypatch):
    monkeypatch.setenv("SCALE_MAX", "12")
    path = write(tmp_path, "ramp.ndjson", trace(ramp_rate, 600))
    one = orjson.loads(cli("scale", "simulate", str(path), "--json", "--method", "holt").stdout)
    ten = orjson.loads(cli("scale", "simulate", str(path), "--json", "--method", "holt", "--phases", "10").stdout)
    assert ten["model"]["phases"] == 10
    assert ten["methods"]["holt"]["changes"] == one["methods"]["holt"]["changes"]  # the first phase's list
    # the mean over the ten offsets is not the first offset's figure
    assert ten["methods"]["holt"]["summary"]["backlog_minutes"] != one["methods"]["holt"]["summary"]["backlog_minutes"]
    bad = cli("scale", "simulate", str(path), "--phases", "0")
    assert bad.exit_code == 2 and "phases" in bad.stderr
    unknown = cli("scale", "simulate", str(path), "--method", "arima")
    assert unknown.exit_code == 2
    assert "method must be one of reactive, holt, damped, damped+seasonal" in unknown.stderr


@pytest.mark.parametrize("tick_min", [10, 1])
def test_oscillating_load_makes_at_most_a_few_changes_per_hour(tmp_path, cli, tick_min):
    path = write(tmp_path, "osc.ndjson", trace(oscillating_rate, 600, workers=3))
    js = orjson.loads(cli("scale", "simulate", str(path), "--json", "--tick-min", str(tick_min)).stdout)
    hours = js["trace"]["minutes"] / 60
    for name in ("holt", "damped", "damped+seasonal"):
        per_hour = js["methods"][name]["summary"]["changes"] / hours
        # even deciding every minute, cooldown + scale-down stabilisation keep it to ~3 an hour
        assert per_hour <= 4, name
        assert js["methods"][name]["summary"]["decisions"] == (599 // tick_min)


def test_simulate_decides_exactly_like_production_on_the_same_samples(tmp_path, log_dir, monkeypatch, cli):
    """Workers pinned (2..2) so the simulated queue is the recorded one: the replay's last decision
    and `scale status` after ingesting the same file give the same reason, number for number."""
    from echoops.core import scale

    monkeypatch.setenv("SCALE_MIN", "2")
    monkeypatch.setenv("SCALE_MAX", "2")
    data = trace(ramp_rate, 121)  # samples T0 .. T0 + 120 min; ticks every 10 min
    path = write(tmp_path, "t.ndjson", data)
    js = orjson.loads(cli("scale", "simulate", str(path), "--all", "--json").stdout)
    last = js["methods"]["damped+seasonal"]["decisions"][-1]
    assert len(js["methods"]["damped+seasonal"]["decisions"]) == 12
    (log_dir / "queue.ndjson").write_bytes(data)
    body = scale.status(now=T0 + 120 * 60)
    assert last["ts"] == "2026-09-21T16:13:20.000Z"
    assert (last["desired"], last["backlog"]) == (body["desired"], body["forecast"]["backlog"])
    assert last["reason"] == body["reason"]
    assert "forecast" in last["reason"] and "capped at SCALE_MAX 2" in last["reason"]
    human = cli("scale", "simulate", str(path), "--all")
    assert human.stdout.count("  damped+seasonal  ") == 12


def test_simulate_rejects_bad_input(tmp_path, cli):
    missing = cli("scale", "simulate", str(tmp_path / "nope.ndjson"))
    assert missing.exit_code == 2
    assert missing.stderr == f"Error: trace {tmp_path / 'nope.ndjson'} does not exist\n"
    tiny = write(tmp_path, "tiny.ndjson", b'{"ts": 1790000000, "depth": 1, "workers": 1}\nnot json\n')
    short = cli("scale", "simulate", str(tiny))
    assert short.exit_code == 2
    assert "fewer than two usable samples" in short.stderr
    path = write(tmp_path, "ok.ndjson", trace(ramp_rate, 30))
    bad_tick = cli("scale", "simulate", str(path), "--tick-min", "0")
    assert bad_tick.exit_code == 2
    assert "tick_min" in bad_tick.stderr


def test_trace_without_arrivals_or_completions_is_still_replayed(tmp_path, cli):
    lines = [orjson.loads(line) for line in trace(ramp_rate, 240).splitlines()]
    for obj in lines:
        del obj["arrivals"], obj["completed"]
    path = write(tmp_path, "depth_only.ndjson", b"\n".join(orjson.dumps(o) for o in lines) + b"\n")
    js = orjson.loads(cli("scale", "simulate", str(path), "--json").stdout)
    assert js["model"]["capacity_source"] == "SCALE_JOBS_PER_WORKER_MIN"
    assert js["trace"]["arrivals"] > 0
    assert js["methods"]["damped+seasonal"]["summary"]["changes"] > 0


def _peak_bytes(path, settings) -> int:
    import tracemalloc  # lazy: only this test traces allocations

    tracemalloc.start()
    try:
        backtest.simulate(path, method="holt", s=settings)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.slow
def test_simulate_streams_the_trace_memory_does_not_grow_with_it(tmp_path, settings):
    """Issue 20: a trace ten times longer takes no more memory (the old replay held every
    interval and sample: 17 MB more here); the changes it lists are all that grows."""
    small, large = tmp_path / "small.ndjson", tmp_path / "large.ndjson"
    small.write_bytes(trace(diurnal_rate, 5_000, workers=3))
    large.write_bytes(trace(diurnal_rate, 55_000, workers=3))
    grown = _peak_bytes(large, settings) - _peak_bytes(small, settings)
    assert grown < 3_000_000, grown  # the changes listed: about 25 bytes a sample here
    assert backtest.Trace(large, 20.0).info["samples"] == 55_000


def test_a_streamed_trace_counts_its_bad_lines(tmp_path, settings):
    good = trace(diurnal_rate, 30, workers=2).splitlines()
    bad = [b"", b"not json", b"[1]", b'{"ts": "yesterday", "depth": 1, "workers": 1}']
    path = tmp_path / "t.ndjson"
    path.write_bytes(b"\n".join(good[:10] + bad + good[10:]) + b"\n")
    tr = backtest.Trace(path, 20.0)
    assert (tr.info["samples"], tr.info["bad"]) == (30, 3)  # the blank line is neither
    assert len(list(tr.intervals())) == 29 == len(list(tr.intervals()))  # read again for each replay
