"""Predictive autoscale (phase 80).

Queue samples feed a forecaster (`forecast`); `policy` sizes the worker pool from backlog,
forecast arrivals and measured throughput within bounds, tolerance and cooldown; `autoscaler`
runs the tick, holds on the deploy gate, and actuates `SCALE_CMD` outside dry run;
`backtest` replays a queue history through the same policy and a reactive baseline.

`sampler` reads a Redis/RQ/Celery queue (`sources/`) into queue.ndjson once a minute.

Interface: `sample`, `tick`, `status`, `apply`, `simulate`. Each name loads its module on first
use: `scale sample` runs every minute and needs the sampler, not the forecaster, the backtest,
the pager or the SLO (about 0.1 s of imports).
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from echoops.core.scale.autoscaler import ActuatorFailed, apply, apply_options, ingest, status, tick
    from echoops.core.scale.backtest import simulate
    from echoops.core.scale.sampler import sample
    from echoops.core.scale.sources import SourceUnavailable

_HOME = {
    "ActuatorFailed": "autoscaler",
    "apply": "autoscaler",
    "apply_options": "autoscaler",
    "ingest": "autoscaler",
    "status": "autoscaler",
    "tick": "autoscaler",
    "simulate": "backtest",
    "sample": "sampler",
    "SourceUnavailable": "sources",
}


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module 'echoops.core.scale' has no attribute {name!r}")
    value = getattr(import_module(f"echoops.core.scale.{home}"), name)
    globals()[name] = value
    return value


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
