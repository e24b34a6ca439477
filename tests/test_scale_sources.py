"""`echoops scale sample` against a real redis-server: plain lists, RQ queues (through RQ itself),
Celery's broker lists (written by kombu itself), and what happens when Redis is down."""

from __future__ import annotations

import sqlite3

import orjson
import pytest

from echoops.core import scale
from echoops.core.errors import NotConfigured
from echoops.core.scale.sources import safe_url
from tests.needs import module
from tests.redis_server import PASSWORD
from tests.test_scale import T0, actuator, growing_backlog, write_queue  # noqa: F401 (fixture)


def samples(log_dir) -> list[dict]:
    path = log_dir / "queue.ndjson"
    return [orjson.loads(line) for line in path.read_bytes().splitlines()] if path.exists() else []


def events(log_dir) -> list[dict]:
    path = log_dir / "scale.ndjson"
    return [orjson.loads(line) for line in path.read_bytes().splitlines()] if path.exists() else []


def test_file_source_is_the_default_and_writes_nothing(log_dir, cli):
    result = cli("scale", "sample", "--json")
    assert result.exit_code == 0
    assert orjson.loads(result.stdout) == {
        "source": "file",
        "written": False,
        "sample": None,
        "detail": "SCALE_QUEUE_SOURCE=file: the app appends its own samples to queue.ndjson",
        "missed_in_row": 0,
    }
    assert not (log_dir / "queue.ndjson").exists()


def test_redis_lists_depth_is_the_sum_of_llen_and_workers_are_the_known_ones(redis_server, log_dir, monkeypatch, cli):
    r = redis_server.client()
    r.rpush("jobs:email", *[b"x"] * 30)
    r.rpush("jobs:pdf", *[b"y"] * 12)
    monkeypatch.setenv("SCALE_QUEUE_SOURCE", "redis")
    monkeypatch.setenv("SCALE_REDIS_URL", redis_server.url)
    monkeypatch.setenv("SCALE_REDIS_KEYS", "jobs:email, jobs:pdf, jobs:missing")
    monkeypatch.setenv("SCALE_MIN", "2")
    first = scale.sample(now=T0)
    assert first["written"] is True
    line = samples(log_dir)[-1]
    assert line == {
        "ts": "2026-09-21T14:13:20.000Z",
        "event": "queue_sample",
        "depth": 42,
        "workers": 2,  # SCALE_MIN: nothing applied, no sample before
        "workers_known": False,
        "source": "redis",
        "keys": {"jobs:email": 30, "jobs:pdf": 12, "jobs:missing": 0},
    }
    assert first["sample"] == line
    r.rpush("jobs:pdf", *[b"y"] * 18)
    human = cli("scale", "sample", "--now", str(T0 + 60))
    assert human.exit_code == 0
    assert human.stdout == "redis sample at 2026-09-21T14:14:20.000Z: depth 60, workers 2 (known to echoops)\n"
    body = scale.status(now=T0 + 60)
    assert body["forecast"]["backlog"] == 60
    assert body["samples"]["ingested"] == 2
    assert body["source"] == {
        "kind": "redis",
        "missed_in_row": 0,
        "last_error": None,
        "last_ok_at": "2026-09-21T14:14:20.000Z",
        "last_attempt_at": "2026-09-21T14:14:20.000Z",
    }
    # the autoscaler's applied count is what the next sample carries
    r.set("not-a-list", b"1")
    monkeypatch.setenv("SCALE_REDIS_KEYS", "jobs:email,not-a-list")
    with pytest.raises(scale.SourceUnavailable) as err:
        scale.sample(now=T0 + 120)
    assert "WRONGTYPE" in err.value.detail


