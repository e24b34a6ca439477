"""core/ndjson.py: the append helper and the incremental reader (cursor in the store)."""

from __future__ import annotations

import multiprocessing
import os
import re
import shutil
import tempfile
import threading
from collections import Counter
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from echoops.core import clock, ndjson, store
from echoops.core.config import load_settings

# the store and feature tests run on both backends (SQLite; PostgreSQL: tests/postgres_server.py)
pytestmark = pytest.mark.backends

ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


@pytest.fixture
def conn(settings):
    return store.db(settings)


def read(conn, path, consumer="test", chunk=ndjson.CHUNK):
    """One consumer tick: transaction, Reader, iterate, commit. Returns (objects, reader)."""
    with store.transaction(conn):
        reader = ndjson.Reader(conn, path, consumer, chunk=chunk)
        objs = list(reader)
        reader.commit(now=1_800_000_000)
    return objs, reader


def write(path: Path, data: bytes) -> None:
    with open(path, "ab") as fh:
        fh.write(data)


def line(i: int, **extra) -> bytes:
    return orjson.dumps({"i": i, **extra}) + b"\n"


def ids(objs) -> list[int]:
    return [o["i"] for o in objs]


def tick(conn, path) -> tuple[list[int], list[str]]:
    """One read: (ids of the objects, what the cursor noticed: "rotated", "truncated", ...)."""
    objs, reader = read(conn, path)
    return ids(objs), reader.events


# --- append ------------------------------------------------------------------------------


def test_append_writes_one_object_per_line_with_utc_ts_and_event(log_dir):
    path = log_dir / "sub" / "events.ndjson"  # parent dir created on demand
    rec = ndjson.append(path, "slo_tick", now=1_764_211_917.123456, p95=812.5, tags={"a"})
    assert rec == {"ts": "2025-11-27T02:51:57.123Z", "event": "slo_tick", "p95": 812.5, "tags": {"a"}}
    ndjson.append(path, "page", sev="CRITICAL", channel="telegram")
    lines = path.read_bytes().split(b"\n")
    assert lines[-1] == b""
    first, second = (orjson.loads(x) for x in lines[:-1])
    assert first == {"ts": "2025-11-27T02:51:57.123Z", "event": "slo_tick", "p95": 812.5, "tags": ["a"]}
    assert second["event"] == "page" and second["sev"] == "CRITICAL"
    assert ISO_Z.match(second["ts"])
    assert abs(clock.parse_ts(second["ts"]) - clock.now_s()) < 60


def _append_many(path: str, tag: str, n: int, size: int) -> None:
    for i in range(n):
        ndjson.append(Path(path), "load", who=tag, i=i, pad="x" * size)


def _append_threads(path: str, tag: str, n: int, size: int) -> None:
    threads = [threading.Thread(target=_append_many, args=(path, f"{tag}-t{t}", n, size)) for t in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def test_concurrent_appends_from_processes_and_threads_never_interleave(log_dir):
    path = log_dir / "load.ndjson"
    # Lines far above PIPE_BUF (4 KiB) and mixed sizes: only the lock + one write() keeps them whole.
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_append_threads, args=(str(path), f"p{p}", 150, 3000 + 20000 * p)) for p in range(3)]
    for p in procs:
        p.start()
    _append_threads(str(path), "main", 150, 100)
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    lines = path.read_bytes().split(b"\n")
    assert lines.pop() == b""
    records = [orjson.loads(x) for x in lines]  # raises if two writes interleaved
    assert len(records) == 4 * 3 * 150
    seen: dict[str, list[int]] = {}
    for r in records:
        assert r["event"] == "load" and ISO_Z.match(r["ts"])
        seen.setdefault(r["who"], []).append(r["i"])
    assert len(seen) == 12
    assert all(v == list(range(150)) for v in seen.values())  # each writer's lines in order


# --- reader: incremental, partial lines -----------------------------------------------------


@pytest.mark.sqlite_only
def test_incremental_reads_each_line_once(conn, log_dir):
    path = log_dir / "requests.ndjson"
    assert read(conn, path)[0] == []  # missing file: nothing, no error
    write(path, line(1) + line(2))
    assert ids(read(conn, path)[0]) == [1, 2]
    assert ids(read(conn, path)[0]) == []
    write(path, line(3))
    objs, reader = read(conn, path)
    assert ids(objs) == [3]
    assert reader.offset == path.stat().st_size
    write(path, line(4) + line(5) + line(6))
    assert ids(read(conn, path)[0]) == [4, 5, 6]
    row = conn.execute("SELECT offset, size, lines, bad FROM cursors WHERE consumer='test'").fetchone()
    assert tuple(row) == (path.stat().st_size, path.stat().st_size, 6, 0)


