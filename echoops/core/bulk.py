"""Bulk ingest on every core: a large range of new input split at line boundaries, its pieces
folded in forked processes at once, the partial results handed back to the parent.

Used by `ndjson.Reader.fold` when a tick finds more than `Settings.ingest_bulk_bytes` of new
input (ECHOOPS_INGEST_BULK_MB, 32 MiB by default). The consumers' aggregates are sums (counts,
token totals, latency sketches), so folding the pieces apart and adding the results is exact.

Why fork and not a pool: a forked child starts in about a millisecond with every module already
imported and the open input files already open (it reads them with `os.pread`, which leaves the
parent's file offsets alone); a spawned worker would pay the interpreter and the imports again
(0.2 s). A child never touches the store: it returns its result through a pipe and exits with
`os._exit`; the parent writes everything in its one transaction, so the cursor moves only when
all of it is committed. Forking is only done from a single-threaded process (a CLI tick, the
scheduler's jobs); a threaded server worker folds in one process.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

# Bytes per pread when looking for a line boundary.
_SCAN = 64 * 1024

T = TypeVar("T")


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask; `os.cpu_count()` where that is not known)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def processes(setting: int) -> int:
    """How many processes a bulk fold uses: `setting` (ECHOOPS_INGEST_PROCESSES), 0 meaning every
    available CPU; 1 when this process cannot fork safely (other threads are running)."""
    if not hasattr(os, "fork") or threading.active_count() > 1:
        return 1
    return setting if setting > 0 else available_cpus()


def line_end(fd: int, start: int, stop: int) -> int:
    """Position just after the last newline in bytes [start, stop) of `fd`, or `start` when there is none."""
    pos = stop
    while pos > start:
        size = min(_SCAN, pos - start)
        i = os.pread(fd, size, pos - size).rfind(b"\n")
        if i >= 0:
            return pos - size + i + 1
        pos -= size
    return start


def _next_boundary(fd: int, pos: int, stop: int) -> int:
    """Position just after the first newline at or after `pos` (at most `stop`)."""
    while pos < stop:
        block = os.pread(fd, min(_SCAN, stop - pos), pos)
        if not block:
            return stop
        i = block.find(b"\n")
        if i >= 0:
            return pos + i + 1
        pos += len(block)
    return stop


def split(fd: int, start: int, stop: int, pieces: int) -> list[tuple[int, int]]:
    """[start, stop) (which ends just after a newline) cut into about `pieces` ranges of whole
    lines, in file order; a line longer than a piece makes fewer pieces, never a cut line."""
    bounds = [start]
    for k in range(1, pieces):
        at = _next_boundary(fd, max(bounds[-1], start + (stop - start) * k // pieces), stop)
        if bounds[-1] < at < stop:
            bounds.append(at)
    bounds.append(stop)
    return [(a, b) for a, b in zip(bounds, bounds[1:], strict=False) if b > a]


def fan_out(pieces: Sequence[Any], fold: Callable[[Any], T], rest: Callable[[], T]) -> list[tuple[Any, T]]:
    """Run `fold(piece)` for every piece, all but the first in forked children, then `rest()` here.

    Returns [(piece, result)] for the pieces in order, then (None, rest's result). A child
    marks its piece `remote = True` (it must not write anything but its result) and sends back
    the result with the piece's counters (`lines`, `bad`), which are copied onto the parent's
    piece. An exception in a child is raised here (InputError and other picklable errors as
    themselves); the children of a failed fan-out are killed.
    """
    import pickle  # noqa: F401  # lazy: 8 ms, only for a backlog folded in processes (children use it)

    children: list[tuple[int, int, Any]] = []
    try:
        for piece in pieces[1:]:
            r, w = os.pipe()
            pid = os.fork()
            if pid == 0:  # pragma: no cover - the child's side, measured by coverage's fork patch
                os.close(r)
                _child(piece, fold, w)
            os.close(w)
            children.append((pid, r, piece))
        out: list[tuple[Any, T]] = []
        if pieces:
            out.append((pieces[0], fold(pieces[0])))
        done = rest()
        while children:
            pid, r, piece = children.pop(0)
            out.append((piece, _collect(pid, r, piece)))
        out.append((None, done))
        return out
    finally:
        for pid, r, _ in children:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            os.waitpid(pid, 0)
            os.close(r)


def _child(piece: Any, fold: Callable[[Any], Any], w: int) -> None:  # pragma: no cover - runs in the child
    import pickle  # lazy: imported by fan_out before the fork

    code = 0
    try:
        try:
            piece.remote = True
            payload = pickle.dumps(("ok", fold(piece), piece.lines, dict(piece.bad)), pickle.HIGHEST_PROTOCOL)
        except BaseException as exc:  # noqa: BLE001 - everything goes back to the parent
            try:
                payload = pickle.dumps(("error", exc), pickle.HIGHEST_PROTOCOL)
            except Exception:
                payload = pickle.dumps(("error", RuntimeError(f"{type(exc).__name__}: {exc}")))
        view = memoryview(payload)
        while view:
            view = view[os.write(w, view) :]
    except BaseException:
        code = 1
    finally:
        os._exit(code)


def _collect(pid: int, r: int, piece: Any) -> Any:
    """Read a child's answer to the end, reap it, and return its result (or raise its error)."""
    parts = []
    try:
        while True:
            data = os.read(r, 1 << 20)
            if not data:
                break
            parts.append(data)
    finally:
        os.close(r)  # a child still writing gets EPIPE and exits
        _, status = os.waitpid(pid, 0)
    if not parts:
        raise RuntimeError(f"a bulk ingest process ended without an answer (wait status {status})")
    import pickle  # lazy: imported by fan_out already

    answer = pickle.loads(b"".join(parts))
    if answer[0] == "error":
        raise answer[1]
    _, result, lines, bad = answer
    piece.lines = lines
    piece.bad.update(bad)
    return result
