"""core/ndjson.Reader under logrotate: rename and copytruncate rotation, several rotations
between two reads, truncate-and-refill (even to the same size), and a property test of the
reader against a model of all of them (issue 12, item 3)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections import Counter
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from echoops.core import costs, ndjson, store
from echoops.core.config import load_settings


@pytest.fixture
def conn(settings):
    return store.db(settings)


def write(path: Path, data: bytes) -> None:
    with open(path, "ab") as fh:
        fh.write(data)


def line(i: int, pad: str = "") -> bytes:
    return orjson.dumps({"i": i, "pad": pad}) + b"\n"


def lines(ids) -> bytes:
    return b"".join(line(i) for i in ids)


def tick(conn, path: Path, consumer: str = "test", chunk: int = ndjson.CHUNK) -> tuple[list[int], list[str], Counter]:
    """What a consumer does: pending() first, then a Reader in a transaction.
    Returns (ids read, what the cursor noticed, bad lines by reason)."""
    if not ndjson.pending(conn, path, consumer):
        return [], [], Counter()
    with store.transaction(conn):
        reader = ndjson.Reader(conn, path, consumer, chunk=chunk)
        objs = list(reader)
        reader.commit(now=1_800_000_000)
    return [o["i"] for o in objs], reader.events, reader.bad


def bulk_tick(conn, path: Path, processes: int, consumer: str = "test") -> tuple[list[int], Counter]:
    """A consumer that folds the new lines in `processes` pieces (issue 20's bulk ingest, with any
    backlog counting as bulk): pieces in file order, then the rest."""
    if not ndjson.pending(conn, path, consumer):
        return [], Counter()
    with store.transaction(conn):
        reader = ndjson.Reader(conn, path, consumer, chunk=64)
        parts = reader.fold(lambda scan: [o["i"] for b in scan.batches() for o in b], bulk_bytes=1, processes=processes)
        reader.commit(now=1_800_000_000)
    return [i for ids in parts for i in ids], reader.bad


def first_batch(conn, path: Path, consumer: str = "test", chunk: int = ndjson.CHUNK) -> tuple[list[int], Counter]:
    """A consumer that reads one batch and commits (the pager's bounded slices)."""
    if not ndjson.pending(conn, path, consumer):
        return [], Counter()
    with store.transaction(conn):
        reader = ndjson.Reader(conn, path, consumer, chunk=chunk)
        batch = next(reader.batches(), [])
        reader.commit(now=1_800_000_000)
    return [o["i"] for o in batch], reader.bad


def rename_rotate(path: Path) -> None:
    """logrotate's default: name.N -> name.N+1, ..., name -> name.1, then a new empty name."""
    rotated = sorted(
        (p for p in path.parent.glob(path.name + ".*") if p.suffix[1:].isdigit()), key=lambda p: -int(p.suffix[1:])
    )
    for p in rotated:
        p.rename(path.with_name(f"{path.name}.{int(p.suffix[1:]) + 1}"))
    path.rename(path.with_name(path.name + ".1"))
    path.touch()


def copytruncate_rotate(path: Path, truncate: bool = True) -> None:
    """logrotate's copytruncate: shift name.N, copy name to name.1, truncate name in place
    (`truncate=False`: logrotate's `copy`, which leaves name as it is)."""
    rotated = sorted(
        (p for p in path.parent.glob(path.name + ".*") if p.suffix[1:].isdigit()), key=lambda p: -int(p.suffix[1:])
    )
    for p in rotated:
        p.rename(path.with_name(f"{path.name}.{int(p.suffix[1:]) + 1}"))
    shutil.copyfile(path, path.with_name(path.name + ".1"))
    if truncate:
        os.truncate(path, 0)


# --- the cases from the issue, each failing on the reader before this change -----------------------


def test_copytruncate_keeps_the_lines_written_between_the_last_read_and_the_copy(conn, log_dir):
    path = log_dir / "ai_usage.ndjson"
    write(path, lines([1, 2]))
    assert tick(conn, path)[0] == [1, 2]
    write(path, lines([3, 4]))  # written after the last read...
    inode = path.stat().st_ino
    copytruncate_rotate(path)  # ...then copied to .1 and truncated
    write(path, lines([5]))
    assert path.stat().st_ino == inode
    assert tick(conn, path) == ([3, 4, 5], ["copytruncated"], Counter())
    write(path, lines([6]))
    assert tick(conn, path) == ([6], [], Counter())


def test_two_rename_rotations_between_reads_lose_nothing(conn, log_dir):
    path = log_dir / "requests.ndjson"
    write(path, lines(range(1, 6)))
    assert tick(conn, path)[0] == [1, 2, 3, 4, 5]
    write(path, lines(range(6, 11)))  # unread, then rotated to .1 and then to .2
    rename_rotate(path)
    write(path, lines(range(11, 19)))  # the next file, rotated to .1 before any read
    rename_rotate(path)
    write(path, lines(range(19, 26)))
    assert tick(conn, path) == (list(range(6, 26)), ["rotated"], Counter())
    assert tick(conn, path) == ([], [], Counter())


def test_two_copytruncate_rotations_between_reads_lose_nothing(conn, log_dir):
    path = log_dir / "requests.ndjson"
    write(path, lines(range(1, 6)))
    assert tick(conn, path)[0] == [1, 2, 3, 4, 5]
    write(path, lines(range(6, 11)))
    copytruncate_rotate(path)
    write(path, lines(range(11, 19)))
    copytruncate_rotate(path)
    write(path, lines(range(19, 26)))
    assert tick(conn, path) == (list(range(6, 26)), ["copytruncated"], Counter())


def test_truncated_and_refilled_to_the_same_size_is_read_again(conn, log_dir):
    path = log_dir / "requests.ndjson"
    write(path, lines([1, 2, 3]))
    assert tick(conn, path)[0] == [1, 2, 3]
    size, inode = path.stat().st_size, path.stat().st_ino
    with open(path, "r+b") as fh:  # truncate and refill in place, same inode, same length
        fh.truncate(0)
        fh.write(lines([7, 8, 9]))
    assert (path.stat().st_size, path.stat().st_ino) == (size, inode)
    assert ndjson.pending(conn, path, "test") is True
    assert tick(conn, path) == ([7, 8, 9], ["replaced"], Counter())
    assert tick(conn, path) == ([], [], Counter())


def test_refill_with_the_same_first_bytes_is_told_apart_by_the_bytes_before_the_offset(conn, log_dir):
    path = log_dir / "requests.ndjson"
    write(path, line(1, "x" * 80) + line(2))
    assert tick(conn, path)[0] == [1, 2]
    with open(path, "r+b") as fh:  # same first line (more than MARK bytes), another second line
        fh.truncate(0)
        fh.write(line(1, "x" * 80) + line(3))
    assert tick(conn, path) == ([1, 3], ["replaced"], Counter())


def test_renamed_file_still_written_is_followed_until_the_new_one_has_data(conn, log_dir):
    path = log_dir / "requests.ndjson"
    write(path, lines([1]))
    assert tick(conn, path)[0] == [1]
    old = path.with_name("requests.ndjson.1")
    path.rename(old)
    path.touch()  # logrotate `create`; the app has not reopened its log yet
    write(old, lines([2]))
    assert tick(conn, path) == ([2], ["rotated"], Counter())
    write(old, lines([3]))  # still the old file
    assert tick(conn, path) == ([3], ["rotated"], Counter())
    write(path, lines([4]))  # reopened: the new file from now on
    assert tick(conn, path) == ([4], ["rotated"], Counter())
    assert tick(conn, path) == ([], [], Counter())


def test_unfinished_last_line_of_a_rotated_file_is_counted_bad(conn, log_dir):
    path = log_dir / "requests.ndjson"
    write(path, lines([1]))
    assert tick(conn, path)[0] == [1]
    write(path, lines([2]) + b'{"i": 3, "pa')  # the writer died mid-line, then the log rotated
    rename_rotate(path)
    write(path, lines([4]))
    assert tick(conn, path) == ([2, 4], ["rotated"], Counter({"unterminated": 1}))


def test_logrotate_copy_without_truncate_reads_nothing_twice(conn, log_dir):
    path = log_dir / "requests.ndjson"
    write(path, lines([1, 2]))
    assert tick(conn, path)[0] == [1, 2]
    write(path, lines([3]))
    copytruncate_rotate(path, truncate=False)  # logrotate `copy`: the file itself goes on
    write(path, lines([4]))
    assert tick(conn, path) == ([3, 4], [], Counter())


def test_copytruncate_of_a_file_empty_at_the_last_read(conn, log_dir):
    path = log_dir / "requests.ndjson"
    path.touch()
    assert tick(conn, path)[0] == []  # the cursor is at offset 0: no bytes of it to recognise
    write(path, lines([1, 2]))
    copytruncate_rotate(path)  # same inode, same size (0) as at the last read
    assert tick(conn, path) == ([1, 2], ["copytruncated"], Counter())


def test_a_consumer_that_stops_early_then_a_copytruncate(conn, log_dir):
    """The pager reads big logs in slices: the cursor it commits mid-file must still be found."""
    path = log_dir / "requests.ndjson"
    write(path, lines(range(10)))
    assert tick(conn, path, "slices")[0] == list(range(10))
    write(path, lines(range(10, 200)))
    with store.transaction(conn):
        reader = ndjson.Reader(conn, path, "slices", chunk=256)
        first = next(reader.batches())  # one slice, then commit (the generator is dropped)
        reader.commit(now=1)
    seen = list(range(10)) + [o["i"] for o in first]
    assert 10 < len(seen) < 30
    copytruncate_rotate(path)
    write(path, lines([200]))
    ids, events, bad = tick(conn, path, "slices")
    assert seen + ids == list(range(201))
    assert (events, bad) == (["copytruncated"], Counter())


def test_rotated_file_that_is_gone_is_reported(conn, log_dir):
    path = log_dir / "requests.ndjson"
    write(path, lines([1]))
    tick(conn, path)
    write(path, lines([2]))
    rename_rotate(path)
    path.with_name("requests.ndjson.1").unlink()  # compressed or deleted before the next read
    write(path, lines([3, 4]))
    ids, events, _ = tick(conn, path)
    assert ids == [3, 4]
    assert events in (["rotated_missing"], ["replaced"])  # the new file may reuse the old inode number


def test_costs_tick_counts_spend_written_just_before_a_copytruncate(log_dir, settings):
    """The issue's $10 of AI spend: written after a tick, then copytruncated before the next."""
    path = log_dir / "ai_usage.ndjson"
    now = 1_795_780_800.0  # 2026-11-27T12:00:00Z
    write(path, orjson.dumps({"ts": "2026-11-27T10:00:00Z", "model": "gpt-4o", "usd": 1.0}) + b"\n")
    assert costs.tick(s=settings, now=now)["calls"] == 1
    write(path, orjson.dumps({"ts": "2026-11-27T11:00:00Z", "model": "gpt-4o", "usd": 10.0}) + b"\n")
    copytruncate_rotate(path)
    write(path, orjson.dumps({"ts": "2026-11-27T11:30:00Z", "model": "gpt-4o", "usd": 2.0}) + b"\n")
    report = costs.tick(s=settings, now=now)
    assert (report["calls"], report["log_events"]) == (2, ["copytruncated"])
    assert report["global"]["spent_usd"] == 13.0


# --- property: the reader against a model of rotation ---------------------------------------------------

BAD = [b"nope", b"[1]", b'{"i":', b"\xff\xfe{}"]  # + a number: no two files are byte for byte alike


@st.composite
def histories(draw):
    """A sequence of writer, logrotate and reader operations (line ids are unique and increasing)."""
    ops = []
    n = 0
    for _ in range(draw(st.integers(1, 14))):
        kind = draw(
            st.sampled_from(
                [
                    "append",
                    "append",
                    "append",
                    "read",
                    "read",
                    "slice",
                    "bulk",
                    "rename",
                    "copytruncate",
                    "copy",
                    "refill",
                ]
            )
        )
        if kind in ("append", "refill"):
            items = []
            for _ in range(draw(st.integers(0 if kind == "append" else 1, 5))):
                if draw(st.integers(0, 5)) == 0:
                    n += 1
                    items.append((None, draw(st.sampled_from(BAD)) + str(n).encode()))
                else:
                    n += 1
                    items.append((n, line(n, draw(st.text(max_size=30)))[:-1]))
            cut = draw(st.integers(0, 100)) if kind == "append" else 100
            ops.append((kind, items, cut, draw(st.booleans())))
        elif kind == "read":
            ops.append((kind, draw(st.sampled_from([7, 64, 1000, ndjson.CHUNK]))))
        elif kind == "slice":  # a consumer that stops after its first batch (the pager's slices)
            ops.append((kind, draw(st.sampled_from([7, 40, 100]))))
        elif kind == "bulk":  # a read folded in pieces by forked processes
            ops.append((kind, draw(st.sampled_from([2, 3]))))
        else:
            ops.append((kind,))
    return ops


def _refill(path: Path, data: bytes, same_size: bool) -> None:
    """Truncate `path` in place and write `data` (padded or cut to the old size when asked)."""
    old = path.stat().st_size
    if same_size and old and len(data) <= old:
        data = data[:-1] + b" " * (old - len(data)) + b"\n"  # spaces before the newline: still JSON
    with open(path, "r+b") as fh:
        fh.truncate(0)
        fh.write(data)


@pytest.mark.slow
@hsettings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories())
def test_property_no_line_lost_or_read_twice_under_rotation(ops):
    """Every line is read once, in order, unless the writer destroyed it before any read
    (truncate-and-refill of unread lines); bad lines are counted once each."""
    with tempfile.TemporaryDirectory() as tmp:
        s = load_settings({"ECHOOPS_LOG_DIR": tmp})
        conn = store.db(s)
        try:
            path = Path(tmp) / "app.ndjson"
            path.touch()
            tick(conn, path)  # the consumer has a cursor (a fresh one reads only the current file)
            held = b""  # part of an append not written yet (the writer finishes it before rotating)
            in_current: list[int | None] = []  # what the current file holds, line by line
            written: list[int] = []
            destroyed: set[int] = set()
            bad_written = bad_destroyed = 0
            got: list[int] = []
            bad_read = 0

            def flush() -> None:
                nonlocal held
                write(path, held)
                held = b""

            for op in ops:
                if op[0] == "append":
                    _, items, cut, _ = op
                    data = held + b"".join(raw + b"\n" for _, raw in items)
                    at = len(data) * cut // 100
                    write(path, data[:at])
                    held = data[at:]
                    in_current += [i for i, _ in items]
                    written += [i for i, _ in items if i is not None]
                    bad_written += sum(1 for i, _ in items if i is None)
                elif op[0] == "read":
                    ids, _, bad = tick(conn, path, chunk=op[1])
                    got += ids
                    bad_read += sum(bad.values())
                elif op[0] == "bulk":
                    ids, bad = bulk_tick(conn, path, op[1])
                    got += ids
                    bad_read += sum(bad.values())
                elif op[0] == "slice":
                    ids, bad = first_batch(conn, path, chunk=op[1])
                    got += ids
                    bad_read += sum(bad.values())
                elif op[0] == "rename":
                    flush()
                    rename_rotate(path)
                    in_current = []
                elif op[0] == "copytruncate":
                    flush()
                    copytruncate_rotate(path)
                    in_current = []
                elif op[0] == "copy":  # a copy beside the file, which goes on growing: nothing to read twice
                    flush()
                    copytruncate_rotate(path, truncate=False)
                else:  # refill: the unread lines of the current file are gone for good
                    _, items, _, same_size = op
                    flush()
                    read_already = set(got)
                    destroyed |= {i for i in in_current if i is not None and i not in read_already}
                    # bad lines of the old content: the reader may or may not have passed them
                    bad_destroyed += sum(1 for i in in_current if i is None)
                    _refill(path, b"".join(raw + b"\n" for _, raw in items), same_size)
                    in_current = [i for i, _ in items]
                    written += [i for i, _ in items if i is not None]
                    bad_written += sum(1 for i, _ in items if i is None)
            flush()
            ids, _, bad = tick(conn, path, chunk=4096)
            got += ids
            bad_read += sum(bad.values())
            assert len(got) == len(set(got)), "a line was read twice"
            assert got == sorted(got), "lines out of order"
            assert set(written) - destroyed <= set(got), "a line was lost"
            assert bad_written - bad_destroyed <= bad_read <= bad_written
        finally:
            store.close_all()
