# Phase 76: SLOs and error budgets. Sourced by scripts/smoke.sh (uses its `expect`, $ECHOOPS).
# The demo seed wrote three days of requests.ndjson with a 5xx burst; one tick ingests them
# (the scheduler runs this every 15 minutes).
$ECHOOPS slo tick >/dev/null

# the brief's check: curl -s -H "X-Dash-Key:$DASHBOARD_KEY" http://localhost:5000/api/slo/status | jq .
expect GET /api/slo/status 200 "" \
  '(.p95_ms | type) == "number"' \
  '(.p99_ms | type) == "number"' \
  '.p99_ms >= .p95_ms' \
  '(.error_rate | type) == "number"' \
  '.period == "24h"' \
  '(.remaining_budget_pct | type) == "number"' \
  '.burn_alert | IN("none", "ticket", "page", "gate")' \
  '.state | IN("green", "yellow", "red")' \
  '.burn | has("10m") and has("1h") and has("2h") and has("6h") and has("24h") and has("7d")' \
  '(.gate.set | type) == "boolean"' \
  '.requests > 0' \
  '(.updated_at | type) == "string"' \
  '(.history | length) >= 1'

# the CLI prints the same document as the endpoint
$ECHOOPS slo status --json >"$work/slo_cli.json"
call GET /api/slo/status
checks=$((checks + 1))
if jq -S . "$work/slo_cli.json" | cmp -s - <(jq -S . "$BODY_FILE"); then echo "ok   echoops slo status --json == GET /api/slo/status"
else echo "FAIL echoops slo status --json differs from GET /api/slo/status"; failures=$((failures + 1)); fi

# the deploy gate: `echoops slo gate` exits 1 exactly when the endpoint says the gate is set
want=$(jq -r 'if .gate.set then 1 else 0 end' "$BODY_FILE")
rc=0; $ECHOOPS slo gate >/dev/null 2>&1 || rc=$?
checks=$((checks + 1))
if [ "$rc" = "$want" ]; then echo "ok   echoops slo gate -> $rc"; else
  echo "FAIL echoops slo gate exited $rc, want $want"; failures=$((failures + 1)); fi

# rebaseline: every window restarts now, nothing is deleted
expect POST /api/slo/rebaseline 200 '{"reason":"smoke test"}' \
  '.reason == "smoke test"' '(.rebaseline_at | type) == "string"' '.status.requests == 0' \
  '.status.budget.requests == 0' '.status.remaining_budget_pct == 100'
expect GET /api/slo/status 200 "" '(.rebaseline_at | type) == "string"' '.requests == 0' '.error_rate == 0'
expect POST /api/slo/rebaseline 400 '{"reason":42}' '.field == "reason"'
