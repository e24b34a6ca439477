"""gunicorn settings for `echoops serve` (served through Bottle's gunicorn adapter)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from gunicorn.glogging import Logger

from echoops.core import store
from echoops.core.config import Settings

# time, client, request line, status, bytes, duration: what an operator reads; no headers, so
# no X-Dash-Key, and no user agent or referrer (a referrer may carry a link's token).
ACCESS_LOG_FORMAT = '%(t)s %(h)s "%(r)s" %(s)s %(b)s %(M)sms'
_TOKEN = re.compile(r"(?i)((?:^|[?&;])token=)[^&;\s\"]*")
_REDACTED_ATOMS = ("r", "q", "f", "U")


def redact_query(text: str) -> str:
    """`text` with every `token=` value replaced: a signed portal link is a credential."""
    return _TOKEN.sub(r"\1<redacted>", text)


class AccessLogger(Logger):
    """gunicorn's logger; access lines never carry a portal token or a request header."""

    def atoms(self, resp, req, environ, request_time):
        atoms = super().atoms(resp, req, environ, request_time)
        for name in _REDACTED_ATOMS:
            if isinstance(atoms.get(name), str):
                atoms[name] = redact_query(atoms[name])
        # headers ({name}i) and the WSGI environ ({name}e) hold X-Dash-Key: never loggable
        return {k: v for k, v in atoms.items() if not (k.startswith("{") and k[-1:] in ("i", "e"))}


def gunicorn_options(
    s: Settings, workers: int, hooks: Iterable[Callable[[Settings], object]] = (), *, access_log: bool = False
) -> dict:
    """Options for `bottle.run(server="gunicorn")`; each of `hooks` (shim.app.POST_FORK) runs in
    every worker after fork, with `s`. `access_log`: one line per request on stdout."""
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
        "accesslog": "-" if access_log else None,
        "access_log_format": ACCESS_LOG_FORMAT,
        "logger_class": AccessLogger,
        "errorlog": "-",
        "loglevel": "warning",
        "post_fork": post_fork,
        "proc_name": "echoops",
    }
