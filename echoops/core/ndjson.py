"""The NDJSON logger helper (append) and the incremental reader (cursors in the store).

append: one JSON object per line with `ts` (UTC ISO-8601) and `event`, written with a
single write() under a lock (threads) and flock (processes), so lines never interleave.

Reader: reads only what was appended since the last commit of the same consumer. A cursor is
(inode, offset, first bytes of the file, the bytes just before the offset). When `path` is no
longer the file the cursor was in (a new inode, a size below the offset, other first bytes:
logrotate's rename or copytruncate, a truncation, a refill), the reader looks for that file
among the rotated ones, `<name>.1`, `<name>.2`, ... (by inode, or for a copytruncate copy by
the bytes around the cursor), finishes it from the offset, reads every newer rotated file
whole, then `path` from 0; when none holds the cursor, it reads `path` from 0 and says so in
`events`. A last line without its newline is never consumed (in a rotated file that a newer
file follows, it is counted bad as `unterminated`). Bad lines (not JSON, not an object, not
UTF-8, longer than 64 KiB) are skipped and counted. An input that cannot be read (permission,
not a regular file, an I/O error) raises InputError naming it, before anything is consumed.

Consumers call `commit()` inside the same store transaction that saves what they derived
from the lines, so a crash never loses or double counts a line.

What a line is: JSON as orjson reads it; a line orjson refuses that Python's json module reads
(a number too large for a double, which RFC 8259 allows: it reads as +-inf; an integer of more
than 64 bits) is kept too, unless it holds a lone surrogate or a NaN/Infinity literal. Two
faster ways in, both held to that rule: `typed` (a msgspec Struct of the fields a consumer
reads: a chunk of ASCII lines is decoded straight into them in C, anything else takes the
per-line path) and `fold` (a backlog above `bulk_bytes` is split at line boundaries and folded
in several processes: core/bulk.py).

Limits (those of every tailer of rotated logs): lines written between logrotate's copy and
its truncate are in neither file; a rotated file compressed or deleted before the next read
is not found (`rotated_missing`, `truncated`, `replaced` events); only files named exactly
`<name>.N` are searched.
"""

from __future__ import annotations

import fcntl
import os
import stat
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

import orjson

from echoops.core import bulk, store
from echoops.core.clock import iso, now_s
from echoops.core.errors import EchoopsError
from echoops.core.files import dumps
from echoops.core.types import UnreadableInput

MAX_LINE = 64 * 1024
# Read size. Small on purpose: a chunk's bytes, its lines and their dicts stay in the CPU
# caches (4 MiB chunks ran at half the speed of a bare `for line in f` loop, 48 KiB at about
# its speed: bench/foundation_ndjson.py). Lines longer than a chunk still work (carried over).
CHUNK = 48 * 1024
# The cursor keeps up to MARK bytes from the start of its file (`cursors.head`) and up to
# MARK bytes before its offset (`cursor_marks.tail`). A file whose bytes there differ is not
# the file the cursor was in: it was replaced, truncated and refilled (even to the same
# size), or it is another rotated file.
MARK = 64
# Beside each cursor: its `tail`, and `rotated`, the inode of <name>.1 when the cursor was
# saved (0: there was none; NULL: not known, a cursor from before this table). Rotated files
# newer than that one appeared since the last read: a rotation happened even when nothing
# else can tell (the cursor at offset 0 of a file copytruncated since).
SCHEMA = store.Schema(
    "ndjson",
    (
        """
        CREATE TABLE cursor_marks (
            consumer TEXT NOT NULL,
            source TEXT NOT NULL,
            tail BLOB NOT NULL,
            rotated INTEGER,
            PRIMARY KEY (consumer, source)
        );
        """,
        # v2: per host, as the cursors (store meta v3): hosts sharing a PostgreSQL store each
        # read their own files, which may have the same paths.
        """
        CREATE TABLE cursor_marks_v2 (
            host TEXT NOT NULL DEFAULT '',
            consumer TEXT NOT NULL,
            source TEXT NOT NULL,
            tail BLOB NOT NULL,
            rotated INTEGER,
            PRIMARY KEY (host, consumer, source)
        );
        INSERT INTO cursor_marks_v2(host, consumer, source, tail, rotated)
        SELECT '', consumer, source, tail, rotated FROM cursor_marks;
        DROP TABLE cursor_marks;
        ALTER TABLE cursor_marks_v2 RENAME TO cursor_marks;
        """,
    ),
)
# A cursor is this host's (store.host: '' on SQLite) for one consumer and one file path.
_CURSOR_SQL = (
    'SELECT c.inode, c."offset", c.size, c.head, m.tail, m.rotated FROM cursors c '
    "LEFT JOIN cursor_marks m ON m.host = c.host AND m.consumer = c.consumer AND m.source = c.source "
    "WHERE c.host=? AND c.consumer=? AND c.source=?"
)
# Rotated files searched for the cursor's file: <name>.1 ... <name>.MAX_ROTATED.
MAX_ROTATED = 20

