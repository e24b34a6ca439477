"""Plain Redis lists as the queue (SCALE_QUEUE_SOURCE=redis): depth = sum of LLEN over SCALE_REDIS_KEYS.

A list shows only what waits: the workers and completions are not in Redis, so the sample
carries the workers echoops knows (the last applied count, else the last sample's), and the
forecaster derives arrivals from the depth change plus what those workers finish (see
core/scale/forecast.py). A key that does not exist is an empty queue (LLEN answers 0); a key
of another type is an error (WRONGTYPE), reported as the source being unreadable.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from echoops.core.errors import NotConfigured
from echoops.core.scale.sources.reading import Reading

if TYPE_CHECKING:
    from redis import Redis

    from echoops.core.config import Settings


def check(s: Settings) -> None:
    if not s.scale_redis_keys:
        raise NotConfigured("SCALE_QUEUE_SOURCE=redis needs SCALE_REDIS_KEYS (the list keys, comma-separated)")


def read(client: Redis, s: Settings, prev: dict[str, Any]) -> tuple[Reading, dict[str, Any]]:  # noqa: ARG001
    pipe = client.pipeline(transaction=False)
    for key in s.scale_redis_keys:
        pipe.llen(key)
    lengths = pipe.execute()
    depth = sum(int(n) for n in lengths)
    per_key = dict(zip(s.scale_redis_keys, (int(n) for n in lengths), strict=True))
    return Reading(depth, None, extra={"keys": per_key}), {}
