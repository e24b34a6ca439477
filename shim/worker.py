"""The gunicorn worker `echoops serve` runs: gthread plus a deadline for reading each request.

A sync worker is held by one slow client until the worker timeout (30 s): two clients sending
a partial body stalled a 2-worker server. The threaded worker keeps accepting and answering on
its other threads while a client is slow; what it lacks is a bound on how long a thread waits
for a request's bytes (gunicorn has none for gthread). Here each request gets
ECHOOPS_REQUEST_READ_TIMEOUT_S from the moment a thread takes its connection until the app
holds the whole body (`shim.app.RequestBody` reads it, at most 64 KiB, and disarms the
deadline). Past the deadline the connection's read side is shut down: the blocked read
returns, a late body is answered 408 and a request whose headers never finished is closed.
One watchdog thread per worker process checks the armed deadlines a few times a second.
"""

from __future__ import annotations

import os
import socket
import threading
import time

from gunicorn.workers.gthread import ThreadWorker

from echoops.core import config

TICK_S = 0.1
STOP_LINGER_S = 0.2  # idle keep-alive connections a stopping worker keeps open (gunicorn: 2 s)


class Watchdog:
    """Deadlines for sockets still being read; shuts the read side of the ones that pass them."""

    def __init__(self) -> None:
        self._armed: dict[int, tuple[float, socket.socket]] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._busy = threading.Event()  # set while anything is armed: an idle worker's thread sleeps

    def arm(self, sock: socket.socket, timeout_s: float) -> None:
        with self._lock:
            self._armed[id(sock)] = (time.monotonic() + timeout_s, sock)
            self._ensure_thread()
        self._busy.set()

    def disarm(self, sock: socket.socket | None) -> None:
        if sock is not None:
            with self._lock:
                self._armed.pop(id(sock), None)

    def deadline(self, sock: socket.socket | None) -> float | None:
        """When `sock`'s read deadline passes (time.monotonic()), or None when it is not armed."""
        entry = self._armed.get(id(sock)) if sock is not None else None
        return entry[0] if entry else None

    def _ensure_thread(self) -> None:
        # one thread per worker process, started on first use (after the fork)
        if self._thread is None or self._pid != os.getpid() or not self._thread.is_alive():
            self._pid = os.getpid()
            self._thread = threading.Thread(target=self._loop, name="echoops-read-deadline", daemon=True)
            self._thread.start()

    def _loop(self) -> None:
        while True:
            self._busy.wait()
            time.sleep(TICK_S)
            now = time.monotonic()
            with self._lock:
                late = [(k, sock) for k, (deadline, sock) in self._armed.items() if deadline <= now]
                for k, _ in late:
                    self._armed.pop(k, None)
                if not self._armed:
                    # an arm() after this sees its entry in the dict before it sets the event
                    self._busy.clear()
            for _, sock in late:
                try:
                    sock.shutdown(socket.SHUT_RD)  # wakes the thread blocked in recv() with EOF
                except OSError:
                    pass  # already closed


WATCHDOG = Watchdog()


def read_timeout_s() -> float:
    return float(config.settings().request_read_timeout_s)


class ReadDeadlineWorker(ThreadWorker):
    """gunicorn's gthread worker with a per-request read deadline (see the module docstring),
    serving with the settings it was forked with (config.pin)."""

    def init_process(self):
        config.pin(config.settings())  # this worker's environment no longer changes
        super().init_process()

    def handle(self, conn):
        sock = conn.sock
        WATCHDOG.arm(sock, read_timeout_s())
        try:
            return super().handle(conn)
        finally:
            WATCHDOG.disarm(sock)

    def _cap_keepalive(self, deadline):
        # On stop, gunicorn keeps idle keep-alive sockets up to 2 s for a request that may be on
        # its way; an idle client simply reconnects, and `echoops up` / a deploy should not wait.
        cap = getattr(super(), "_cap_keepalive", None)
        if cap is not None:
            cap(min(deadline, time.monotonic() + STOP_LINGER_S))
