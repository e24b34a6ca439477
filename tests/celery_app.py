"""The Celery app the Celery source test runs a real worker for (`celery -A tests.celery_app worker`).

The broker is the test's redis-server, from CELERY_BROKER_URL in the worker's environment.
"""

from __future__ import annotations

import os
import time

from celery import Celery

app = Celery("tests", broker=os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0"))
app.conf.worker_hijack_root_logger = False


@app.task(name="tests.celery_app.work")
def work(seconds: float = 0.05) -> int:
    time.sleep(seconds)
    return 1