def test_partial_last_line_waits_for_its_newline(conn, log_dir):
    path = log_dir / "requests.ndjson"
    write(path, line(1) + b'{"i": 2, "status": 2')
    objs, reader = read(conn, path)
    assert ids(objs) == [1]
    assert reader.offset == len(line(1))
    assert reader.bad == Counter()
    assert ids(read(conn, path, chunk=7)[0]) == []  # still partial, any chunk size
    write(path, b"00}\n")
    objs, _ = read(conn, path)
    assert objs == [{"i": 2, "status": 200}]


def test_consumers_have_separate_cursors(conn, log_dir):
    path = log_dir / "requests.ndjson"
    write(path, line(1))
    assert ids(read(conn, path, "slo")[0]) == [1]
    write(path, line(2))
    assert ids(read(conn, path, "pager")[0]) == [1, 2]
    assert ids(read(conn, path, "slo")[0]) == [2]


def test_batches_follow_chunks(conn, log_dir):
    path = log_dir / "requests.ndjson"
    write(path, b"".join(line(i) for i in range(100)))
    with store.transaction(conn):
        reader = ndjson.Reader(conn, path, "b", chunk=64)
        batches = list(reader.batches())
        reader.commit()
    assert len(batches) > 10
    assert [o["i"] for b in batches for o in b] == list(range(100))


# --- reader: rotation and truncation ---------------------------------------------------------


def test_rotation_reads_rest_of_old_file_then_new_file(conn, log_dir):
    path = log_dir / "requests.ndjson"
    write(path, line(1) + line(2))
    assert ids(read(conn, path)[0]) == [1, 2]
    write(path, line(3) + line(4))  # written before rotation, not yet read
    path.rename(path.with_name("requests.ndjson.1"))
    write(path, line(5))
    assert tick(conn, path) == ([3, 4, 5], ["rotated"])
    write(path, line(6))
    assert tick(conn, path) == ([6], [])


def test_rotation_with_old_file_gone_reads_new_file_from_start(conn, log_dir):
    path = log_dir / "requests.ndjson"
    write(path, line(1))
    read(conn, path)
    path.unlink()
    write(path, line(2) + line(3))
    objs, reader = read(conn, path)
    assert ids(objs) == [2, 3]
    # the file system may hand the new file the old inode number: the head check catches that
    assert reader.events in (["rotated_missing"], ["replaced"])


def test_truncated_and_refilled_past_the_offset_is_read_from_zero(conn, log_dir):
    path = log_dir / "requests.ndjson"
    write(path, line(1) + line(2))
    read(conn, path)
    inode = path.stat().st_ino
    with open(path, "r+b") as fh:
        fh.truncate(0)
    write(path, b"".join(line(i) for i in range(10, 20)))  # bigger than before the truncation
    assert path.stat().st_ino == inode
    assert tick(conn, path) == (list(range(10, 20)), ["replaced"])
    write(path, line(20))
    assert tick(conn, path) == ([20], [])


def test_rotation_partial_line_in_new_file(conn, log_dir):
    path = log_dir / "requests.ndjson"
    write(path, line(1))
    read(conn, path)
    path.rename(path.with_name("requests.ndjson.1"))
    write(path, line(2) + b'{"i": 3')
    assert ids(read(conn, path)[0]) == [2]
    write(path, b"}\n")
    assert ids(read(conn, path)[0]) == [3]


def test_copytruncate_starts_again_at_zero(conn, log_dir):
    path = log_dir / "requests.ndjson"
    write(path, line(1) + line(2) + line(3))
    assert ids(read(conn, path)[0]) == [1, 2, 3]
    shutil.copyfile(path, path.with_name("requests.ndjson.1"))  # logrotate copytruncate
    os.truncate(path, 0)
    assert tick(conn, path) == ([], ["copytruncated"])
    write(path, line(4))
    assert tick(conn, path) == ([4], [])
    write(path, line(5))
    assert ids(read(conn, path)[0]) == [5]


def test_truncated_then_partly_refilled(conn, log_dir):
    path = log_dir / "requests.ndjson"
    write(path, b"".join(line(i) for i in range(10)))
    read(conn, path)
    with open(path, "r+b") as fh:
        fh.truncate(0)
    write(path, line(100) + line(101))  # smaller than the old offset: detected as truncation
    assert tick(conn, path) == ([100, 101], ["truncated"])


# --- reader: garbage ---------------------------------------------------------------------------

