"""The scheduler: runs the jobs of `schedule.cron` (crontab syntax, `crontab`) as subprocesses
with no overlap, timeouts and misfire-once (`loop`); `runner` holds the entry points.

Interface: `run`, `run_once`, `check`, `list_jobs`, `leadership` (GET /healthz), `last_successes`
(for GET /metrics). Several instances on one PostgreSQL store elect one leader (`lease`).
"""

from echoops.core.scheduler.loop import DEFAULT_GRACE_S, LOG_NAME, SCHEMA, Scheduler
from echoops.core.scheduler.runner import check, last_successes, leadership, list_jobs, run, run_once

__all__ = [
    "DEFAULT_GRACE_S",
    "LOG_NAME",
    "SCHEMA",
    "Scheduler",
    "check",
    "leadership",
    "last_successes",
    "list_jobs",
    "run",
    "run_once",
]
