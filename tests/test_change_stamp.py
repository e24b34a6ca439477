"""store.change_stamp and the per-request readers that trust it (issue 20).

The wrong-key throttle lookup (every admin request) and the SLO status snapshot check
(`GET /api/slo/status`) skip their queries while nothing was committed to the store since they
last read it. The property that matters: after a commit by any process, the next request reads
again, so a throttled client is refused and a new tick is served. Commits come from real
separate processes here; the `-wal` is made quiet by setting its mtime back (what two seconds
without a commit do) instead of waiting for it.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time

from echoops.core import auth, clock, config, slo, store
from echoops.core.slo import budget
from tests.test_slo import history


def quiet(settings) -> None:
    """The -wal as it is once no commit has touched it for a while (and past the millisecond in
    which a connection's last stamp stands for a new one)."""
    wal = str(settings.db_path) + "-wal"
    old = time.time() - store.QUIET_S - 5
    os.utime(wal, (old, old))
    time.sleep(2 * store.RECHECK_S)


def in_another_process(settings, code: str) -> None:
    env = {**os.environ, "ECHOOPS_LOG_DIR": str(settings.log_dir)}
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=60)


def counting(monkeypatch, needle: str) -> list[str]:
    """The statements containing `needle` this process runs from now on."""
    seen: list[str] = []
    real = store.Connection.execute

    def execute(self, sql, *args):
        if needle in sql:
            seen.append(sql)
        return real(self, sql, *args)

    monkeypatch.setattr(store.Connection, "execute", execute)
    return seen


def test_the_stamp_holds_while_nothing_is_committed_and_moves_with_any_commit(settings):
    conn = store.db(settings, auth.SCHEMA)
    auth.record_failure("192.0.2.1", s=settings)
    assert store.change_stamp(conn) is None  # a commit just now: not trusted yet
    quiet(settings)
    first = store.change_stamp(conn)
    assert first is not None and store.change_stamp(conn) == first
    conn.execute("SELECT count(*) FROM auth_failures").fetchone()  # reading moves nothing
    assert store.change_stamp(conn) == first
    in_another_process(
        settings,
        "from echoops.core import auth, config; auth.record_failure('192.0.2.9', s=config.settings())",
    )
    assert store.change_stamp(conn) != first
    quiet(settings)
    assert store.change_stamp(conn) not in (None, first)


def test_a_throttle_another_process_records_is_seen_by_the_next_request(settings, monkeypatch):
    auth.record_failure("192.0.2.50", s=settings)  # the table and the -wal exist
    quiet(settings)
    queries = counting(monkeypatch, "FROM auth_failures WHERE client")
    assert auth.retry_after("192.0.2.1", s=settings) == 0
    assert auth.retry_after("192.0.2.1", s=settings) == 0
    assert len(queries) == 1  # the second answer came from the cache
    limit = settings.auth_failures_per_min
    in_another_process(
        settings,
        "from echoops.core import auth, config\n"
        f"for _ in range({limit}): auth.record_failure('192.0.2.1', s=config.settings())",
    )
    assert auth.retry_after("192.0.2.1", s=settings) > 0  # read again: refused
    assert len(queries) == 2


def test_a_throttle_in_one_store_is_not_served_from_the_cache_for_another(settings, tmp_path):
    """One process, two log dirs: the cached throttle row of a client is its store's alone."""
    other = config.load_settings({"ECHOOPS_LOG_DIR": str(tmp_path / "other")})
    for _ in range(settings.auth_failures_per_min):
        auth.record_failure("192.0.2.1", s=settings)
    auth.record_failure("192.0.2.9", s=other)  # the other store's table and -wal exist
    quiet(settings)
    quiet(other)
    assert auth.retry_after("192.0.2.1", s=settings) > 0
    assert auth.retry_after("192.0.2.1", s=other) == 0
    assert auth.retry_after("192.0.2.1", s=settings) > 0


