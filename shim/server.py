"""gunicorn settings for `echoops serve` (served through Bottle's gunicorn adapter)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from echoops.core import store
from echoops.core.config import Settings


def gunicorn_options(s: Settings, workers: int, hooks: Iterable[Callable[[Settings], object]] = ()) -> dict:
    """Options for `bottle.run(server="gunicorn")`; each of `hooks` (shim.app.POST_FORK) runs in
    every worker after fork, with `s`."""
    hooks = tuple(hooks)

    def post_fork(server, worker):  # noqa: ARG001 (gunicorn's hook signature)
        store.close_all()  # never share a SQLite connection across fork
        for hook in hooks:
            hook(s)

    return {
        "workers": workers,
        # threads, so a slow client holds one thread, not the worker; reads have a deadline
        "worker_class": "shim.worker.ReadDeadlineWorker",
        "threads": s.threads,
        "timeout": 30,
        "graceful_timeout": 10,
        # Idle keep-alive connections wait in the poller, not in a thread. Longer than common
        # client pool expiries (httpx: 5 s), so a client never reuses a socket the server is
        # closing at that moment; short enough that idle sockets do not pile up.
        "keepalive": 15,
        "accesslog": None,
        "errorlog": "-",
        "loglevel": "warning",
        "post_fork": post_fork,
        "proc_name": "echoops",
    }