_lock = threading.Lock()
_ONLY_DICT = {dict}


class InputError(EchoopsError):
    """An input file exists but cannot be read; `reason` names why (for tick results and events).

    Reasons: `permission_denied`, `not_a_file` (a directory, FIFO, socket or device matched
    the name), `vanished` (a dangling symlink, or gone between listing and opening),
    `io_error` (anything else the OS refused).
    """

    code = "input_unreadable"
    status = 503
    exit_code = 1

    def __init__(self, path: Path, reason: str, cause: str):
        super().__init__(f"{Path(path).name}: {reason} ({cause})")
        self.path = Path(path)
        self.reason = reason
        self.cause = cause

    def as_dict(self) -> UnreadableInput:
        """`{"source", "error", "detail"}` as tick results and events report it."""
        return {"source": self.path.name, "error": self.reason, "detail": self.cause}

    def __reduce__(self):  # a bulk fold's child sends it back to the parent whole
        return (InputError, (self.path, self.reason, self.cause))


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def open_input(path: Path) -> tuple[BinaryIO, os.stat_result] | None:
    """Open an input file for reading: (file, its stat), None when there is no such file.

    Never blocks (a FIFO is opened non-blocking and refused); InputError when `path` exists
    but is not a readable regular file.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        if os.path.islink(path):
            raise InputError(path, "vanished", "symlink to a missing file") from None
        return None
    except PermissionError as exc:
        raise InputError(path, "permission_denied", exc.strerror or "permission denied") from None
    except OSError as exc:
        try:
            mode = os.stat(path).st_mode
        except OSError:
            mode = stat.S_IFREG
        if not stat.S_ISREG(mode):  # a socket answers ENXIO
            raise InputError(path, "not_a_file", _kind(mode)) from None
        raise InputError(path, "io_error", exc.strerror or str(exc)) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise InputError(path, "not_a_file", _kind(st.st_mode))
        return os.fdopen(fd, "rb"), st
    except BaseException:
        os.close(fd)
        raise


def check_input(path: Path) -> None:
    """InputError when `path` exists (or is a dangling symlink) but cannot be read as a regular file."""
    opened = open_input(path)
    if opened is not None:
        opened[0].close()


def append(path: Path, event: str, *, now: float | None = None, **fields: Any) -> dict[str, Any]:
    """Append `{"ts":…, "event": event, **fields}` to `path` as one line; returns the record."""
    record = {"ts": iso(now_s(now)), "event": event, **fields}
    _append_bytes(Path(path), dumps(record) + b"\n")
    return record


def append_lines(path: Path, records: list[dict[str, Any]]) -> int:
    """Append `records` to `path` as NDJSON in one write() under the same locks as `append`
    (an app's input lines: no `event` or `ts` added); returns the bytes written."""
    if not records:
        return 0
    data = b"".join(dumps(r) + b"\n" for r in records)
    _append_bytes(Path(path), data)
    return len(data)


def _append_bytes(path: Path, data: bytes) -> None:
    """Append whole lines under this process's lock and an flock, so writers never interleave."""
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
            os.close(fd)  # closing releases the flock


_REFUSED = object()


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def _wide(line: bytes) -> Any:
    """A line orjson refused, read by Python's json module (numbers of any size), or _REFUSED."""
    import json  # lazy: only for a line orjson refuses

    try:
        obj = json.loads(line.decode("utf-8"), parse_constant=_refuse_constant)
        # a lone surrogate (`"\\ud800"`) cannot be written anywhere as UTF-8 later: refused
        json.dumps(obj, ensure_ascii=False).encode("utf-8")
    except (ValueError, RecursionError):  # UnicodeError and JSONDecodeError are ValueErrors
        return _REFUSED
    return obj


class Typed:
    """Chunks of lines decoded straight into `struct` (a msgspec Struct of the fields a consumer
    reads, other fields skipped in C), 3-5x faster than a dict per line.

    Only a chunk of ASCII lines, each one JSON value, all of `struct`'s shape, is taken this way
    (the chunk is decoded as one JSON array, so a blank line or two values on one line fail it);
    any other chunk takes the per-line path and yields dicts, so a consumer's batch is either all
    `struct` or all dicts. What msgspec skips unread (an extra field) it still checks as JSON;
    a number there too large for a double is what `_wide` keeps, so both ways agree.
    """

    def __init__(self, struct: type):
        import msgspec  # lazy: 30 ms, only once there is input to read

        self.struct = struct
        self.decode = msgspec.json.Decoder(list[struct | None]).decode  # type: ignore[valid-type]
        self.errors = msgspec.DecodeError  # ValidationError is one

    def chunk(self, buf: bytes) -> list | None:
        """`buf` (whole lines, each ending with a newline) as a list of structs, or None."""
        if len(buf) > MAX_LINE or not buf.isascii():
            return None
        try:
            # every newline a comma, then a `null` to close the list: two copies of the chunk
            out = self.decode(b"".join((b"[", buf.replace(b"\n", b","), b"null]")))
        except self.errors:
            return None
        out.pop()
        if not out or None in out:  # one blank line, or a line `null`: the per-line path says what they are
            return None
        return out


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


def _holds(fd: int, size: int, offset: int, head: bytes, tail: bytes) -> bool:
    """Does the open file hold the cursor: at least `offset` bytes, `head` at 0, `tail` just before `offset`?"""
    if size < offset:
        return False
    if head and os.pread(fd, len(head), 0) != head:
        return False
    return not tail or os.pread(fd, len(tail), offset - len(tail)) == tail


def _rotated_inode(path: Path) -> int | None:
    """Inode of <name>.1 (0 when there is none, None when it cannot be told)."""
    try:
        return os.stat(Path(path).with_name(Path(path).name + ".1")).st_ino
    except FileNotFoundError:
        return 0
    except OSError:
        return None


def pending(conn: store.Conn, path: Path, consumer: str, *, listed: bool = False) -> bool:
    """Cheap check (two stats, one indexed row, two small reads): is there anything past
    `consumer`'s cursor? InputError when `path` exists but cannot be read, or (`listed`: the
    caller just found it in a directory listing) when it is gone."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        if os.path.islink(path):
            raise InputError(path, "vanished", "symlink to a missing file") from None
        if listed:
            raise InputError(path, "vanished", "deleted or renamed after it was listed") from None
        return False
    if not stat.S_ISREG(st.st_mode):
        raise InputError(path, "not_a_file", _kind(st.st_mode))
    store.ensure(conn, SCHEMA)
    row = conn.execute(_CURSOR_SQL, (store.host(conn), consumer, str(Path(path).absolute()))).fetchone()
    if row is None or st.st_ino != row[0] or st.st_size != row[1]:
        return True
    if row[5] is not None and _rotated_inode(path) != row[5]:
        return True  # rotated since (a copytruncate can leave the same inode and size behind)
    # Same inode and size: unchanged, unless it was truncated and refilled to the same size.
    head, tail = bytes(row[3]), bytes(row[4] or b"")
    if not head and not tail:
        return False
    opened = open_input(path)
    if opened is None:
        return False
    fh, st = opened
    with fh:
        return not _holds(fh.fileno(), st.st_size, row[1], head, tail)


def _size(seg: _Segment) -> int:
    return os.fstat(seg.fh.fileno()).st_size


def _close(rotated: list[tuple[Path, BinaryIO, os.stat_result]]) -> None:
    for _, fh, _ in rotated:
        fh.close()


def _merge_copies(plan: list[_Segment], cursor_inode: int) -> list[_Segment]:
    """Drop a file that the next file in the plan holds whole (logrotate's `copy`: the file went
    on growing beside its copy), reading that next file from where the dropped one started.
    The cursor's own file is never a copy (it was renamed); another file whose bytes are all a
    prefix of the next one's is taken for a copy of it."""
    out: list[_Segment] = []
    for seg in plan:
        if out and out[-1].inode != cursor_inode:
            prev = out[-1]
            size = _size(prev)
            n = min(size, MARK)
            first, last = os.pread(prev.fh.fileno(), n, 0), os.pread(prev.fh.fileno(), n, size - n)
            if _holds(seg.fh.fileno(), _size(seg), size, first, last):
                out.pop().fh.close()
                seg.start = prev.start
        out.append(seg)
    return out


@dataclass
class _Segment:
    """One file to read in a run: opened, from `start`, with what the plan found out about it."""

    fh: BinaryIO
    start: int
    inode: int
    name: str
    last: bool = False  # the file later appends go to (nothing follows it in this run)
    resumed: bool = False  # the bytes before `start` were folded in bulk pieces (their marks are this file's)


T = TypeVar("T")


class _Scan:
    """What reading a range of a file keeps: the line and bad-line counters and the cursor's
    position and marks as the read goes (a Reader, or a Piece folded in bulk)."""

    remote = False  # True in a bulk fold's child process: derive, do not store
    path: Path
    chunk: int
    typed: Typed | None
    lines: int
    bad: Counter[str]
    _inode: int
    _offset: int
    _head: bytes
    _tail: bytes

    def count_bad(self, reason: str, n: int = 1) -> None:
        self.bad[reason] += n

    def batches(self) -> Iterator[list[Any]]:
        raise NotImplementedError

    def _read(self, seg: _Segment, stop: int | None = None) -> Iterator[list[Any]]:
        """Read one file from seg.start to its last newline (or to `stop`, just after a newline);
        the cursor ends there."""
        fd = seg.fh.fileno()
        start = pos = seg.start
        offset = start  # file position of the first byte not yet consumed (or dropped)
        carry = b""
        # >= 0 while inside a line longer than MAX_LINE: where that line began. Its head
        # is dropped as it streams by (bounded memory); it is counted, and the cursor
        # moves past it, only once its newline arrives, like any other partial line.
        skip_start = -1
        typed = self.typed
        self._inode, self._offset = seg.inode, start
        if start == 0:
            self._head = self._tail = b""
        elif seg.resumed:
            self._head = os.pread(fd, min(start, MARK), 0)
            self._tail = os.pread(fd, min(start, MARK), start - min(start, MARK))
        # The mark (head, tail) follows the offset chunk by chunk, so a consumer that stops
        # early (the pager's bounded slices) commits a cursor whose mark matches its offset.
        # os.pread, never the file offset: bulk pieces of the same open file are read at once.
        while True:
            size = self.chunk if stop is None else min(self.chunk, stop - pos)
            if size <= 0:
                break
            try:
                data = os.pread(fd, size, pos)
            except OSError as exc:
                raise InputError(self.path, "io_error", exc.strerror or str(exc)) from None
            if not data:
                break
            pos += len(data)
            cut = data.rfind(b"\n") + 1  # the consumed bytes end here in `data`
            if not cut:  # no newline in this chunk: the line goes on
                carry += data
                if len(carry) > MAX_LINE:
                    if skip_start < 0:
                        skip_start = offset
                    offset += len(carry)
                    carry = b""
                continue
            buf = carry + data[:cut] if carry else data[:cut]
            consumed = len(buf)
            carry = data[cut:]  # after the last newline: a partial line, or b""
            if skip_start >= 0:
                buf = buf[buf.find(b"\n") + 1 :]  # the tail of the oversized line
                skip_start = -1
                self.bad["too_long"] += 1
                self.lines += 1
            out = None if typed is None or not buf else typed.chunk(buf)
            if out is not None:
                self.lines += len(out)
            elif buf:
                out = self._decode(buf)
            offset += consumed
            self._offset = offset
            self._tail = (
                data[cut - MARK : cut] if cut >= MARK else os.pread(fd, min(offset, MARK), offset - min(offset, MARK))
            )
            if len(self._head) < MARK and len(self._head) < offset:
                self._head = os.pread(fd, min(offset, MARK), 0)
            if out:
                yield out
        end = skip_start if skip_start >= 0 else offset
        if not seg.last and stop is None and (carry or skip_start >= 0):
            # A rotated file that a newer one follows: its unfinished last line never ends.
            self.bad["too_long" if skip_start >= 0 else "unterminated"] += 1
            self.lines += 1
            end = offset + len(carry)
        if end != self._offset:
            self._head = os.pread(fd, min(end, MARK), 0)
            self._tail = os.pread(fd, min(end, MARK), end - min(end, MARK))
            self._offset = end

    def _decode(self, buf: bytes) -> list[dict[str, Any]]:
        """The objects among the lines of `buf` (whole lines), counted; bad ones counted by reason."""
        lines = buf.split(b"\n")
        lines.pop()  # after the last newline: nothing
        self.lines += len(lines)
        # Fast path, all in C: every line short, every line an object. One bad line
        # sends the chunk to the per-line path, which says why it is bad.
        if len(buf) <= MAX_LINE or max(map(len, lines), default=0) <= MAX_LINE:
            try:
                out = list(map(orjson.loads, lines))
            except orjson.JSONDecodeError:
                pass
            else:
                if set(map(type, out)) == _ONLY_DICT:
                    return out
        return self._parse_lines(lines)

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
                if not line.strip():
                    continue
                obj = _wide(line)
                if obj is _REFUSED:
                    self.bad[_classify(line)] += 1
                    continue
            if type(obj) is dict:
                out.append(obj)
            else:
                self.bad["not_object"] += 1
        return out


class Piece(_Scan):
    """Bytes [start, stop) of an open input, whole lines, folded apart from the rest (in another
    process when `remote`): `batches()` and `count_bad()` as on the Reader."""

    def __init__(self, scan: _Scan, seg: _Segment, start: int, stop: int):
        self.path, self.chunk, self.typed = scan.path, scan.chunk, scan.typed
        self.lines = 0
        self.bad = Counter()
        self._seg = _Segment(seg.fh, start, seg.inode, seg.name)
        self._stop = stop
        self._head = self._tail = b""

    def batches(self) -> Iterator[list[Any]]:
        return self._read(self._seg, self._stop)


class Reader(_Scan):
    """Incremental reader of one NDJSON file for one consumer.

    Iterate it for dicts (or `batches()` for lists of dicts, the fast path), then call
    `commit()` inside the transaction that stores the results. `bad` counts skipped lines
    by reason; `count_bad(reason)` lets a consumer add lines it rejects (missing fields).
    `events` says what the cursor noticed: "rotated" / "copytruncated" (the rest of the file
    it was in was found as `<name>.N` and read first), "rotated_missing" (a new file and the
    old one is gone), "truncated" / "replaced" (the file restarted, no copy of it found).

    `typed`: batches of msgspec structs where a chunk allows (see `Typed`), else dicts.
    `fold(fn)`: the same lines through `fn`, in several processes when there are many.
    """

    def __init__(self, conn: store.Conn, path: Path, consumer: str, *, chunk: int = CHUNK, typed: Typed | None = None):
        self.conn = conn
        self.path = Path(path)
        self.source = str(self.path.absolute())
        self.consumer = consumer
        self.chunk = chunk
        self.typed = typed
        self.lines = 0
        self.bad = Counter()
        self.events: list[str] = []
        self._prepared: list[_Segment] | None = None
        if not conn.in_transaction:
            # Two consumers reading the same cursor outside a write lock would both count
            # the same lines; inside BEGIN IMMEDIATE the second waits for the first.
            raise RuntimeError("ndjson.Reader must be created inside store.transaction()")
        store.ensure(conn, SCHEMA)
        self.host = store.host(conn)
        row = conn.execute(_CURSOR_SQL, (self.host, consumer, self.source)).fetchone()
        # no cursor yet (or one saved before the file ever existed): the whole file is new
        self._fresh = row is None or row[0] == 0
        self._inode: int = row[0] if row else 0
        self._offset: int = row[1] if row else 0
        self._size = row[2] if row else 0
        self._head = bytes(row[3]) if row else b""
        self._tail = bytes(row[4] or b"") if row else b""
        self._rotated_inode: int | None = row[5] if row else None

    @property
    def offset(self) -> int:
        return self._offset

    def _rotated(self) -> list[tuple[Path, BinaryIO, os.stat_result]]:
        """The rotated files beside `path` that may matter, newest first: <name>.1, <name>.2, ...
        up to the first gap, stopping after the one the cursor last saw as <name>.1 (older ones
        were there before the last read)."""
        found = []
        for n in range(1, MAX_ROTATED + 1):
            candidate = self.path.with_name(f"{self.path.name}.{n}")
            try:
                opened = open_input(candidate)
            except InputError as exc:
                self.events.append(f"{candidate.name} unreadable: {exc.reason}")
                continue
            if opened is None:
                break
            found.append((candidate, *opened))
            if self._rotated_inode and opened[1].st_ino == self._rotated_inode:
                break
        return found

    def _plan(self) -> list[_Segment]:
        """The files to read this run, oldest first; InputError when `path` cannot be read."""
        opened = open_input(self.path)
        current = None if opened is None else _Segment(opened[0], 0, opened[1].st_ino, self.path.name, last=True)
        if self._fresh:
            return [] if current is None else [current]
        offset, head, tail = self._offset, self._head, self._tail
        rotated = self._rotated()
        # Files rotated since the last read: newer than the one that was <name>.1 then.
        known = self._rotated_inode is not None
        new = [r for r in rotated if r[2].st_ino != self._rotated_inode] if known else []
        holder: int | None
        if (
            current is not None
            and current.inode == self._inode
            and _holds(current.fh.fileno(), _size(current), offset, head, tail)
        ):
            if offset > 0 or not new:
                # Still the same file (a `copy` rotation beside it changes nothing): read on.
                _close(rotated)
                current.start = offset
                return [current]
            holder = len(new) - 1  # nothing of it read yet, and rotated since: see _holder
        else:
            holder = self._holder(rotated, new)
        if holder is None:
            # The file the cursor was in is gone: read what was rotated since the last read, then `path`.
            if current is not None:
                if current.inode != self._inode:
                    self.events.append("rotated_missing")
                elif _size(current) < offset:
                    self.events.append("truncated")
                else:
                    self.events.append("replaced")
            _close(rotated[len(new) :])
            plan = [_Segment(fh, 0, st.st_ino, p.name) for p, fh, st in reversed(new)]
        else:
            _close(rotated[holder + 1 :])
            plan = [_Segment(fh, 0, st.st_ino, p.name) for p, fh, st in reversed(rotated[: holder + 1])]
            plan[0].start = offset
            moved = current is None or current.inode != self._inode
            self.events.append("rotated" if moved else "copytruncated")
        if current is not None:
            plan.append(current)
        plan = _merge_copies(plan, self._inode)
        if len(plan) > 1 and plan[-1] is current and _size(current) == 0 and plan[-2].inode == self._inode:
            # Renamed away and nothing in the new file yet: the writer may still be appending
            # to the old one (until it reopens its log), so the cursor stays there for now.
            plan.pop().fh.close()
        if plan:
            plan[-1].last = True
        return plan

    def _holder(self, rotated: list[tuple[Path, BinaryIO, os.stat_result]], new: list) -> int | None:
        """Index in `rotated` of the file the cursor was in (renamed away, or a copy taken
        before `path` was truncated), or None when it is not there."""
        offset, head, tail = self._offset, self._head, self._tail
        holding = [i for i, (_, fh, st) in enumerate(rotated) if _holds(fh.fileno(), st.st_size, offset, head, tail)]
        renamed = next((i for i in holding if rotated[i][2].st_ino == self._inode), None)
        if offset > 0:
            # Renamed, or else the newest copy holding the bytes around the cursor (older copies
            # of the same file hold nothing past the cursor that this one lacks).
            return renamed if renamed is not None else (holding[0] if holding else None)
        # Nothing of it was read: every file rotated since is unread, the oldest first (a
        # copytruncate copy of the cursor's file can be older than the file itself).
        found = [i for i in (renamed, len(new) - 1 if new else None) if i is not None]
        return max(found) if found else None

    def batches(self) -> Iterator[list[Any]]:
        """Yield lists of parsed objects, one list per chunk read, advancing the cursor."""
        plan = self._prepared if self._prepared is not None else self._plan()
        self._prepared = None
        try:
            for seg in plan:
                yield from self._read(seg)
        finally:
            for seg in plan:
                seg.fh.close()
        try:
            self._size = os.stat(self.path).st_size
        except OSError:
            self._size = 0

    def fold(self, fn: Callable[[_Scan], T], *, bulk_bytes: int, processes: int = 1) -> list[T]:
        """`fn(scan)` over every new line: `scan` has `batches()`, `count_bad()` and `remote`.

        With at least `bulk_bytes` new bytes and `processes` > 1, the new lines (up to the last
        newline of each file) are cut into `processes` pieces of whole lines; `fn` folds each
        piece, all but one in forked children (`remote` is True there: `fn` must return what it
        derived, not store it), then the rest of each file (the partial last line, what was
        appended meanwhile) here, through this Reader, which keeps the cursor's marks. Results
        come back in file order, the rest's last; the counters of every piece are added to
        this Reader's. Otherwise it is `[fn(self)]`. Either way `commit()` afterwards.
        """
        plan = self._plan()
        pieces: list[Piece] = []
        try:
            total = sum(max(0, _size(seg) - seg.start) for seg in plan)
            if processes > 1 and total >= bulk_bytes:
                for seg in plan:
                    fd = seg.fh.fileno()
                    end = bulk.line_end(fd, seg.start, _size(seg))
                    n = max(1, round(processes * (end - seg.start) / total))
                    pieces += [Piece(self, seg, a, b) for a, b in bulk.split(fd, seg.start, end, n)]
                    if end > seg.start:
                        seg.start, seg.resumed = end, True
        except BaseException:
            for seg in plan:
                seg.fh.close()
            raise
        self._prepared = plan
        if not pieces:
            return [fn(self)]
        results = []
        try:
            for piece, result in bulk.fan_out(pieces, fn, lambda: fn(self)):
                if piece is not None:
                    self.lines += piece.lines
                    self.bad.update(piece.bad)
                results.append(result)
        finally:
            for seg in plan:
                seg.fh.close()
        return results

    def __iter__(self) -> Iterator[dict[str, Any]]:
        # chain runs in C: no generator frame resumed per object (about 10% of a tick's time)
        return chain.from_iterable(self.batches())

    def commit(self, now: float | None = None) -> None:
        """Save the cursor (call inside the transaction that stores what was derived)."""
        self.conn.execute(
            'INSERT INTO cursors(host, consumer, source, inode, "offset", size, lines, bad, updated_at, head) '
            "VALUES(?,?,?,?,?,?,?,?,?,?) ON CONFLICT(host, consumer, source) DO UPDATE SET "
            'inode=excluded.inode, "offset"=excluded."offset", size=excluded.size, head=excluded.head, '
            "lines=cursors.lines+excluded.lines, bad=cursors.bad+excluded.bad, updated_at=excluded.updated_at",
            (
                self.host,
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
        # `rotated`: what is older than this was there before and read (or older than the cursor).
        # The cursor in `path`: <name>.1. The cursor still in a rotated file (it stopped early, or
        # waits for the new file to get data): that file, as every newer one is unread.
        try:
            in_path = os.stat(self.path).st_ino == self._inode
        except OSError:
            in_path = False
        rotated = _rotated_inode(self.path) if in_path else self._inode
        self.conn.execute(
            "INSERT INTO cursor_marks(host, consumer, source, tail, rotated) VALUES(?,?,?,?,?) "
            "ON CONFLICT(host, consumer, source) DO UPDATE SET tail=excluded.tail, rotated=excluded.rotated",
            (self.host, self.consumer, self.source, self._tail, rotated),
        )
