"""The PostgreSQL store backend (ECHOOPS_DB_URL): statement timeouts, TLS options passed through
the URL, the password redacted everywhere, a restarted server, no file in the log dir."""

from __future__ import annotations

import threading

import orjson
import pytest

from echoops.core import config, health, postgres, store
from echoops.core.config import load_settings
from tests.postgres_server import PASSWORD

pytestmark = pytest.mark.parametrize("db_backend", ["postgres"], indirect=True)

SCHEMA = store.Schema("pgtest", ("CREATE TABLE pg_t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)",))


def test_state_lives_in_the_database_not_the_log_dir(settings, log_dir):
    conn = store.db(settings, SCHEMA)
    with store.transaction(conn):
        conn.execute("INSERT INTO pg_t(id, v) VALUES (?, ?)", (1, "a"))
    assert conn.backend == "postgres" and store.shared(conn) and store.host(conn) == settings.instance
    assert store.conn_path(conn) == postgres.label(settings.db_url)
    assert PASSWORD not in store.conn_path(conn)
    assert list(log_dir.iterdir()) == []  # no echoops.db
    assert store.holds_data(settings)  # read-only commands read the database


def test_a_statement_past_the_timeout_is_cancelled_as_unavailable(monkeypatch, postgres_server):
    monkeypatch.setenv("ECHOOPS_DB_TIMEOUT_MS", "300")
    s = config.settings()
    conn = store.db(s, SCHEMA)
    blocker = postgres_server.admin_for(s.db_url)
    blocker.execute("BEGIN")
    blocker.execute("SELECT pg_advisory_xact_lock(%s)", (postgres.lock_key(store.STORE_LOCK),))
    try:
        with pytest.raises(Exception) as info, store.transaction(conn):  # waits for the store lock
            conn.execute("INSERT INTO pg_t(id, v) VALUES (2, 'b')")
        found = store.unavailable(info.value)
        assert found is not None and found.status == 503
        assert "canceling statement due to statement timeout" in found.detail
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    with store.transaction(conn):  # the lock is free again: the same connection works
        conn.execute("INSERT INTO pg_t(id, v) VALUES (2, 'b')")
    assert conn.execute("SELECT v FROM pg_t WHERE id=2").fetchone()[0] == "b"


def test_tls_options_in_the_url_reach_libpq(monkeypatch, settings):
    # the test server has no TLS: sslmode=require must fail there, saying so; sslmode=disable works
    monkeypatch.setenv("ECHOOPS_DB_TIMEOUT_MS", "1000")
    monkeypatch.setenv("ECHOOPS_DB_URL", settings.db_url + "?sslmode=require&connect_timeout=3")
    store.close_all()
    with pytest.raises(Exception) as info:
        store.connect(config.settings())
    found = store.unavailable(info.value)
    assert found is not None and "server does not support SSL" in found.detail
    assert PASSWORD not in found.detail
    monkeypatch.setenv("ECHOOPS_DB_URL", settings.db_url + "?sslmode=disable&application_name=echoops-test")
    conn = store.connect(config.settings())
    assert conn.execute("SELECT current_setting('application_name')").fetchone()[0] == "echoops-test"


def test_the_password_is_redacted_everywhere(cli, monkeypatch, settings):
    url = settings.db_url + "?sslmode=disable"
    monkeypatch.setenv("ECHOOPS_DB_URL", url)
    shown = orjson.loads(cli("config", "--json").stdout)
    text = orjson.dumps(shown).decode()
    assert PASSWORD not in text
    assert url.replace(PASSWORD, "***") in text
    human = cli("config")
    assert PASSWORD not in human.stdout and "***" in human.stdout
    # a wrong password: the error names the server and the failure, never a password
    wrong = url.replace(PASSWORD, "not-" + PASSWORD)
    monkeypatch.setenv("ECHOOPS_DB_URL", wrong)
    monkeypatch.setenv("ECHOOPS_DB_TIMEOUT_MS", "1000")
    store.close_all()
    failed = cli("slo", "tick")
    assert failed.exit_code == 1
    assert "password authentication failed" in failed.output
    assert PASSWORD not in failed.output and "not-" not in failed.output
    detail = health.probe(config.settings())  # what /healthz says in `detail`, with its 503
    assert detail is not None and "password authentication failed" in detail and PASSWORD not in detail
    assert load_settings({"ECHOOPS_DB_URL": wrong}).secrets()[-1] == "not-" + PASSWORD


@pytest.mark.slow
def test_a_restarted_server_is_used_again_and_a_down_one_is_unavailable(monkeypatch, postgres_server):
    # the pool reconnects in the background with a back-off of about a second: the wait for a
    # connection (ECHOOPS_DB_TIMEOUT_MS, 15 s by default) must outlast it
    monkeypatch.setenv("ECHOOPS_DB_TIMEOUT_MS", "5000")
    s = config.settings()
    conn = store.db(s, SCHEMA)
    with store.transaction(conn):
        conn.execute("INSERT INTO pg_t(id, v) VALUES (1, 'kept')")
    postgres_server.restart()
    # the pooled connections died with the server: they are replaced before use
    assert conn.execute("SELECT v FROM pg_t WHERE id=1").fetchone()[0] == "kept"
    with store.transaction(conn):
        conn.execute("INSERT INTO pg_t(id, v) VALUES (2, 'after restart')")
    postgres_server.stop()
    try:
        with pytest.raises(Exception) as info, store.transaction(conn):
            conn.execute("INSERT INTO pg_t(id, v) VALUES (3, 'lost')")
        found = store.unavailable(info.value)
        assert found is not None and found.status == 503
        assert "Connection refused" in found.detail or "connection refused" in found.detail.lower()
    finally:
        postgres_server.start()
    rows = conn.execute("SELECT id, v FROM pg_t ORDER BY id").fetchall()
    assert [tuple(r) for r in rows] == [(1, "kept"), (2, "after restart")]


