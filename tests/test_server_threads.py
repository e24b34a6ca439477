"""Slow clients (issue 12, item 6): threaded gunicorn workers with a request-read deadline.

Two connections that send headers and part of a body used to hold both sync workers until
the 30 s worker timeout. With `shim.worker.ReadDeadlineWorker` they hold one thread each, a
third client is answered at once, and the stalled requests are cut at
ECHOOPS_REQUEST_READ_TIMEOUT_S (408 for a late body, a closed connection for late headers).
"""

from __future__ import annotations

import socket
import time
from urllib.parse import urlsplit

import httpx
import pytest

from echoops.core import config, pager
from tests.conftest import TEST_KEY, alive, wait_for
from tests.fakes_telegram import FakeTelegram, hang

PARTIAL_RAISE = (
    b"POST /api/incidents/raise HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Dash-Key: " + TEST_KEY.encode() + b"\r\n"
    b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n"
    b'{"severity": "CRITICAL", "msg": "sl'
)


def _connect(url: str) -> socket.socket:
    parts = urlsplit(url)
    return socket.create_connection((parts.hostname, parts.port), timeout=30)


def _still_open(sock: socket.socket) -> bool:
    sock.setblocking(False)
    try:
        return sock.recv(1) != b""  # data would be a response: not expected either
    except BlockingIOError:
        return True  # nothing to read and not closed
    finally:
        sock.setblocking(True)


def _read_all(sock: socket.socket, timeout: float) -> bytes:
    sock.settimeout(timeout)
    out = b""
    while True:
        part = sock.recv(65536)
        if not part:
            return out
        out += part


def test_two_slow_clients_do_not_stall_a_third(live_server):
    """The issue's slow-client script: a third client's /healthz answers within 1 s."""
    srv = live_server(workers=2)
    slow = [_connect(srv.url) for _ in range(2)]
    try:
        for sock in slow:
            sock.sendall(PARTIAL_RAISE)
        time.sleep(0.3)  # let the workers pick the slow requests up (no assertion on this)
        r = httpx.get(srv.url + "/healthz", timeout=1.0)
        assert r.status_code == 200 and r.json()["ok"] is True
        authed = httpx.get(srv.url + "/api/ping", headers={"X-Dash-Key": TEST_KEY}, timeout=1.0)
        assert authed.json() == {"ok": True}
        assert all(_still_open(sock) for sock in slow), "the slow requests should still be waiting for their body"
    finally:
        for sock in slow:
            sock.close()


def test_a_stalled_body_is_answered_408_at_the_read_deadline(live_server):
    srv = live_server(workers=1, ECHOOPS_REQUEST_READ_TIMEOUT_S="1")
    sock = _connect(srv.url)
    try:
        sock.sendall(PARTIAL_RAISE)
        answer = _read_all(sock, timeout=15)  # a sync worker held it until the 30 s worker timeout
    finally:
        sock.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 "), answer  # and the server closed the connection (_read_all)
    assert body == b'{"error":"timeout","detail":"the request body did not arrive in time"}'
    assert httpx.get(srv.url + "/api/incidents/summarize", timeout=5).status_code == 401  # still serving
    assert not (srv.log_dir / "incidents.ndjson").exists()  # nothing was raised


def test_stalled_headers_are_closed_at_the_read_deadline(live_server):
    srv = live_server(workers=1, ECHOOPS_REQUEST_READ_TIMEOUT_S="1")
    sock = _connect(srv.url)
    try:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Trickle: a")
        assert _read_all(sock, timeout=15) == b""
    finally:
        sock.close()


def test_a_complete_body_sent_in_pieces_within_the_deadline_is_served(live_server):
    srv = live_server(workers=1, ECHOOPS_REQUEST_READ_TIMEOUT_S="5")
    body = b'{"severity": "INFO", "msg": "in pieces", "source": "slow-but-ok"}'
    head = (
        b"POST /api/incidents/raise HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Dash-Key: " + TEST_KEY.encode() + b"\r\n"
        b"Content-Type: application/json\r\nConnection: close\r\nContent-Length: "
        + str(len(body)).encode()
        + b"\r\n\r\n"
    )
    sock = _connect(srv.url)
    try:
        sock.sendall(head + body[:10])
        time.sleep(0.3)
        sock.sendall(body[10:])
        answer = _read_all(sock, timeout=15)
    finally:
        sock.close()
    assert answer.startswith(b"HTTP/1.1 200 "), answer


def _worker_pids(pid: int) -> set[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return {int(x) for x in f.read().split()}


@pytest.mark.slow
def test_pager_drain_runs_once_per_worker_process(live_server, monkeypatch):
    """POST_FORK starts one drain thread per worker: with threads, still one drainer each."""
    with FakeTelegram() as tg:
        tg.configure(monkeypatch)
        tg.script(*[hang()] * 8)  # every send hangs: each drainer holds one claimed row
        srv = live_server(workers=2)
        wait_for(lambda: len(_worker_pids(srv.proc.pid)) == 2, what="two gunicorn workers")
        workers = _worker_pids(srv.proc.pid)
        assert all(alive(p) for p in workers)
        with httpx.Client(base_url=srv.url, headers={"X-Dash-Key": TEST_KEY}, timeout=10) as c:
            for i in range(8):
                r = c.post("/api/incidents/raise", json={"severity": "CRITICAL", "msg": "m", "source": f"src{i}"})
                assert r.status_code == 200, r.text
        conn = pager.db(config.settings())

        def owners() -> list[str]:
            rows = conn.execute("SELECT claimed_by FROM pager_outbox WHERE claimed_by IS NOT NULL").fetchall()
            return [r[0] for r in rows]

        wait_for(lambda: len(owners()) == 2, timeout=15, what="both workers' drainers to claim a row")
        time.sleep(1.0)  # a drainer per request thread would claim more rows meanwhile
        held = owners()
        tg.release()
    pids = sorted(int(o.split(":")[1]) for o in held)
    assert len(held) == 2 and set(pids) == workers, (held, workers)
