"""The autoscaler closing the loop on real workers: Debian's redis-server, RQ worker processes
as the pool, SCALE_CMD = tests/scale_workers.py (starts/stops `rq worker` processes to reach
{n}), real mode (SCALE_DRY_RUN=false), `scale sample` and `scale tick` driven in process.

Time is compressed 60x through `now=`: one real second is one minute for echoops. A job takes
50 ms, so a worker finishes ~20 jobs a real second = 20 jobs a minute in echoops' clock, which
is SCALE_JOBS_PER_WORKER_MIN's default; the cooldown (3 min) and the horizon (10 min) are
seconds of real time. The producer enqueues 10 jobs a second (one worker is enough), ramps to
55 a second (three workers) over 8 s, holds 10 s, then stops.
"""

from __future__ import annotations

import os
import shlex
import signal
import sqlite3
import sys
import time
from pathlib import Path

import pytest

from echoops.core import scale
from tests.conftest import alive
from tests.needs import module

ROOT = Path(__file__).resolve().parent.parent
MINUTE = 60.0
T0 = 1_790_000_000.0
LOAD_SECONDS = 26


def rate(k: int) -> int:
    """Jobs enqueued in real second k."""
    if k < 5:
        return 10
    if k < 13:
        return 10 + (k - 5) * 45 // 8
    if k < LOAD_SECONDS:
        return 55
    return 0


def live_workers(state: Path) -> int:
    return sum(1 for f in state.glob("worker-*.pid") if alive(int(f.read_text())))


@pytest.fixture
def rq_pool(tmp_path, redis_server, monkeypatch):
    """SCALE_CMD and the env for an RQ pool on `redis_server`; kills every worker it started at the end."""
    rq = module("rq")
    state = tmp_path / "pool"
    cmd = [sys.executable, str(ROOT / "tests" / "scale_workers.py"), str(state), "loop", "{n}"]
    env = {
        "SCALE_QUEUE_SOURCE": "rq",
        "SCALE_REDIS_URL": redis_server.url,
        "RQ_REDIS_URL": redis_server.url,  # what the workers SCALE_CMD starts connect to
        "SCALE_QUEUES": "loop",
        "SCALE_DRY_RUN": "false",
        "SCALE_CMD": shlex.join(cmd),
        "SCALE_CMD_TIMEOUT_S": "20",
        "SCALE_MIN": "1",
        "SCALE_MAX": "4",
        "SCALE_COOLDOWN_MIN": "3",
        "SCALE_HORIZON_MIN": "10",
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    queue = rq.Queue("loop", connection=redis_server.client())
    try:
        yield state, queue
    finally:
        spawned = (state / "spawned").read_text().split() if (state / "spawned").exists() else []
        for pid in map(int, spawned):
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


@pytest.mark.slow
def test_rq_workers_scale_up_to_drain_a_ramp_and_back_down_after_the_stabilisation_window(rq_pool, log_dir):
    import rq

    state, queue = rq_pool
    assert os.system(os.environ["SCALE_CMD"].replace("{n}", "1")) == 0  # the pool starts with one worker
    deadline = time.monotonic() + 15
    while rq.Worker.count(queue=queue) < 1:
        assert time.monotonic() < deadline, (state / "workers.log").read_text()
        time.sleep(0.05)
    started = time.monotonic()
    depths, pool_sizes, ticks = [], [], []
    k = 0
    while True:
        k += 1
        now = T0 + k * MINUTE
        n = rate(k - 1)
        if n:
            queue.enqueue_many([rq.Queue.prepare_data("tests.rq_jobs.work", (0.05,)) for _ in range(n)])
        time.sleep(max(0.0, started + k - time.monotonic()))  # the rest of this real second
        depths.append(scale.sample(now=now)["sample"]["depth"])
        pool_sizes.append(live_workers(state))
        if k % 2 == 0:
            ticks.append(scale.tick(now=now + 1))
        done = k > LOAD_SECONDS and depths[-1] == 0 and ticks and ticks[-1]["actual"] == 1
        if done or k >= 55:
            break
    elapsed = time.monotonic() - started

    rows = (
        sqlite3.connect(log_dir / "echoops.db")
        .execute("SELECT ts, target, actual, action, applied, reason FROM scale_decisions ORDER BY id")
        .fetchall()
    )
    changes = [(ts, target, actual) for ts, target, actual, action, applied, _ in rows if applied]
    peak = max(target for _, target, _ in changes)
    # it scaled up beyond the one worker it started with, and the backlog built by the ramp drained
    assert peak >= 3, rows
    assert max(depths) > 50 and depths[-1] == 0, depths
    # bounds: never asked for more than SCALE_MAX, never ran more than SCALE_MAX processes
    assert all(1 <= target <= 4 for _, target, _ in changes)
    assert max(pool_sizes) <= 4
    # cooldown: applied changes at least SCALE_COOLDOWN_MIN (3 echoops minutes) apart
    gaps = [b[0] - a[0] for a, b in zip(changes, changes[1:], strict=False)]
    assert all(g >= 3 * MINUTE for g in gaps), gaps
    # after the load stopped it came back down to SCALE_MIN, and only after the stabilisation
    # window: a scale-down was held at the highest recent recommendation first
    end_of_load = T0 + LOAD_SECONDS * MINUTE
    after = [r for r in rows if r[0] > end_of_load]
    assert any("scale-down held at" in r[5] for r in after), [r[5] for r in after]
    assert changes[-1][1] == 1 and changes[-1][0] > end_of_load
    first_down = next(ts for ts, target, actual in changes if ts > end_of_load and target < actual)
    assert first_down - end_of_load >= 3 * MINUTE
    assert ticks[-1]["actual"] == 1
    deadline = time.monotonic() + 10  # the stopped workers finish their job and unregister
    while rq.Worker.count(queue=queue) != 1:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert elapsed < 60
