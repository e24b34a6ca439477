"""Celery on a Redis broker as the source (SCALE_QUEUE_SOURCE=celery).

Depth: the broker's lists, read the way kombu's Redis transport sizes a queue
(`Channel._size`): for each queue in SCALE_QUEUES (default "celery") the list named after
the queue (priority 0) plus one list per priority step, named queue + "\\x06\\x16" + step
(kombu's `sep` and `_q_for_pri`). kombu's default steps are 0, 3, 6 and 9; every step 1-9
is read, so custom `priority_steps` within 0-9 are counted too. Messages a worker has
already reserved (kombu's `unacked` hash) are not waiting and are not counted. A
`global_keyprefix` transport option is not supported.

Workers and completions: Celery's own inspect API (`app.control.inspect(timeout).stats()`,
a broadcast over the broker that every worker answers), when the `celery` package is
installed and a worker answers within SCALE_SOURCE_TIMEOUT_S. workers = the workers that
answered; completions = the growth of each worker's `total` (tasks it accepted, per task
name, since it started) since the previous sample. Without an answer the sample says so
(`estimate`) and carries no workers or completions: echoops keeps the workers it knew and
the forecaster derives arrivals from the depth change and the throughput it has measured.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from echoops.core.scale.sources.reading import Reading

if TYPE_CHECKING:
    from redis import Redis

    from echoops.core.config import Settings

SEP = "\x06\x16"  # kombu.transport.redis.Channel.sep
STEPS = range(1, 10)


def check(s: Settings) -> None:  # noqa: ARG001 - every setting has a usable default
    return None


def queue_names(s: Settings) -> tuple[str, ...]:
    return s.scale_queues or ("celery",)


def list_keys(name: str) -> list[str]:
    """The broker lists of queue `name`: the queue itself and its priority sub-queues."""
    return [name] + [f"{name}{SEP}{step}" for step in STEPS]


def depth(client: Redis, names: tuple[str, ...]) -> tuple[int, dict[str, int]]:
    pipe = client.pipeline(transaction=False)
    keys = [key for name in names for key in list_keys(name)]
    for key in keys:
        pipe.llen(key)
    lengths = [int(n) for n in pipe.execute()]
    per_queue = {name: sum(lengths[i * 10 : i * 10 + 10]) for i, name in enumerate(names)}
    return sum(lengths), per_queue


def inspect_stats(s: Settings) -> tuple[dict[str, Any] | None, str]:
    """({worker: stats}, "") from Celery's inspect API, or (None, why not)."""
    timeout = s.scale_source_timeout_s
    try:
        from celery import Celery  # lazy: ~0.3 s; only the celery source with celery installed uses it
    except ImportError:
        return None, "celery is not installed here (pip install 'echoops[celery]')"
    app = Celery("echoops-sample", broker=s.scale_redis_url, set_as_current=False)
    app.conf.broker_connection_timeout = timeout
    app.conf.broker_connection_retry_on_startup = False
    app.conf.broker_connection_max_retries = 0
    try:
        replies = app.control.inspect(timeout=timeout).stats()
    except Exception as exc:  # kombu's errors are not redis-py's: any failure here means no answer
        return None, f"Celery inspect failed ({type(exc).__name__})"
    finally:
        app.close()
    if not replies:
        return None, f"no Celery worker answered inspect within {timeout:g}s"
    return replies, ""


def read(client: Redis, s: Settings, prev: dict[str, Any]) -> tuple[Reading, dict[str, Any]]:
    names = queue_names(s)
    total, per_queue = depth(client, names)
    extra: dict[str, Any] = {"queues": per_queue}
    stats, why = inspect_stats(s)
    if stats is None:
        extra["estimate"] = f"{why}: workers and completions estimated from depth deltas"
        return Reading(total, None, extra=extra), {"depth": total}
    accepted = {name: sum((info.get("total") or {}).values()) for name, info in stats.items()}
    extra["concurrency"] = sum(int((info.get("pool") or {}).get("max-concurrency") or 0) for info in stats.values())
    state = {"depth": total, "accepted": accepted}
    if "accepted" not in prev:
        return Reading(total, len(stats), extra=extra), state
    before: dict[str, int] = prev["accepted"]
    completed = sum(max(0, n - before.get(name, 0)) for name, n in accepted.items())
    arrivals = max(0, total - prev["depth"] + completed)
    return Reading(total, len(stats), completed, arrivals, extra), state
