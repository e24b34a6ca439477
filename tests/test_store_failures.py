"""The store lost under a running server (issue 12, item 5): a deleted `echoops.db`, a log dir
that is briefly read-only, a full file system. Never a 200 for data that was not stored, never
a 500: a 503 `store_unavailable` naming the cause, and the server recovers by itself.

The read-only and full-disk cases use real mounts (tests run as root here, and root ignores
file modes, so a read-only *bind mount* of the log dir is what makes it read-only; a small
tmpfs is what fills up). Without permission to mount they skip, except in CI where they fail.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import os
import sqlite3
import subprocess
from pathlib import Path

import httpx
import pytest

from echoops.core import config, health, pager, store
from tests.conftest import TEST_KEY, stop_server

HEADERS = {"X-Dash-Key": TEST_KEY}


def _raise(url: str, n: int) -> httpx.Response:
    # a fresh connection each time, so requests spread over the workers and their threads
    body = {"severity": "WARNING", "msg": f"disk check {n}", "source": "store-test"}
    return httpx.post(url + "/api/incidents/raise", json=body, headers=HEADERS, timeout=30)


def _stored_ids(db: Path) -> set[int]:
    conn = sqlite3.connect(db)
    try:
        return {row[0] for row in conn.execute("SELECT id FROM pager_incidents")}
    finally:
        conn.close()


def _assert_store_unavailable(r: httpx.Response, cause: str) -> None:
    assert r.status_code == 503, r.text
    body = r.json()
    assert body["error"] == "store_unavailable"
    assert body["detail"].startswith("the store is unavailable: ") and cause in body["detail"], body


# --- deleted under a running server ------------------------------------------------------------------


@pytest.mark.parametrize("sidecars", [False, True], ids=["db-only", "db-wal-shm"])
def test_db_deleted_under_a_running_server_keeps_every_acknowledged_raise(live_server, log_dir, sidecars):
    srv = live_server(workers=2)
    before = [_raise(srv.url, i) for i in range(4)]
    assert [r.status_code for r in before] == [200] * 4
    db = log_dir / "echoops.db"
    for suffix in ("", "-wal", "-shm") if sidecars else ("",):
        Path(f"{db}{suffix}").unlink(missing_ok=True)

    after = [_raise(srv.url, 100 + i) for i in range(8)]
    health = httpx.get(srv.url + "/healthz", timeout=30)
    stop_server(srv.proc)  # what the issue did next: restart

    acknowledged = {r.json()["id"] for r in after if r.status_code == 200}
    assert all(r.status_code in (200, 503) for r in after), [r.text for r in after]
    assert acknowledged, "the server never reopened the database"
    assert acknowledged <= _stored_ids(db), "a raise answered 200 but is not in echoops.db"
    assert health.status_code == 200 and health.json()["db_ok"] is True


def test_connection_reopens_a_deleted_or_replaced_file(settings):
    first = store.connect(settings)
    first.execute("CREATE TABLE t (x INTEGER)")
    settings.db_path.unlink()
    second = store.connect(settings)
    assert second is not first
    second.execute("CREATE TABLE t (x INTEGER)")  # a new, empty database
    replacement = settings.db_path.with_name("restored.db")
    sqlite3.connect(replacement).execute("CREATE TABLE restored (y INTEGER)").connection.close()
    os.replace(replacement, settings.db_path)
    third = store.connect(settings)
    assert third is not second
    tables = {r[0] for r in third.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    # the replacement's own table, the store's meta tables, and nothing of the old file's WAL
    assert tables == {"restored", "schema_versions", "cursors"}


def test_a_write_whose_file_vanished_before_commit_fails_and_is_not_acknowledged(settings):
    conn = store.connect(settings)
    conn.execute("CREATE TABLE t (x INTEGER)")
    with pytest.raises(store.StoreUnavailable) as info, store.transaction(conn):
        conn.execute("INSERT INTO t VALUES (1)")
        settings.db_path.unlink()
    assert info.value.status == 503 and info.value.code == "store_unavailable"
    assert "was deleted or replaced during the write" in info.value.detail
    assert not conn.in_transaction
    assert store.connect(settings) is not conn


def test_a_failed_connection_is_reopened_on_next_use(settings):
    conn = store.connect(settings)
    conn.execute("PRAGMA query_only=ON")  # stands in for a connection opened read-only
    with pytest.raises(sqlite3.OperationalError) as info:
        conn.execute("CREATE TABLE t (x INTEGER)")
    found = store.unavailable(info.value)
    assert found is not None and found.detail == (
        "the store is unavailable: attempt to write a readonly database (SQLITE_READONLY)"
    )
    again = store.connect(settings)
    assert again is not conn
    again.execute("CREATE TABLE t (x INTEGER)")


def test_unavailable_classifies_store_failures_only():
    assert store.unavailable(sqlite3.OperationalError("no such table: x")) is None
    assert store.unavailable(ValueError("x")) is None
    assert store.unavailable(OSError(errno.ENOENT, "No such file or directory", "/x/y")) is None
    full = store.unavailable(OSError(errno.ENOSPC, "No space left on device", "/logs/incidents.ndjson"))
    assert full.detail == "the store is unavailable: No space left on device (incidents.ndjson)"


def test_probe_reports_why(settings, tmp_path):
    assert health.probe(settings) is None
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    problem = health.probe(config.load_settings({"ECHOOPS_LOG_DIR": str(not_a_dir)}))
    assert problem is not None and problem.startswith("the store")


def test_probe_writes_at_most_once_per_max_age_until_a_failure(settings):
    def probed_at() -> float:
        return store.connect(settings).execute("SELECT probed_at FROM health_probe").fetchone()[0]

    assert health.probe(settings, max_age_s=60) is None
    first = probed_at()
    assert health.probe(settings, max_age_s=60) is None
    assert probed_at() == first  # reused: no second write
    assert health.probe(settings) is None
    second = probed_at()
    assert second > first  # max_age_s=0: always a write
    store.note_failure()  # a store failure anywhere in the process
    assert health.probe(settings, max_age_s=60) is None
    assert probed_at() > second


def test_a_healthy_report_stands_for_max_age_until_a_failure_or_the_lease_it_names_ends(settings, monkeypatch):
    """/healthz under a flood of probes: the lease and the log dir are read once per max_age_s,
    not per request; a store failure, the end of the named lease or a full disk (the real
    mount test below) make the next probe look again."""
    from echoops.core import scheduler
    from echoops.core.scheduler import lease

    now = 1_800_000_000.0
    holder = dataclasses.replace(settings, instance="host-a")
    lease.Lease(conn=store.db(holder, scheduler.SCHEMA), instance="host-a", lease_s=30).hold(now)
    reads = []
    real = scheduler.leadership
    monkeypatch.setattr(scheduler, "leadership", lambda **kw: reads.append(kw) or real(**kw))
    first = health.report(settings, max_age_s=60, now=now)
    assert first["ok"] is True and first["leader"]["instance"] == "host-a"
    assert health.report(settings, max_age_s=60, now=now + 5) == first
    assert len(reads) == 1  # the second answer came from the first
    assert health.report(settings, now=now + 5) == first and len(reads) == 2  # max_age_s=0: always read
    store.note_failure()
    assert health.report(settings, max_age_s=60, now=now + 6) == first and len(reads) == 3
    ended = health.report(settings, max_age_s=60, now=now + 31)  # host-a's lease ran out at +30
    assert len(reads) == 4 and ended["leader"] is None and ended["is_leader"] is False
    other = dataclasses.replace(settings, instance="web-2")  # another instance's body is its own
    assert health.report(other, max_age_s=60, now=now + 31)["instance"] == "web-2" and len(reads) == 5


# --- real mounts: a read-only log dir, a full file system ---------------------------------------------


def _mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True, text=True)


def _umount(path: Path) -> None:
    # lazy: a server still holding files there keeps them; new opens see the directory beneath
    subprocess.run(["umount", "--lazy", str(path)], check=True, capture_output=True, text=True)


@pytest.fixture
def can_mount(tmp_path):
    probe = tmp_path / "mount-probe"
    probe.mkdir()
    try:
        _mount("-t", "tmpfs", "-o", "size=64k", "tmpfs", str(probe))
    except (OSError, subprocess.CalledProcessError) as exc:
        reason = f"needs permission to mount (root with CAP_SYS_ADMIN): {getattr(exc, 'stderr', exc)}"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    _umount(probe)


@contextlib.contextmanager
def read_only(path: Path):
    """`path` read-only for everyone, root included: a read-only bind mount over itself."""
    _mount("--bind", str(path), str(path))
    try:
        _mount("-o", "remount,bind,ro", str(path))
        yield
    finally:
        _umount(path)


def test_db_briefly_read_only_answers_503_then_recovers(can_mount, live_server, log_dir):
    pager.raise_incident("WARNING", "before", "store-test")  # the database exists, then is closed
    store.close_all()
    with read_only(log_dir / "echoops.db"):  # what `chmod 444 echoops.db` does to a non-root server
        srv = live_server(workers=1)  # every connection it opens now is read-only (SQLite falls back)
        during = [_raise(srv.url, i) for i in range(3)]
        health = httpx.get(srv.url + "/healthz", timeout=30)
    for r in during:
        _assert_store_unavailable(r, "attempt to write a readonly database")
    assert health.status_code == 503
    assert health.json()["ok"] is False and health.json()["db_ok"] is False
    assert "readonly" in health.json()["detail"]

    after = [_raise(srv.url, 10 + i) for i in range(6)]  # the same worker, the mount is gone
    assert [r.status_code for r in after] == [200] * 6, [r.text for r in after]
    assert httpx.get(srv.url + "/healthz", timeout=30).status_code == 200
    stop_server(srv.proc)
    assert {r.json()["id"] for r in after} <= _stored_ids(log_dir / "echoops.db")


def _fill(directory: Path) -> Path:
    filler = directory / "filler.bin"
    # unbuffered: a write the file system refuses leaves nothing behind for close() to retry
    with open(filler, "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 65536)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    try:  # the last partial block too
        with open(filler, "ab") as f:
            while True:
                f.write(b"\0")
                f.flush()
    except OSError:
        pass
    return filler


def test_log_dir_read_only_is_503_not_500(can_mount, live_server, log_dir):
    pager.raise_incident("WARNING", "before", "store-test")
    store.close_all()
    with read_only(log_dir):
        srv = live_server(workers=1)
        r = _raise(srv.url, 1)
        health = httpx.get(srv.url + "/healthz", timeout=30)
    _assert_store_unavailable(r, "(SQLITE_")  # no -shm can be made: "unable to open database file"
    assert health.status_code == 503 and health.json()["log_dir_writable"] is False
    assert _raise(srv.url, 2).status_code == 200


def test_a_reused_healthy_report_still_sees_a_disk_that_filled_since(can_mount, tmp_path):
    """/healthz's 1 s reuse of a healthy report never hides a full disk (a real 4 MB tmpfs)."""
    logs = tmp_path / "small"
    logs.mkdir()
    _mount("-t", "tmpfs", "-o", "size=4m", "tmpfs", str(logs))
    try:
        s = config.load_settings({"ECHOOPS_LOG_DIR": str(logs)})
        assert health.report(s, max_age_s=60)["ok"] is True
        filler = _fill(logs)
        full = health.report(s, max_age_s=60)
        assert full["ok"] is False and "No space left on device" in full["detail"]
        filler.unlink()
        assert health.report(s, max_age_s=60)["ok"] is True
    finally:
        store.close_all()
        _umount(logs)