GARBAGE = [
    (b"hello world", "not_json"),
    (b'{"i": 1,', "not_json"),
    (b"[1, 2, 3]", "not_object"),
    (b"42", "not_object"),
    (b'"a string"', "not_object"),
    (b"null", "not_object"),
    (b'{"i": "\xff\xfe"}', "not_utf8"),
    (b"\xc3\x28", "not_utf8"),
    (orjson.dumps({"i": -1, "pad": "x" * 70 * 1024}), "too_long"),
]


@pytest.mark.parametrize("chunk", [ndjson.CHUNK, 65536 + 7, 4096, 1000, 17])
def test_garbage_is_skipped_and_counted_by_reason(conn, log_dir, chunk):
    path = log_dir / "requests.ndjson"
    body = b""
    for n, (bad, _) in enumerate(GARBAGE):
        body += line(n) + bad + b"\n"
    body += b"\n   \n" + line(99)  # blank lines are neither data nor errors
    write(path, body)
    objs, reader = read(conn, path, chunk=chunk)
    assert ids(objs) == [*range(len(GARBAGE)), 99]
    assert reader.bad == Counter(reason for _, reason in GARBAGE)
    assert reader.offset == len(body)
    row = conn.execute("SELECT bad FROM cursors WHERE consumer='test'").fetchone()
    assert row[0] == len(GARBAGE)


def test_line_length_limit_is_64_kib(conn, log_dir):
    path = log_dir / "requests.ndjson"

    def sized(i: int, total: int) -> bytes:
        head = orjson.dumps({"i": i, "pad": ""})
        return orjson.dumps({"i": i, "pad": "x" * (total - len(head))})

    assert len(sized(1, ndjson.MAX_LINE)) == ndjson.MAX_LINE
    write(path, sized(1, ndjson.MAX_LINE) + b"\n" + sized(2, ndjson.MAX_LINE + 1) + b"\n" + line(3))
    objs, reader = read(conn, path, chunk=1024)
    assert ids(objs) == [1, 3]
    assert reader.bad == Counter(too_long=1)


def test_oversized_line_spanning_chunks_and_reads(conn, log_dir):
    path = log_dir / "requests.ndjson"
    long_line = orjson.dumps({"i": -1, "pad": "y" * 200_000})
    tail = orjson.dumps({"i": 7})  # a valid object: must not be mistaken for a line
    write(path, line(1) + long_line[:100_000])
    objs, reader = read(conn, path, chunk=4096)
    assert ids(objs) == [1]
    assert reader.bad == Counter()  # not counted until its newline arrives...
    assert reader.offset == len(line(1))  # ...and the cursor waits before it
    write(path, long_line[100_000:] + b"\n" + tail[:3])
    objs, reader = read(conn, path, chunk=4096)
    assert objs == []
    assert reader.bad == Counter(too_long=1)
    assert reader.offset == len(line(1)) + len(long_line) + 1
    write(path, tail[3:] + b"\n")
    assert ids(read(conn, path, chunk=4096)[0]) == [7]
    assert conn.execute("SELECT bad, lines FROM cursors").fetchone()[:] == (1, 3)


# --- reader: transactions, pending ---------------------------------------------------------------


def test_cursor_not_advanced_when_transaction_rolls_back(conn, log_dir):
    path = log_dir / "requests.ndjson"
    write(path, line(1) + line(2))
    conn.execute("CREATE TABLE derived (i INTEGER)")

    class Crash(Exception):
        pass

    with pytest.raises(Crash), store.transaction(conn):
        reader = ndjson.Reader(conn, path, "test")
        for obj in reader:
            conn.execute("INSERT INTO derived VALUES (?)", (obj["i"],))
        reader.commit()
        raise Crash  # e.g. the process dies before COMMIT
    assert conn.execute("SELECT count(*) FROM derived").fetchone()[0] == 0
    assert conn.execute("SELECT count(*) FROM cursors").fetchone()[0] == 0
    with store.transaction(conn):
        reader = ndjson.Reader(conn, path, "test")
        for obj in reader:
            conn.execute("INSERT INTO derived VALUES (?)", (obj["i"],))
        reader.commit()
    assert [r[0] for r in conn.execute("SELECT i FROM derived")] == [1, 2]


def test_reader_outside_a_transaction_raises(conn, log_dir):
    with pytest.raises(RuntimeError, match="inside store.transaction"):
        ndjson.Reader(conn, log_dir / "requests.ndjson", "test")


