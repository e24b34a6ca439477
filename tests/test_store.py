"""core/store.py: WAL, schema versions, concurrent writers in separate processes."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from echoops.core import store
from echoops.core.config import load_settings
from echoops.core.errors import EchoopsError

ROOT = Path(__file__).resolve().parent.parent

# A worker process: waits for the go file, opens the (possibly fresh) store with a schema whose
# migrations are NOT idempotent (a second run would fail), then writes one row per transaction.
WORKER = r"""
import os, sys, time
from echoops.core import store
from echoops.core.config import load_settings

log_dir, tag, n, go = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
SCHEMA = store.Schema("loadtest", (
    "CREATE TABLE rows (tag TEXT NOT NULL, i INTEGER NOT NULL, PRIMARY KEY (tag, i));"
    "CREATE TABLE migration_log (step TEXT NOT NULL); INSERT INTO migration_log VALUES ('v1')",
    "ALTER TABLE rows ADD COLUMN pid INTEGER; INSERT INTO migration_log VALUES ('v2')",
))
# the backend of the test (ECHOOPS_DB_URL: a PostgreSQL database shared by the workers)
s = load_settings({"ECHOOPS_LOG_DIR": log_dir, "ECHOOPS_DB_URL": os.environ.get("ECHOOPS_DB_URL", "")})
open(f"{go}.{tag}.ready", "w").close()
while not os.path.exists(go):
    time.sleep(0.001)
conn = store.db(s, SCHEMA)
for i in range(n):
    with store.transaction(conn):
        conn.execute("INSERT INTO rows (tag, i, pid) VALUES (?, ?, ?)", (tag, i, os.getpid()))
