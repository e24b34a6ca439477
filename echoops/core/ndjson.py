"""The NDJSON logger helper (append) and the incremental reader (cursors in the store).

append: one JSON object per line with `ts` (UTC ISO-8601) and `event`, written with a
single write() under a lock (threads) and flock (processes), so lines never interleave.

Reader: reads only what was appended since the last commit of the same consumer. A cursor
is (inode, offset, size); a new inode means rotation (the rest of the old file is read first
when it is still beside it as `<name>.1`), a size below the offset means truncation (start
again at 0). A last line without its newline is never consumed. Bad lines (not JSON, not
an object, not UTF-8, longer than 64 KiB) are skipped and counted.

Consumers call `commit()` inside the same store transaction that saves what they derived
from the lines, so a crash never loses or double counts a line.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
from collections import Counter
from collections.abc import Iterator
from itertools import chain
from pathlib import Path
from typing import Any

import orjson

from echoops.core.clock import iso, now_s
from echoops.core.files import dumps

MAX_LINE = 64 * 1024
# Read size. Small on purpose: a chunk's bytes, its lines and their dicts stay in the CPU
# caches (4 MiB chunks ran at half the speed of a bare `for line in f` loop, 48 KiB at about
# its speed: bench/foundation_ndjson.py). Lines longer than a chunk still work (carried over).
CHUNK = 48 * 1024
# The cursor also keeps the file's first bytes (up to HEAD, never past the offset): a file
# deleted and re-created under the same inode number, or truncated and refilled past the
# offset before a tick, no longer starts with them and is read again from 0.
HEAD = 64

_lock = threading.Lock()
_ONLY_DICT = {dict}


def append(path: Path, event: str, *, now: float | None = None, **fields: Any) -> dict[str, Any]:
    """Append `{"ts":…, "event": event, **fields}` to `path` as one line; returns the record."""
    record = {"ts": iso(now_s(now)), "event": event, **fields}
    line = dumps(record) + b"\n"
    path = Path(path)
    with _lock:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except FileNotFoundError:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.write(fd, line)
        finally:
            os.close(fd)  # closing releases the flock
    return record


def append_lines(path: Path, records: list[dict[str, Any]]) -> int:
    """Append `records` to `path` as NDJSON in one write() under the same locks as `append`
    (an app's input lines: no `event` or `ts` added); returns the bytes written."""
    if not records:
        return 0
    data = b"".join(dumps(r) + b"\n" for r in records)
    path = Path(path)
    with _lock:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except FileNotFoundError:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            view = memoryview(data)
            while view:  # a regular file takes it in one write; a short write is finished, not lost
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
    return len(data)


def _classify(line: bytes) -> str:
    """Why a line that failed to parse as an object is bad (for the counters)."""
    try:
        line.decode("utf-8")
    except UnicodeDecodeError:
        return "not_utf8"
    try:
        orjson.loads(line)
    except orjson.JSONDecodeError:
        return "not_json"
    return "not_object"


def pending(conn: sqlite3.Connection, path: Path, consumer: str) -> bool:
    """Cheap check (one stat, one indexed row): is there anything past `consumer`'s cursor?"""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    row = conn.execute(
        "SELECT inode, offset FROM cursors WHERE consumer=? AND source=?", (consumer, str(Path(path).absolute()))
    ).fetchone()
    return row is None or st.st_ino != row[0] or st.st_size != row[1]


class Reader:
    """Incremental reader of one NDJSON file for one consumer.

    Iterate it for dicts (or `batches()` for lists of dicts, the fast path), then call
    `commit()` inside the transaction that stores the results. `bad` counts skipped lines
    by reason; `count_bad(reason)` lets a consumer add lines it rejects (missing fields).
    """

    def __init__(self, conn: sqlite3.Connection, path: Path, consumer: str, *, chunk: int = CHUNK):
        self.conn = conn
        self.path = Path(path)
        self.source = str(self.path.absolute())
        self.consumer = consumer
        self.chunk = chunk
        self.lines = 0
        self.bad: Counter[str] = Counter()
        self.events: list[str] = []  # "rotated", "truncated": what the cursor noticed
        if not conn.in_transaction:
            # Two consumers reading the same cursor outside a write lock would both count
            # the same lines; inside BEGIN IMMEDIATE the second waits for the first.
            raise RuntimeError("ndjson.Reader must be created inside store.transaction()")
        row = conn.execute(
            "SELECT inode, offset, size, head FROM cursors WHERE consumer=? AND source=?", (consumer, self.source)
        ).fetchone()
        self._fresh = row is None  # no cursor yet: the whole file is new
        self._inode: int = row[0] if row else 0
        self._offset: int = row[1] if row else 0
        self._size = row[2] if row else 0
        self._head = bytes(row[3]) if row else b""

    @property
    def offset(self) -> int:
        return self._offset

    def count_bad(self, reason: str, n: int = 1) -> None:
        self.bad[reason] += n

    def _plan(self) -> list[tuple[Path, int, int]]:
        """(file, start offset, inode) segments to read, oldest first."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return []
        if self._fresh:
            return [(self.path, 0, st.st_ino)]
        if st.st_ino != self._inode:
            self.events.append("rotated")
            plan = []
            rotated = self.path.with_name(self.path.name + ".1")
            try:
                if os.stat(rotated).st_ino == self._inode:
                    plan.append((rotated, self._offset, self._inode))
            except FileNotFoundError:
                pass
            plan.append((self.path, 0, st.st_ino))
            return plan
        if st.st_size < self._offset:
            self.events.append("truncated")
            return [(self.path, 0, st.st_ino)]
        return [(self.path, self._offset, st.st_ino)]

    def batches(self) -> Iterator[list[dict[str, Any]]]:
        """Yield lists of parsed objects, one list per chunk read, advancing the cursor."""
        loads = orjson.loads
        decode_error = orjson.JSONDecodeError
        for path, start, inode in self._plan():
            try:
                fh = open(path, "rb")
            except FileNotFoundError:
                continue
            with fh:
                if os.fstat(fh.fileno()).st_ino != inode:
                    continue  # replaced between stat and open; the next run picks it up
                if start and self._head and os.pread(fh.fileno(), len(self._head), 0) != self._head:
                    if path != self.path:
                        continue  # not the file the cursor was in after all
                    self.events.append("replaced")
                    start = 0
                fh.seek(start)
                offset = start  # file position of the first byte not yet consumed (or dropped)
                carry = b""
                # >= 0 while inside a line longer than MAX_LINE: where that line began. Its head
                # is dropped as it streams by (bounded memory); it is counted, and the cursor
                # moves past it, only once its newline arrives, like any other partial line.
                skip_start = -1
                while True:
                    data = fh.read(self.chunk)
                    if not data:
                        break
                    lines = data.split(b"\n")
                    if len(lines) == 1:  # no newline in this chunk: the line goes on
                        carry += data
                        if len(carry) > MAX_LINE:
                            if skip_start < 0:
                                skip_start = offset
                            offset += len(carry)
                            carry = b""
                        continue
                    consumed = len(data) + len(carry)
                    if carry:
                        lines[0] = carry + lines[0]
                    carry = lines.pop()  # after the last newline: a partial line, or b""
                    consumed -= len(carry)
                    if skip_start >= 0:
                        del lines[0]  # the tail of the oversized line
                        skip_start = -1
                        self.bad["too_long"] += 1
                        self.lines += 1
                    out = None
                    # Fast path, all in C: every line short, every line an object. One bad line
                    # sends the chunk to the per-line path, which says why it is bad.
                    if consumed <= MAX_LINE or max(map(len, lines), default=0) <= MAX_LINE:
                        try:
                            out = list(map(loads, lines))
                        except decode_error:
                            pass
                        else:
                            if out and set(map(type, out)) != _ONLY_DICT:
                                out = None
                    if out is None:
                        out = self._parse_lines(lines)
                    self.lines += len(lines)
                    offset += consumed
                    self._inode, self._offset = inode, offset
                    if out:
                        yield out
                # a partial last line stays unread: the cursor stops before it
                self._inode, self._offset = inode, (skip_start if skip_start >= 0 else offset)
                self._head = os.pread(fh.fileno(), min(self._offset, HEAD), 0)
        try:
            self._size = os.stat(self.path).st_size
        except FileNotFoundError:
            self._size = 0

    def _parse_lines(self, lines: list[bytes]) -> list[dict[str, Any]]:
        """The objects among `lines`, counting each bad line by reason (blank lines are neither)."""
        loads = orjson.loads
        decode_error = orjson.JSONDecodeError
        out: list[dict[str, Any]] = []
        for line in lines:
            if len(line) > MAX_LINE:
                self.bad["too_long"] += 1
                continue
            try:
                obj = loads(line)
            except decode_error:
                if line.strip():
                    self.bad[_classify(line)] += 1
                continue
            if type(obj) is dict:
                out.append(obj)
            else:
                self.bad["not_object"] += 1
        return out

    def __iter__(self) -> Iterator[dict[str, Any]]:
        # chain runs in C: no generator frame resumed per object (about 10% of a tick's time)
        return chain.from_iterable(self.batches())

    def commit(self, now: float | None = None) -> None:
        """Save the cursor (call inside the transaction that stores what was derived)."""
        self.conn.execute(
            "INSERT INTO cursors(consumer, source, inode, offset, size, lines, bad, updated_at, head) "
            "VALUES(?,?,?,?,?,?,?,?,?) ON CONFLICT(consumer, source) DO UPDATE SET "
            "inode=excluded.inode, offset=excluded.offset, size=excluded.size, head=excluded.head, "
            "lines=cursors.lines+excluded.lines, bad=cursors.bad+excluded.bad, updated_at=excluded.updated_at",
            (
                self.consumer,
                self.source,
                self._inode,
                self._offset,
                self._size,
                self.lines,
                sum(self.bad.values()),
                now_s(now),
                self._head,
            ),
        )