def test_redis_down_skips_the_sample_holds_the_decision_and_pages_on_the_third_miss(
    redis_server,
    log_dir,
    monkeypatch,
    cli,
    actuator,  # noqa: F811
):
    monkeypatch.setenv("SCALE_QUEUE_SOURCE", "redis")
    monkeypatch.setenv("SCALE_REDIS_URL", redis_server.url)
    monkeypatch.setenv("SCALE_REDIS_KEYS", "jobs")
    monkeypatch.setenv("SCALE_DRY_RUN", "false")
    write_queue(log_dir, growing_backlog(T0))  # the backlog grows: 2 workers, 4 wanted
    scale.sample(now=T0 + 1790)  # a good sample first (empty list)
    redis_server.stop()
    for i in (1, 2, 3):
        result = cli("scale", "sample", "--now", str(T0 + 1790 + 60 * i))
        assert result.exit_code == 1
        assert "Error: redis source at redis://127.0.0.1:" in result.stderr
        assert "ConnectionError" in result.stderr
        assert PASSWORD not in result.stderr + result.stdout
    assert "incident inc_" in result.stderr  # the third miss
    missed = [e for e in events(log_dir) if e["event"] == "scale_sample_missed"]
    assert [e["missed_in_row"] for e in missed] == [1, 2, 3]
    assert all(e["source"] == "redis" and PASSWORD not in e["error"] for e in missed)
    rows = (
        sqlite3.connect(log_dir / "echoops.db")
        .execute("SELECT severity, source, fingerprint FROM pager_incidents")
        .fetchall()
    )
    assert rows == [("WARNING", "scale", "scale-source-down")]
    # the decision holds: the policy wants more workers but the source is down
    body = scale.tick(now=T0 + 1990)
    assert (body["desired"], body["target"], body["actual"], body["held_by"], body["applied"]) == (
        4,
        2,
        2,
        "source",
        False,
    )
    assert "queue source unreadable (3 missed samples): holding" in body["reason"]
    assert body["source"]["missed_in_row"] == 3 and PASSWORD not in body["source"]["last_error"]
    assert actuator() == []
    assert PASSWORD not in (log_dir / "scale.ndjson").read_text() + (log_dir / "queue.ndjson").read_text()


def test_redis_back_up_logs_the_recovery_and_the_hold_ends(redis_server, log_dir, monkeypatch):
    monkeypatch.setenv("SCALE_QUEUE_SOURCE", "redis")
    monkeypatch.setenv("SCALE_REDIS_KEYS", "jobs")
    monkeypatch.setenv("SCALE_REDIS_URL", f"redis://:{PASSWORD}@127.0.0.1:1/0")  # nothing listens on port 1
    with pytest.raises(scale.SourceUnavailable):
        scale.sample(now=T0)
    assert scale.status(now=T0)["source"]["missed_in_row"] == 1
    monkeypatch.setenv("SCALE_REDIS_URL", redis_server.url)
    redis_server.client().rpush("jobs", *[b"j"] * 5)
    assert scale.sample(now=T0 + 60)["sample"]["depth"] == 5
    assert [e["event"] for e in events(log_dir)] == ["scale_sample_missed", "scale_sample_recovered"]
    assert events(log_dir)[-1]["missed"] == 1
    assert scale.status(now=T0 + 60)["source"]["missed_in_row"] == 0


def test_a_source_without_its_settings_is_a_config_error(log_dir, monkeypatch, cli):
    monkeypatch.setenv("SCALE_QUEUE_SOURCE", "redis")
    result = cli("scale", "sample")
    assert result.exit_code == 2
    assert "SCALE_REDIS_KEYS" in result.stderr
    monkeypatch.setenv("SCALE_REDIS_KEYS", "jobs")
    with pytest.raises(NotConfigured, match="SCALE_REDIS_URL"):
        scale.sample()
    monkeypatch.setenv("SCALE_QUEUE_SOURCE", "kafka")
    assert cli("config").exit_code == 2


def test_safe_url_drops_the_credentials():
    assert safe_url("redis://user:pw@cache.internal:6380/2") == "redis://cache.internal:6380/2"
    assert safe_url("rediss://:pw@[::1]:6379/0") == "rediss://[::1]:6379/0"
    assert safe_url("unix:///run/redis.sock") == "unix:///run/redis.sock"


# --- RQ ------------------------------------------------------------------------------------


def rq_or_skip():

    rq = module("rq")
    return rq


def test_rq_depth_completions_and_arrivals_through_rq_itself(redis_server, log_dir, monkeypatch):
    rq = rq_or_skip()
    from rq.worker import SimpleWorker

    conn = redis_server.client()
    q = rq.Queue("reports", connection=conn)
    for i in range(10):
        q.enqueue("tests.rq_jobs.work", 0.0, job_id=f"a{i}")
    monkeypatch.setenv("SCALE_QUEUE_SOURCE", "rq")
    monkeypatch.setenv("SCALE_REDIS_URL", redis_server.url)
    monkeypatch.setenv("SCALE_QUEUES", "reports")
    first = scale.sample(now=T0)["sample"]
    assert (first["depth"], first["workers"], first["in_progress"], first["busy"], first["idle"]) == (10, 0, 0, 0, 0)
    assert "arrivals" not in first and "completed" not in first  # nothing to difference yet
    # a real RQ worker runs the ten jobs (in this process, burst mode), one of them fails
    q.enqueue("tests.rq_jobs.fail", job_id="bad")
    SimpleWorker([q], connection=conn).work(burst=True)
    for i in range(3):
        q.enqueue("tests.rq_jobs.work", 0.0, job_id=f"b{i}")
    second = scale.sample(now=T0 + 60)["sample"]
    # 11 finished or failed (the registries; the worker exited, so its own counters are gone),
    # depth 10 -> 3: 3 - 10 + 11 = 4 arrived (the failing job and the three new ones)
    assert (second["depth"], second["completed"], second["arrivals"]) == (3, 11, 4)
    assert (second["completed_registries"], second["completed_workers"]) == (11, 0)
    third = scale.sample(now=T0 + 120)["sample"]
    assert (third["completed"], third["arrivals"]) == (0, 0)  # the same ids are not counted twice
    body = scale.status(now=T0 + 120)
    assert body["forecast"]["backlog"] == 3


