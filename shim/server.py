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
        "worker_class": "sync",
        "timeout": 30,
        "graceful_timeout": 10,
        "keepalive": 2,
        "accesslog": None,
        "errorlog": "-",
        "loglevel": "warning",
        "post_fork": post_fork,
        "proc_name": "echoops",
    }