print("done", tag)
"""


def run_workers(log_dir: Path, tags: list[str], n: int) -> list[subprocess.CompletedProcess]:
    go = log_dir.parent / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(log_dir), tag, str(n), str(go)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for tag in tags
    ]
    # start them all at once: wait until every interpreter has imported echoops and is polling
    deadline = time.monotonic() + 60
    while not all(Path(f"{go}.{tag}.ready").exists() for tag in tags) and time.monotonic() < deadline:
        time.sleep(0.01)
    go.touch()
    out = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=120)
        out.append(subprocess.CompletedProcess(p.args, p.returncode, stdout, stderr))
    return out


@pytest.mark.backends
def test_two_processes_write_concurrently_without_losing_rows(log_dir, settings):
    results = run_workers(log_dir, ["a", "b"], 2000)
    for r in results:
        assert r.returncode == 0, r.stderr
        assert "locked" not in r.stderr
        assert r.stderr == ""
    conn = store.connect(settings)
    rows = conn.execute("SELECT tag, count(*), min(i), max(i), count(DISTINCT pid) FROM rows GROUP BY tag").fetchall()
    assert [tuple(r) for r in rows] == [("a", 2000, 0, 1999, 1), ("b", 2000, 0, 1999, 1)]
    # the fresh db was migrated by two processes at once: each step ran exactly once
    assert [r[0] for r in conn.execute("SELECT step FROM migration_log")] == ["v1", "v2"]
    assert conn.execute("SELECT version FROM schema_versions WHERE feature='loadtest'").fetchone()[0] == 2


@pytest.mark.backends
def test_migrations_run_once_when_many_processes_open_a_fresh_db(log_dir, settings, db_backend):
    # PostgreSQL: four instances starting together on an empty database; the store's own
    # tables and each feature step are applied under the store's advisory lock, once
    results = run_workers(log_dir, ["p1", "p2", "p3", "p4"], 1)
    for r in results:
        assert r.returncode == 0, r.stderr
        assert r.stderr == ""
    conn = store.connect(settings)
    assert [r[0] for r in conn.execute("SELECT step FROM migration_log")] == ["v1", "v2"]
    assert conn.execute("SELECT count(*) FROM rows").fetchone()[0] == 4
    if db_backend == "sqlite":
        assert conn.execute("PRAGMA user_version").fetchone()[0] == store.META_VERSION
    else:
        assert not settings.db_path.exists()  # nothing in the log dir: the state is in the database
        row = conn.execute("SELECT version FROM schema_versions WHERE feature='_store'").fetchone()
        assert row[0] == store.META_VERSION


def test_pragmas(settings):
    conn = store.connect(settings)
    assert settings.db_path.exists()
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA user_version").fetchone()[0] == store.META_VERSION == 3
    assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == store.BUSY_TIMEOUT_MS
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    # and a second, independent connection sees WAL as the file's mode
    other = sqlite3.connect(settings.db_path)
    assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    other.close()


def test_connection_is_reused_per_thread(settings):
    conn = store.connect(settings)
    assert store.connect(settings) is conn
    assert store.db(settings) is conn
    seen = []
    t = threading.Thread(target=lambda: (seen.append(store.connect(settings)), store.close_all()))
    t.start()
    t.join()
    assert seen and seen[0] is not conn


def test_relative_log_dir_follows_the_working_directory(tmp_path, monkeypatch):
    s = load_settings({"ECHOOPS_LOG_DIR": "logs"})
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    monkeypatch.chdir(tmp_path / "a")
    a = store.connect(s)
    assert store.connect(s) is a
    monkeypatch.chdir(tmp_path / "b")
    b = store.connect(s)
    assert b is not a
    assert (tmp_path / "a" / "logs" / "echoops.db").exists() and (tmp_path / "b" / "logs" / "echoops.db").exists()
    store.close_all()
    assert store.connect(s) is not b


@pytest.mark.backends
def test_schema_ensure_and_versions(settings):
    v1 = store.Schema("feat", ("CREATE TABLE feat_a (x INTEGER)",))
    conn = store.db(settings, v1)
    conn.execute("INSERT INTO feat_a VALUES (1)")
    store.close_all()
    v2 = store.Schema("feat", (v1.migrations[0], "CREATE TABLE feat_b (y TEXT); INSERT INTO feat_b VALUES ('m')"))
    conn = store.db(settings, v2)
    assert conn.execute("SELECT x FROM feat_a").fetchone()[0] == 1
    assert conn.execute("SELECT y FROM feat_b").fetchone()[0] == "m"
    assert conn.execute("SELECT version FROM schema_versions WHERE feature='feat'").fetchone()[0] == 2
    store.ensure(conn, v2)  # once per connection: no second run
    assert conn.execute("SELECT count(*) FROM feat_b").fetchone()[0] == 1


@pytest.mark.backends
def test_feature_schema_newer_than_code_errors(settings):
    v2 = store.Schema("feat", ("CREATE TABLE feat_a (x INTEGER)", "CREATE TABLE feat_b (y INTEGER)"))
    store.db(settings, v2)
    store.close_all()
    v1 = store.Schema("feat", v2.migrations[:1])
    with pytest.raises(store.SchemaTooNew) as info:
        store.db(settings, v1)
    assert isinstance(info.value, EchoopsError)
    assert "feat schema v2" in str(info.value) and "newer than this echoops (v1)" in str(info.value)


def test_store_schema_newer_than_code_errors(settings):
    conn = store.connect(settings)
    conn.execute("PRAGMA user_version=99")
    store.close_all()
    with pytest.raises(store.SchemaTooNew, match="store schema v99; this echoops knows v3"):
        store.connect(settings)


def test_meta_upgrade_from_v1_adds_cursor_head_and_host(log_dir, settings):
    db = sqlite3.connect(log_dir / "echoops.db", isolation_level=None)
    for stmt in store._statements(store._META[0]):
        db.execute(stmt)
    db.execute("INSERT INTO cursors (consumer, source, inode, offset, size, updated_at) VALUES ('c', 's', 1, 2, 3, 4)")
    db.execute("PRAGMA user_version=1")
    db.close()
    conn = store.connect(settings)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 3
    # v3 keys cursors by host too: the SQLite store's own cursors keep host '' (read on, not again)
    assert tuple(conn.execute("SELECT host, consumer, source, offset, head FROM cursors").fetchone()) == (
        "",
        "c",
        "s",
        2,
        b"",
    )


@pytest.mark.backends
def test_transaction_commits_rolls_back_and_nests(settings):
    conn = store.connect(settings)
    conn.execute("CREATE TABLE t (x INTEGER)")
    with store.transaction(conn):
        conn.execute("INSERT INTO t VALUES (1)")
        with store.transaction(conn):  # joins the outer one
            conn.execute("INSERT INTO t VALUES (2)")
    with pytest.raises(ZeroDivisionError), store.transaction(conn):
        conn.execute("INSERT INTO t VALUES (3)")
        with store.transaction(conn):
            conn.execute("INSERT INTO t VALUES (4)")
        1 / 0  # noqa: B018
    assert [r[0] for r in conn.execute("SELECT x FROM t ORDER BY x")] == [1, 2]
    assert not conn.in_transaction


def test_writer_waits_for_another_writer_instead_of_failing(settings):
    conn = store.connect(settings)
    conn.execute("CREATE TABLE t (x INTEGER)")
    other = sqlite3.connect(settings.db_path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    other.execute("INSERT INTO t VALUES (1)")
    threading.Timer(0.3, lambda: other.execute("COMMIT")).start()
    started = time.monotonic()
    with store.transaction(conn):  # blocks on the busy timeout, then gets the lock
        conn.execute("INSERT INTO t VALUES (2)")
    assert time.monotonic() - started >= 0.25
    assert [r[0] for r in conn.execute("SELECT x FROM t ORDER BY x")] == [1, 2]
    other.close()


def test_health(settings, tmp_path):
    from echoops.core import health

    assert health.healthy(settings) is True
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    assert health.healthy(load_settings({"ECHOOPS_LOG_DIR": str(not_a_dir)})) is False


def test_many_processes_opening_a_fresh_db_at_once_all_get_in(tmp_path):
    # `echoops up` starts gunicorn workers and the scheduler's jobs together; the first
    # opener switches the file to WAL, which SQLite refuses "locked" without waiting.
    for round_ in range(6):
        log_dir = tmp_path / f"round{round_}" / "logs"
        log_dir.parent.mkdir()
        results = run_workers(log_dir, [f"p{i}" for i in range(8)], 50)
        assert [r.returncode for r in results] == [0] * 8, [r.stderr for r in results if r.returncode]
        conn = sqlite3.connect(log_dir / "echoops.db")
        assert conn.execute("SELECT count(*) FROM rows").fetchone()[0] == 400
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        conn.close()


def test_queued_transactions_take_turns_and_work_without_their_lock_file(settings):
    import threading

    conn = store.connect(settings)
    conn.execute("CREATE TABLE IF NOT EXISTS turns(n INTEGER)")
    entered = threading.Event()
    release = threading.Event()
    order: list[str] = []

    def holder() -> None:
        c = store.connect(settings)
        with store.queued_transaction(c, "test"):
            order.append("holder in")
            entered.set()
            release.wait(10)
            order.append("holder out")
        store.close_all()

    t = threading.Thread(target=holder)
    t.start()
    assert entered.wait(10)

    def queued() -> None:
        with store.queued_transaction(store.connect(settings), "test"):
            order.append("waiter in")
        store.close_all()

    waiter = threading.Thread(target=queued)
    waiter.start()
    waiter.join(0.3)
    assert order == ["holder in"]  # queued on the lock file, not yet in
    release.set()
    t.join(10)
    waiter.join(10)
    assert order == ["holder in", "holder out", "waiter in"]
    assert (settings.log_dir / "echoops.db.test-lock").exists()
    with store.queued_transaction(conn, "no/such/dir"):  # no lock file: the database's lock alone
        conn.execute("INSERT INTO turns VALUES (1)")
    assert conn.execute("SELECT COUNT(*) FROM turns").fetchone()[0] == 1