def test_pending(conn, log_dir):
    path = log_dir / "requests.ndjson"
    assert ndjson.pending(conn, path, "test") is False  # no file
    write(path, line(1))
    assert ndjson.pending(conn, path, "test") is True  # no cursor yet
    read(conn, path)
    assert ndjson.pending(conn, path, "test") is False
    assert ndjson.pending(conn, path, "other") is True
    write(path, line(2))
    assert ndjson.pending(conn, path, "test") is True
    read(conn, path)
    assert ndjson.pending(conn, path, "test") is False
    path.rename(path.with_name("requests.ndjson.1"))
    write(path, line(3))
    assert ndjson.pending(conn, path, "test") is True  # rotated


def test_reader_uses_absolute_source(conn, log_dir, monkeypatch):
    monkeypatch.chdir(log_dir)
    write(log_dir / "requests.ndjson", line(1))
    assert ids(read(conn, Path("requests.ndjson"))[0]) == [1]
    assert ids(read(conn, log_dir / "requests.ndjson")[0]) == []


# --- timestamps -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-11-27T02:51:57Z", 1795747917.0),
        ("2026-11-27T02:51:57.250Z", 1795747917.25),
        ("2026-11-27T03:51:57+01:00", 1795747917.0),
        ("2026-11-27T02:51:57", 1795747917.0),  # naive = UTC
        ("2026-11-27 02:51:57", 1795747917.0),
        (1795747917, 1795747917.0),
        (1795747917.5, 1795747917.5),
        ("yesterday", None),
        ("", None),
        ("1795747917", None),  # a number in a string is not an ISO time
        (True, None),
        (None, None),
        (float("nan"), None),
        (float("inf"), None),
        (-1, None),
        (1795747917000, None),  # epoch milliseconds are out of range, not year 58875
        ({"ts": 1}, None),
    ],
)
def test_parse_ts(value, expected):
    assert clock.parse_ts(value) == expected


def test_iso_round_trip():
    assert clock.iso(1795747917.25) == "2026-11-27T02:51:57.250Z"
    assert clock.parse_ts(clock.iso(1795747917.25)) == 1795747917.25
    assert clock.day_start(1795747917.25) == 1795737600.0


def test_reader_lines_feed_parse_ts(conn, log_dir):
    path = log_dir / "requests.ndjson"
    write(path, b'{"ts": "2026-11-27T02:51:57Z", "status": 200}\n{"ts": 1795747917, "status": 500}\n')
    objs, _ = read(conn, path)
    assert [clock.parse_ts(o["ts"]) for o in objs] == [1795747917.0, 1795747917.0]


# --- property: every good line exactly once, in order ---------------------------------------------

BAD_LINES = [b"nope", b"[1]", b"7", b'{"i":', b"\xff\xfe{}", orjson.dumps({"pad": "z" * 66_000})]


@st.composite
def operations(draw):
    ops = []
    counter = 0
    for _ in range(draw(st.integers(1, 12))):
        if draw(st.booleans()):
            items = []
            for _ in range(draw(st.integers(0, 8))):
                if draw(st.integers(0, 4)) == 0:
                    items.append((None, draw(st.sampled_from(BAD_LINES))))
                else:
                    counter += 1
                    text = draw(st.text(max_size=40))
                    items.append((counter, orjson.dumps({"i": counter, "t": text})))
            cut = draw(st.integers(0, 100))  # percent of this append's bytes written now
            ops.append(("append", items, cut))
        else:
            ops.append(("read", draw(st.sampled_from([5, 64, 1000, 4096, 70_000, ndjson.CHUNK]))))
    return ops


@hsettings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(operations())
def test_property_good_lines_exactly_once_in_order(ops):
    with tempfile.TemporaryDirectory() as tmp:
        s = load_settings({"ECHOOPS_LOG_DIR": tmp})
        conn = store.db(s)
        try:
            path = Path(tmp) / "requests.ndjson"
            held = b""  # bytes of a partly written append, written at the next append
            written: list[int] = []
            bad_written = 0
            got: list[dict] = []
            bad_read: Counter = Counter()
            for op in ops:
                if op[0] == "append":
                    _, items, cut = op
                    data = held + b"".join(raw + b"\n" for _, raw in items)
                    at = len(data) * cut // 100
                    write(path, data[:at])
                    held = data[at:]
                    written += [i for i, _ in items if i is not None]
                    bad_written += sum(1 for i, _ in items if i is None)
                else:
                    objs, reader = read(conn, path, chunk=op[1])
                    got += objs
                    bad_read += reader.bad
            write(path, held)
            objs, reader = read(conn, path, chunk=4096)
            got += objs
            bad_read += reader.bad
            assert [o["i"] for o in got] == written
            assert sum(bad_read.values()) == bad_written
        finally:
            store.close_all()
