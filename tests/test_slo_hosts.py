"""The SLO over several hosts sharing a PostgreSQL store: each host ingests its own request logs
into per-host minute rows (`echoops slo ingest`, the @local job), the leader's tick merges them
in the database; the status equals the status over the union of the hosts' lines."""

from __future__ import annotations

import random
from pathlib import Path

import orjson
import pytest

from echoops.core import slo, store
from echoops.core.config import load_settings
from tests.test_slo import T0, iso

pytestmark = pytest.mark.parametrize("db_backend", ["postgres"], indirect=True)


def mixed_lines(hours: int, seed: int = 7) -> list[bytes]:
    """`hours` of traffic before T0: latencies spread 5 ms..3 s, 2-9% errors, a bad hour."""
    rng = random.Random(seed)
    out = []
    start = T0 - hours * 3600
    for m in range(hours * 60):
        bad = (m // 60) >= hours - 3  # the last three hours burn budget
        for i in range(30):
            ts = start + m * 60 + i * 2 + rng.random()
            status = 503 if rng.random() < (0.09 if bad else 0.02) else 200
            latency = round(rng.lognormvariate(4.8, 0.9 if bad else 0.6), 1)
            out.append(orjson.dumps({"ts": iso(ts), "status": status, "latency_ms": latency}) + b"\n")
    return out


def settings_for(url: str, instance: str, log_dir: Path):
    log_dir.mkdir(parents=True, exist_ok=True)
    return load_settings({"ECHOOPS_DB_URL": url, "ECHOOPS_INSTANCE": instance, "ECHOOPS_LOG_DIR": str(log_dir)})


def test_two_hosts_give_the_status_of_one_host_with_all_their_lines(tmp_path, postgres_server, settings):
    lines = mixed_lines(hours=5)
    # one host with every line
    solo = settings_for(settings.db_url, "solo", tmp_path / "solo")
    (solo.log_dir / "requests.ndjson").write_bytes(b"".join(lines))
    one = slo.tick(s=solo, now=T0)
    # two hosts, each with every other line, in their own log dirs, on another database
    url = postgres_server.new_database()
    try:
        a = settings_for(url, "host-a", tmp_path / "a")
        b = settings_for(url, "host-b", tmp_path / "b")
        (a.log_dir / "requests.ndjson").write_bytes(b"".join(lines[0::2]))
        (b.log_dir / "requests.ndjson").write_bytes(b"".join(lines[1::2]))
        got_b = slo.ingest(s=b, now=T0)  # an app host's @local job
        got_a = slo.ingest(s=a, now=T0)
        assert (got_a["lines"], got_b["lines"]) == (len(lines[0::2]), len(lines[1::2]))
        two = slo.tick(s=a, now=T0)  # the leader's tick: its own file has nothing new
        assert two["ingest"]["lines"] == 0
        rows = store.connect(a).execute("SELECT host, count(*) FROM slo_minute GROUP BY host ORDER BY host")
        assert [tuple(r) for r in rows] == [("host-a", 300), ("host-b", 300)]
        assert one["status"]["requests"] == len(lines)
        assert one["status"]["state"] == "red"  # the bad hour is in it: the comparison is not of zeros
        assert two["status"] == one["status"]
        assert slo.status(s=b, now=T0) == slo.status(s=solo, now=T0)
        # the gate the leader (host-a) set is seen, and cleared, from host-b
        assert (a.log_dir / "deploy_gate.flag").exists() and not (b.log_dir / "deploy_gate.flag").exists()
        assert slo.gate(s=b, now=T0)["set"] is True
        cleared = slo.clear_gate("rolled back", s=b, now=T0 + 30)
        assert cleared["cleared"] is True and cleared["gate"]["set"] is True
        assert slo.gate(s=b, now=T0 + 31)["set"] is False
        slo.tick(s=a, now=T0 + 60)  # the leader's next tick drops its copy (the override holds it open)
        assert not (a.log_dir / "deploy_gate.flag").exists()
        assert slo.gate(s=a, now=T0 + 61)["set"] is False
        assert slo.gate(s=a, now=T0 + 61)["override"]["reason"] == "rolled back"
    finally:
        store.close_all()
        postgres_server.drop(url)


def test_each_host_keeps_its_own_cursor_for_the_same_path(tmp_path, settings):
    # two hosts can log to the same path (/var/log/app/requests.ndjson on each): each reads its own
    shared = tmp_path / "same"
    a = settings_for(settings.db_url, "host-a", shared)
    b = settings_for(settings.db_url, "host-b", shared)
    lines = mixed_lines(hours=1)
    (shared / "requests.ndjson").write_bytes(b"".join(lines))
    assert slo.ingest(s=a, now=T0)["lines"] == len(lines)
    assert slo.ingest(s=a, now=T0)["lines"] == 0  # host-a's cursor is at the end
    assert slo.ingest(s=b, now=T0)["lines"] == len(lines)  # host-b's is its own
    cursors = store.connect(a).execute("SELECT host, lines FROM cursors WHERE consumer='slo' ORDER BY host")
    assert [tuple(r) for r in cursors] == [("host-a", len(lines)), ("host-b", len(lines))]
