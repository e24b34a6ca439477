"""The scheduler: runs the jobs of `schedule.cron` (crontab syntax, `crontab`) as subprocesses
with no overlap, timeouts and misfire-once (`loop`); `runner` holds the entry points.

Interface: `run`, `run_once`, `check`, `list_jobs`, `last_successes` (for GET /metrics).
"""

from echoops.core.scheduler.loop import DEFAULT_GRACE_S, LOG_NAME, SCHEMA, Scheduler
from echoops.core.scheduler.runner import check, last_successes, list_jobs, run, run_once

__all__ = [
    "DEFAULT_GRACE_S",
    "LOG_NAME",
    "SCHEMA",
    "Scheduler",
    "check",
    "last_successes",
    "list_jobs",
    "run",
    "run_once",
]
