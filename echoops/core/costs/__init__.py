"""Cost guardrails (phase 79).

AI spend (from `ai_usage.ndjson`, priced by `prices`) is ingested by `ingest` and Stripe
fees per UTC day are read by `fees` (a failed read is recorded and shown, never taken as $0);
`caps` holds the caps (environment or API), computes utilisation and states, raises
incidents and writes `cost_state.json`; `guardrail` turns that state into the decision for
one AI call (allow, switch to a cheaper model, throttle), never touching admin.

Interface to the other controls and to apps: `guard` (in front of every AI call), `check`,
`status`, `tick`, `set_cap`.
"""

from echoops.core.costs.caps import EVENTS_LOG, SCHEMA, check, set_cap, state_document, status, tick
from echoops.core.costs.guardrail import STATE_FILE, guard

__all__ = ["EVENTS_LOG", "SCHEMA", "STATE_FILE", "check", "guard", "set_cap", "state_document", "status", "tick"]