def test_full_file_system_answers_503_never_500_and_recovers(can_mount, live_server, log_dir):
    _mount("-t", "tmpfs", "-o", "size=4m", "tmpfs", str(log_dir))
    try:
        srv = live_server(workers=2)
        assert [_raise(srv.url, i).status_code for i in range(3)] == [200] * 3
        filler = _fill(log_dir)

        answers = []
        for i in range(200):  # the WAL and the event log run out of room within a few writes
            answers.append(_raise(srv.url, 100 + i))
            if answers[-1].status_code != 200:
                break
        health = httpx.get(srv.url + "/healthz", timeout=30)
        assert answers[-1].status_code == 503, "raises kept succeeding on a full file system"
        for r in answers[:-1]:
            assert r.status_code == 200, r.text
        _assert_store_unavailable(answers[-1], "full")  # "database or disk is full" / "No space left"
        assert health.status_code == 503 and health.json()["db_ok"] is False
        assert "No space left on device" in health.json()["detail"] or "full" in health.json()["detail"]

        filler.unlink()
        recovered = [_raise(srv.url, 1000 + i) for i in range(4)]
        assert [r.status_code for r in recovered] == [200] * 4, [r.text for r in recovered]
        assert httpx.get(srv.url + "/healthz", timeout=30).status_code == 200
        stop_server(srv.proc)
        stored = _stored_ids(log_dir / "echoops.db")
        acknowledged = {r.json()["id"] for r in answers + recovered if r.status_code == 200}
        assert acknowledged <= stored
    finally:
        _umount(log_dir)


def test_cli_maps_a_read_only_store_to_exit_1(can_mount, cli, log_dir):
    pager.raise_incident("WARNING", "before", "store-test")
    store.close_all()
    with read_only(log_dir / "echoops.db"):
        result = cli("page", "raise", "--severity", "warning", "--msg", "m", "--source", "cli-test")
        store.close_all()
    assert result.exit_code == 1
    assert result.stderr == (
        "Error: the store is unavailable: attempt to write a readonly database (SQLITE_READONLY)\n"
    )
    assert cli("page", "raise", "--severity", "warning", "--msg", "m", "--source", "cli-test").exit_code == 0