def test_threads_share_the_pool_and_transactions_serialise(settings):
    conn = store.db(settings, SCHEMA)
    conn.execute("INSERT INTO pg_t(id, v) VALUES (0, '0')")
    errors: list[BaseException] = []

    def bump() -> None:
        try:
            c = store.db(settings, SCHEMA)
            for _ in range(50):
                with store.transaction(c):  # read-check-write, as SQLite's write lock allows
                    n = int(c.execute("SELECT v FROM pg_t WHERE id=0").fetchone()[0])
                    c.execute("UPDATE pg_t SET v=? WHERE id=0", (str(n + 1),))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            store.close_all()

    threads = [threading.Thread(target=bump) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert conn.execute("SELECT v FROM pg_t WHERE id=0").fetchone()[0] == "200"


def test_a_shown_url_keeps_everything_but_the_passwords():
    from echoops.core import parsers

    url = "postgresql://ops:p%40ss@db.internal:5432/echoops?sslmode=verify-full&sslrootcert=/etc/ca.pem&password=q"
    assert parsers.shown_db_url(url) == (
        "postgresql://ops:***@db.internal:5432/echoops?sslmode=verify-full&sslrootcert=/etc/ca.pem&password=***"
    )
    assert parsers.db_url_passwords(url) == ["p%40ss", "p@ss", "q"]
    assert parsers.shown_db_url("postgresql://db/echoops") == "postgresql://db/echoops"


# Four instances start at once on an empty database; the migration takes a while (pg_sleep),
# so without the advisory lock the others would run it too (and fail on "already exists").
STARTER = r"""
import os, sys, time
from echoops.core import store
from echoops.core.config import load_settings

go = sys.argv[1]
SLOW = store.Schema("slowfeat", (
    "CREATE TABLE slow_log (step TEXT NOT NULL, pid INTEGER NOT NULL);"
    "SELECT pg_sleep(0.4);"
    "INSERT INTO slow_log VALUES ('v1', " + str(os.getpid()) + ")",
))
s = load_settings({"ECHOOPS_LOG_DIR": sys.argv[2], "ECHOOPS_DB_URL": os.environ["ECHOOPS_DB_URL"]})
open(f"{go}.{os.getpid()}", "w").close()
while not os.path.exists(go):
    time.sleep(0.001)
store.db(s, SLOW)
print("ok")
"""


@pytest.mark.slow
def test_instances_starting_together_migrate_once_under_the_advisory_lock(tmp_path, log_dir, settings):
    import subprocess
    import sys
    import time

    go = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", STARTER, str(go), str(log_dir)], stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for _ in range(4)
    ]
    deadline = time.monotonic() + 60
    while len(list(tmp_path.glob("go.*"))) < 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    go.touch()
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0 and out == b"ok\n", err.decode()
    conn = store.connect(settings)
    assert [r[0] for r in conn.execute("SELECT step FROM slow_log")] == ["v1"]  # one process ran it
    assert conn.execute("SELECT version FROM schema_versions WHERE feature='slowfeat'").fetchone()[0] == 1


def test_executemany_alone_is_one_transaction_and_a_dropped_session_is_replaced(settings, postgres_server):
    conn = store.db(settings, SCHEMA)
    conn.executemany("INSERT INTO pg_t(id, v) VALUES (?, ?)", [(1, "a"), (2, "b")])
    assert conn.executemany("INSERT INTO pg_t(id, v) VALUES (?, ?)", []).rowcount == 0
    with pytest.raises(Exception) as info:  # the third row collides: none of the three is kept
        conn.executemany("INSERT INTO pg_t(id, v) VALUES (?, ?)", [(3, "c"), (4, "d"), (1, "again")])
    assert store.unavailable(info.value) is None  # a query error, not an unavailable store
    assert [r[0] for r in conn.execute("SELECT id FROM pg_t ORDER BY id")] == [1, 2]
    # a session the server drops mid-transaction (an admin, a failover): the transaction fails as
    # unavailable, nothing of it is kept, and the next transaction gets a working connection
    admin = postgres_server.admin_for(settings.db_url)
    try:
        with pytest.raises(Exception) as info, store.transaction(conn):
            conn.execute("INSERT INTO pg_t(id, v) VALUES (5, 'e')")
            pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
            conn.execute("INSERT INTO pg_t(id, v) VALUES (6, 'f')")
    finally:
        admin.close()
    assert store.unavailable(info.value) is not None and not conn.in_transaction
    with store.transaction(conn):
        conn.execute("INSERT INTO pg_t(id, v) VALUES (7, 'g')")
    assert [r[0] for r in conn.execute("SELECT id FROM pg_t ORDER BY id")] == [1, 2, 7]
    # a thread's connection closed mid-transaction gives its pooled session back, rolled back
    store.begin(conn)
    conn.execute("INSERT INTO pg_t(id, v) VALUES (8, 'h')")
    store.close_all()
    assert [r[0] for r in store.db(settings, SCHEMA).execute("SELECT id FROM pg_t ORDER BY id")] == [1, 2, 7]
