"""Predictive autoscale (phase 80).

Queue samples feed a forecaster (`forecast`); `policy` sizes the worker pool from backlog,
forecast arrivals and measured throughput within bounds, tolerance and cooldown; `autoscaler`
runs the tick, holds on the deploy gate, and actuates `SCALE_CMD` outside dry run;
`backtest` replays a queue history through the same policy and a reactive baseline.

`sampler` reads a Redis/RQ/Celery queue (`sources/`) into queue.ndjson once a minute.

Interface: `sample`, `tick`, `status`, `apply`, `simulate`.
"""

from echoops.core.scale.autoscaler import ActuatorFailed, apply, apply_options, ingest, status, tick
from echoops.core.scale.backtest import simulate
from echoops.core.scale.sampler import sample
from echoops.core.scale.sources import SourceUnavailable

__all__ = [
    "ActuatorFailed",
    "SourceUnavailable",
    "apply",
    "apply_options",
    "ingest",
    "sample",
    "simulate",
    "status",
    "tick",
]
