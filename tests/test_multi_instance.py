"""Two echoops servers on one PostgreSQL database (two hosts: own log dirs and ECHOOPS_INSTANCE),
both delivery threads running: every page is delivered exactly once, and a database restart
mid-run loses no acknowledged raise (a client sees 503 while it is down, never a 200 for
something that was not stored)."""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path

import httpx
import orjson
import pytest

from echoops.core import store
from tests.fakes_telegram import FakeTelegram

pytestmark = [pytest.mark.slow, pytest.mark.parametrize("db_backend", ["postgres"], indirect=True)]

CLIENTS = 16


@pytest.fixture
def tg(monkeypatch):
    with FakeTelegram() as fake:
        fake.configure(monkeypatch)
        yield fake


def two_servers(live_server, tmp_path: Path, **env: str):
    other = tmp_path / "host-b-logs"
    other.mkdir()
    a = live_server(ECHOOPS_INSTANCE="host-a", **env)
    b = live_server(ECHOOPS_INSTANCE="host-b", ECHOOPS_LOG_DIR=str(other), **env)
    return a, b


def raise_all(servers, total: int, *, during=None) -> dict[str, list]:
    """`CLIENTS` threads raise `total` distinct CRITICAL incidents, alternating between the
    servers; {"ok": [(msg, id)], "unavailable": [msg], "other": [(msg, status, body)]}."""
    out: dict[str, list] = {"ok": [], "unavailable": [], "other": []}
    lock = threading.Lock()
    started = threading.Barrier(CLIENTS + (1 if during else 0))

    def client(n: int) -> None:
        clients = [s.client() for s in servers]
        started.wait()
        for i in range(n, total, CLIENTS):
            msg = f"outage {i:04d}"
            c = clients[i % len(clients)]
            try:
                r = c.post(
                    "/api/incidents/raise",
                    json={"severity": "CRITICAL", "msg": msg, "source": "load", "fingerprint": f"load:{i}"},
                )
            except httpx.HTTPError as exc:  # pragma: no cover - reported by the assertions
                with lock:
                    out["other"].append((msg, 0, repr(exc)))
                continue
            with lock:
                if r.status_code == 200:
                    out["ok"].append((msg, r.json()["id"]))
                elif r.status_code == 503:
                    assert r.json()["error"] == "store_unavailable", r.text
                    out["unavailable"].append(msg)
                else:  # pragma: no cover - reported by the assertions
                    out["other"].append((msg, r.status_code, r.text))

    threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
    for t in threads:
        t.start()
    if during is not None:
        started.wait()
        during()
    for t in threads:
        t.join()
    return out


def delivered_once(tg: FakeTelegram, msgs: list[str], timeout: float) -> Counter:
    tg.wait_delivered(len(msgs), timeout=timeout)
    sent = Counter()
    for payload in tg.delivered:
        for msg in msgs:
            if msg in payload["text"]:
                sent[msg] += 1
    return sent


def test_two_servers_deliver_each_of_1000_pages_exactly_once(tg, live_server, tmp_path, settings):
    a, b = two_servers(live_server, tmp_path)
    result = raise_all([a, b], 1000)
    assert result["other"] == [] and result["unavailable"] == []
    msgs = sorted(m for m, _ in result["ok"])
    assert len(msgs) == 1000 and len({i for _, i in result["ok"]}) == 1000
    sent = delivered_once(tg, msgs, timeout=180)
    assert len(tg.delivered) == 1000, f"{len(tg.delivered)} of 1000 delivered"
    assert set(sent) == set(msgs) and set(sent.values()) == {1}  # every page once
    assert len(tg.requests) == 1000  # and no second attempt anywhere
    conn = store.connect(settings)
    row = conn.execute("SELECT count(*), sum(attempts) FROM pager_outbox WHERE state='ok'").fetchone()
    assert tuple(row) == (1000, 1000)
    # both hosts' delivery threads sent (SKIP LOCKED: side by side, never the same row); each
    # logs its sends in its own log dir
    sends = {name: _sends(s.log_dir) for name, s in (("host-a", a), ("host-b", b))}
    assert sends["host-a"] > 0 and sends["host-b"] > 0, sends
    assert sends["host-a"] + sends["host-b"] == 1000


def _sends(log_dir: Path) -> int:
    path = log_dir / "incidents.ndjson"
    if not path.exists():
        return 0
    return sum(1 for line in path.read_bytes().splitlines() if (r := orjson.loads(line))["event"] == "page" and r["ok"])


def test_a_database_restart_mid_run_loses_no_acknowledged_raise(tg, live_server, tmp_path, settings, postgres_server):
    a, b = two_servers(live_server, tmp_path, ECHOOPS_DB_TIMEOUT_MS="2000")

    def restart() -> None:
        import time

        time.sleep(0.5)  # mid-run
        postgres_server.restart(down_s=3.0)

    result = raise_all([a, b], 600, during=restart)
    assert result["other"] == []
    acknowledged = sorted(m for m, _ in result["ok"])
    assert result["unavailable"], "the database was down for 3 s: some raises must have been refused"
    assert len(acknowledged) + len(result["unavailable"]) == 600
    conn = store.connect(settings)
    stored = {r[0]: r[1] for r in conn.execute("SELECT msg, id FROM pager_incidents WHERE source='load'")}
    # every 200 was stored, under the id the client was given
    assert [(m, stored.get(m)) for m, _ in sorted(result["ok"])] == sorted(result["ok"])
    # and every stored raise is paged exactly once (a 503'd raise may have been stored: at most once too)
    sent = delivered_once(tg, sorted(stored), timeout=180)
    assert set(sent) == set(stored) and set(sent.values()) == {1}
