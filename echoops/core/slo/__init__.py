"""SLOs and error budgets (phase 76).

Request logs are ingested incrementally into per-minute aggregates with a latency sketch
(`aggregates`, `sketch`), or, with SLO_SOURCE=prometheus, the same figures come from PromQL
(`prometheus`, over `promql`), behind one interface (`sources`); each tick computes p95/p99,
error rate, burn over eight windows, the alert tiers and a red/yellow/green state (`rules`),
writes `slo_status.json`, and sets the deploy gate after a full 2h of burn over 2x, unless an operator's override stands
(`deploy_gate`). `document` builds the status from a source's figures; `budget` runs the
tick (keeping the last good status, marked stale, when the source cannot answer) and serves
status.

Interface to the other controls: `tick`, `status` (`status_snapshot`: the same, cached per
process until what it is made of changes, with an ETag), `rebaseline`, `recent_p95_ms` (the
autoscaler's latency signal) and the deploy gate (`gate`, `clear_gate`, `require_gate_open`,
`gate_path`): the autoscaler refuses to scale up while the gate is set.
"""

from echoops.core.slo.budget import (
    STATUS_FILE,
    StatusSnapshot,
    compute,
    ingest,
    rebaseline,
    recent_p95_ms,
    status,
    status_snapshot,
    tick,
)
from echoops.core.slo.deploy_gate import (
    BUDGET_LOG,
    GATE_FLAG,
    DeployGateSet,
    clear_gate,
    gate,
    gate_path,
    require_gate_open,
    set_gate,
    validate_reason,
)
from echoops.core.slo.document import SourceUnavailable

__all__ = [
    "BUDGET_LOG",
    "GATE_FLAG",
    "STATUS_FILE",
    "DeployGateSet",
    "SourceUnavailable",
    "StatusSnapshot",
    "clear_gate",
    "compute",
    "gate",
    "gate_path",
    "ingest",
    "rebaseline",
    "recent_p95_ms",
    "require_gate_open",
    "set_gate",
    "status",
    "status_snapshot",
    "tick",
    "validate_reason",
]
