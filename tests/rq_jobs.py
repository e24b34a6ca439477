"""Jobs the RQ tests enqueue by name (`tests.rq_jobs.work`): RQ workers import them from here."""

from __future__ import annotations

import time


def work(seconds: float = 0.05) -> int:
    """A job that takes `seconds` (the closed-loop test's ~50 ms unit of work)."""
    time.sleep(seconds)
    return 1


def fail() -> None:
    raise RuntimeError("this job fails on purpose")
