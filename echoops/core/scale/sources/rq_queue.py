"""RQ queues as the source (SCALE_QUEUE_SOURCE=rq), read through RQ's public API (rq 2.x/3.x).

Per queue in SCALE_QUEUES (default "default"), with RQ's key names (RQ_KEY_PREFIX "rq"):
- depth: `Queue.count`, LLEN of `rq:queue:<name>`.
- in progress: `StartedJobRegistry.get_job_count(cleanup=False)`, ZCARD of `rq:wip:<name>`.
- completions: jobs new to `FinishedJobRegistry` / `FailedJobRegistry` (`rq:finished:<name>`,
  `rq:failed:<name>`, sorted sets scored by expiry) since the previous sample, by job id
  (`get_job_ids(cleanup=False)`: read only). A registry forgets a job after its result TTL
  (500 s by default) and never holds jobs run with result_ttl=0, so this is a lower bound; so
  is the other count, the growth of the workers' own `successful_job_count` +
  `failed_job_count` (lost when a worker exits between samples). The sample takes the larger.
  A registry over MAX_REGISTRY_IDS ids is not listed (the worker counters alone are used).
- workers: `Worker.all(queue=...)` for each queue, each worker once; busy = state "busy",
  idle = "idle" or "started". RQ drops a worker whose key expired (no heartbeat) while
  listing, as its own `rq info` does.
- arrivals: depth change + change in progress + completions (what left the queue and what
  stayed), when there is a previous sample.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from echoops.core.scale.sources.reading import Reading

if TYPE_CHECKING:
    from redis import Redis

    from echoops.core.config import Settings

MAX_REGISTRY_IDS = 50_000


def check(s: Settings) -> None:  # noqa: ARG001 - every setting has a usable default
    return None


def queue_names(s: Settings) -> tuple[str, ...]:
    return s.scale_queues or ("default",)


def read(client: Redis, s: Settings, prev: dict[str, Any]) -> tuple[Reading, dict[str, Any]]:
    # lazy: rq imports in ~30 ms on top of redis; only the rq source needs it
    from rq import Queue, Worker
    from rq.registry import FailedJobRegistry, FinishedJobRegistry, StartedJobRegistry

    depth = wip = 0
    done_ids: dict[str, list[str]] = {}
    new_by_registry = 0
    registry_complete = True
    workers: dict[str, Any] = {}
    prev_ids = prev.get("ids") or {}
    for name in queue_names(s):
        q = Queue(name, connection=client)
        depth += q.count
        wip += StartedJobRegistry(queue=q).get_job_count(cleanup=False)
        for registry in (FinishedJobRegistry(queue=q), FailedJobRegistry(queue=q)):
            if registry.get_job_count(cleanup=False) > MAX_REGISTRY_IDS:
                registry_complete = False
                continue
            ids = registry.get_job_ids(cleanup=False)
            done_ids[registry.key] = ids
            seen = set(prev_ids.get(registry.key, ()))
            new_by_registry += sum(1 for i in ids if i not in seen)
        for w in Worker.all(queue=q):
            workers[w.name] = w
    counts = {n: w.successful_job_count + w.failed_job_count for n, w in workers.items()}
    prev_counts: dict[str, int] = prev.get("worker_jobs") or {}
    new_by_workers = sum(max(0, c - prev_counts.get(n, 0)) for n, c in counts.items())
    states = [w.get_state() for w in workers.values()]
    extra: dict[str, Any] = {
        "in_progress": wip,
        "busy": sum(1 for st in states if st == "busy"),
        "idle": sum(1 for st in states if st in ("idle", "started")),
    }
    state = {"ids": done_ids, "worker_jobs": counts, "depth": depth, "wip": wip}
    if "depth" not in prev:
        return Reading(depth, len(workers), extra=extra), state
    completed = max(new_by_registry if registry_complete else 0, new_by_workers)
    arrivals = max(0, depth - prev["depth"] + wip - prev["wip"] + completed)
    extra["completed_registries"] = new_by_registry if registry_complete else None
    extra["completed_workers"] = new_by_workers
    return Reading(depth, len(workers), completed, arrivals, extra), state