# --- Celery (Redis broker) ----------------------------------------------------------------


def test_celery_depth_counts_kombus_priority_sub_queues_and_says_when_it_estimates(redis_server, log_dir, monkeypatch):
    """Messages published by Celery itself (kombu's Redis transport) with priorities land in
    `celery`, `celery\\x06\\x163`, ...; no worker answers inspect, so the sample says it estimates."""

    Celery = module("celery").Celery
    app = Celery("producer", broker=redis_server.url, set_as_current=False)
    for priority in (0, 0, 3, 5, 9, 9, 9):
        app.send_task("tests.celery_app.work", args=(0.0,), queue="celery", priority=priority)
    app.send_task("tests.celery_app.work", args=(0.0,), queue="mail")
    app.close()
    keys = sorted(k.decode() for k in redis_server.client().keys("*") if k.startswith((b"celery", b"mail")))
    # priority 5 goes to kombu's step 3 (steps 0, 3, 6, 9: the highest step at or below it)
    assert keys == ["celery", "celery\x06\x163", "celery\x06\x169", "mail"]
    monkeypatch.setenv("SCALE_QUEUE_SOURCE", "celery")
    monkeypatch.setenv("SCALE_REDIS_URL", redis_server.url)
    monkeypatch.setenv("SCALE_QUEUES", "celery,mail")
    monkeypatch.setenv("SCALE_SOURCE_TIMEOUT_S", "0.3")
    line = scale.sample(now=T0)["sample"]
    assert (line["depth"], line["queues"]) == (8, {"celery": 7, "mail": 1})
    assert line["workers_known"] is False
    assert line["estimate"] == (
        "no Celery worker answered inspect within 0.3s: workers and completions estimated from depth deltas"
    )


@pytest.mark.slow
def test_celery_workers_and_completions_from_a_real_worker_answering_inspect(redis_server, log_dir, monkeypatch):
    """One `celery worker` (solo pool) on the test's redis-server: the sample counts it through
    Celery's inspect API and its completions from the growth of its accepted-task total."""
    import os
    import subprocess
    import sys
    import time

    from celery import Celery

    env = dict(os.environ, CELERY_BROKER_URL=redis_server.url)
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "tests.celery_app", "worker", "--pool=solo", "-Q", "celery",
         "-n", "w1@echoops-test", "--without-mingle", "--without-gossip", "--loglevel=WARNING"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    monkeypatch.setenv("SCALE_QUEUE_SOURCE", "celery")
    monkeypatch.setenv("SCALE_REDIS_URL", redis_server.url)
    monkeypatch.setenv("SCALE_SOURCE_TIMEOUT_S", "1")
    try:
        app = Celery("producer", broker=redis_server.url, set_as_current=False)
        deadline = time.monotonic() + 30
        while not app.control.inspect(timeout=0.5).ping():
            assert time.monotonic() < deadline and worker.poll() is None, "celery worker did not answer"
        first = scale.sample(now=T0)["sample"]
        assert (first["workers"], first["depth"], first["concurrency"]) == (1, 0, 1)
        assert "completed" not in first and "estimate" not in first
        for _ in range(5):
            app.send_task("tests.celery_app.work", args=(0.01,), queue="celery")
        r = redis_server.client()
        deadline = time.monotonic() + 20
        while r.llen("celery") or (r.hlen("unacked") if r.exists("unacked") else 0):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        time.sleep(0.3)
        second = scale.sample(now=T0 + 60)["sample"]
        assert (second["workers"], second["depth"], second["completed"], second["arrivals"]) == (1, 0, 5, 5)
        app.close()
    finally:
        worker.terminate()
        try:
            worker.wait(10)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