def test_the_status_snapshot_is_served_without_a_query_until_a_tick_or_the_flag_moves(settings, log_dir, monkeypatch):
    now = clock.now_s()
    history(log_dir, end=now, minutes=30, per_minute=10, err_pct=0)
    slo.tick(s=settings, now=now)
    first = slo.status_snapshot(s=settings)
    quiet(settings)
    keys = []
    real_key = budget._status_key
    monkeypatch.setattr(budget, "_status_key", lambda conn, path: keys.append(path) or real_key(conn, path))
    assert slo.status_snapshot(s=settings) is first  # read once more: the stamp is kept beside it
    assert slo.status_snapshot(s=settings) is first and slo.status_snapshot(s=settings) is first
    assert len(keys) == 1
    # an operator's flag by hand: the flag file is looked at on every request
    (log_dir / "deploy_gate.flag").write_text('{"reason": "by hand"}')
    by_hand = slo.status_snapshot(s=settings)
    assert by_hand is not first and by_hand.doc["gate"]["reason"] == "by hand"
    (log_dir / "deploy_gate.flag").unlink()
    assert slo.status_snapshot(s=settings).doc["gate"]["reason"] is None  # and gone again
    # a tick in another process (the scheduler's): the next request serves it
    quiet(settings)
    settled = slo.status_snapshot(s=settings)
    later = clock.iso(now + 120)
    in_another_process(settings, f"from echoops.core import slo, clock; slo.tick(now=clock.parse_ts('{later}'))")
    ticked = slo.status_snapshot(s=settings)
    assert ticked is not settled and ticked.doc["updated_at"] == later


def test_a_statement_on_the_connection_drops_its_remembered_stamp(settings):
    """One request asks for the stamp twice and gets the first answer back (no second stat),
    but never across its own write: its next reader must not trust a stamp from before it."""
    conn = store.db(settings, auth.SCHEMA)
    auth.record_failure("192.0.2.1", s=settings)
    quiet(settings)
    first = store.change_stamp(conn)
    assert first is not None and store.change_stamp(conn) == first
    auth.record_failure("192.0.2.1", s=settings)  # a commit on this very connection, at once
    assert store.change_stamp(conn) is None  # read afresh: the -wal was just written
    quiet(settings)
    assert store.change_stamp(conn) is not None
    # an autocommit executemany writes too (no transaction's COMMIT to drop the stamp)
    conn.executemany("DELETE FROM auth_failures WHERE client=?", [("192.0.2.1",)])
    assert store.change_stamp(conn) is None


def test_a_status_request_on_a_quiet_store_runs_no_sql_and_reads_each_thing_once(settings, log_dir, monkeypatch):
    """GET /api/slo/status through the whole WSGI app, as gunicorn calls it: with nothing
    committed since, no statement runs, the settings are read once, the store file is checked
    once (not once per reader) and the answer is the snapshot."""
    from shim.app import app

    key = "k" * 32
    monkeypatch.setenv("DASHBOARD_KEY", key)
    now = clock.now_s()
    history(log_dir, end=now, minutes=30, per_minute=10, err_pct=0)
    slo.tick(s=settings, now=now)

    def get() -> tuple[str, bytes]:
        environ = {
            "REQUEST_METHOD": "GET",
            "PATH_INFO": "/api/slo/status",
            "SERVER_NAME": "test",
            "SERVER_PORT": "80",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "REMOTE_ADDR": "127.0.0.1",
            "HTTP_X_DASH_KEY": key,
            "wsgi.input": io.BytesIO(),
            "wsgi.url_scheme": "http",
        }
        status = []
        body = b"".join(app(environ, lambda s, _h, _e=None: status.append(s)))
        return status[0], body

    assert get()[0].startswith("200")
    quiet(settings)
    get()  # reads the store once more and keeps the stamp beside what it read
    time.sleep(2 * store.RECHECK_S)
    statements = counting(monkeypatch, "")
    reads, checks = [], []
    real_settings, real_ident = config.settings, store._ident
    monkeypatch.setattr(config, "settings", lambda: reads.append(1) or real_settings())
    monkeypatch.setattr(store, "_ident", lambda path: checks.append(path) or real_ident(path))
    status, body = get()
    counted = (list(statements), len(reads), len(checks))
    assert status.startswith("200") and body == slo.status_snapshot(s=settings).body
    assert counted == ([], 1, 1)
