"""Queue sources `echoops scale sample` reads (SCALE_QUEUE_SOURCE), one module per kind.

- redis_list: plain Redis lists (SCALE_REDIS_KEYS); depth = sum of LLEN, as KEDA's Redis
  list scaler reads it. Workers and completions are not visible in a list.
- rq_queue: RQ queues (SCALE_QUEUES, default "default"), read through RQ's public API.
- celery_queue: Celery on a Redis broker (SCALE_QUEUES, default "celery"): the queue lists
  including kombu's priority sub-queues, workers and completions from Celery's inspect API.

Each `read(client, s, prev)` returns a Reading and the state to keep for the next read
(counters the next completions are a difference of). The `redis` client is imported here,
lazily: `echoops` without the `redis` extra, and every command that is not `scale sample`
with a Redis source, never loads it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from echoops.core.errors import NotConfigured
from echoops.core.scale.sources.reading import Reading, SourceUnavailable, safe_url

if TYPE_CHECKING:
    from redis import Redis

    from echoops.core.config import Settings

__all__ = ["Reading", "SourceUnavailable", "connect", "read", "safe_url"]


def connect(s: Settings) -> Redis:
    """A redis-py client for SCALE_REDIS_URL with SCALE_SOURCE_TIMEOUT_S for connect and reads."""
    try:
        import redis  # lazy: ~60-100 ms; only Redis-backed sources need it
    except ImportError:
        raise NotConfigured(
            f"SCALE_QUEUE_SOURCE={s.scale_queue_source} needs the redis client: pip install 'echoops[redis]'"
        ) from None
    if not s.scale_redis_url:
        raise NotConfigured(f"SCALE_QUEUE_SOURCE={s.scale_queue_source} needs SCALE_REDIS_URL")
    timeout = s.scale_source_timeout_s
    return redis.Redis.from_url(
        s.scale_redis_url, socket_timeout=timeout, socket_connect_timeout=timeout, decode_responses=False
    )


def read(s: Settings, prev: dict[str, Any]) -> tuple[Reading, dict[str, Any]]:
    """Read the configured source once; SourceUnavailable when Redis cannot be reached or read."""
    # lazy: each source module pulls in its client library (redis, rq, celery)
    from echoops.core.scale.sources import celery_queue, redis_list, rq_queue

    module = {"redis": redis_list, "rq": rq_queue, "celery": celery_queue}[s.scale_queue_source]
    module.check(s)
    client = connect(s)
    import redis  # lazy: connect() has imported it already; only its exception classes are needed

    try:
        return module.read(client, s, prev)
    except (redis.RedisError, OSError) as exc:
        where = safe_url(s.scale_redis_url or "")
        raise SourceUnavailable(f"{s.scale_queue_source} source at {where}: {_why(exc)}") from None
    finally:
        client.close()


def _why(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
