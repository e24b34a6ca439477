# Phase 79: cost guardrails. Sourced by scripts/smoke.sh (uses its `expect`, $ECHOOPS).
# The demo seed wrote today's ai_usage.ndjson; one tick ingests it.
$ECHOOPS costs tick >/dev/null

# the brief's check: curl -s -H "X-Dash-Key:$DASHBOARD_KEY" http://localhost:5000/api/costs/status | jq .
expect GET /api/costs/status 200 "" \
  '.global.cap_usd == 25' \
  '.mode == "enforce"' \
  '.global.cap_source == "env"' \
  '.global.spent_usd > 0' \
  '(.global.pct | type) == "number"' \
  '.global.state | IN("ok", "warn", "throttle")' \
  '(.global.forecast_usd | type) == "number"' \
  '.models["gpt-4o-mini"].cap_usd == 15' \
  '(.models["gpt-4o-mini"].pct | type) == "number"' \
  '.models["gpt-4o-mini"].action | IN("allow", "switch", "throttle")' \
  '.models.embeddings.cap_usd == 2' \
  '(.stripe_fees.spent_usd | type) == "number"' \
  '.stripe_fees.source == "ledger"' '.stripe_fees.error == null' '(.stripe_fees.fetched_at | type) == "string"' \
  '(.unpriced | type) == "array"' \
  '(.day | test("^[0-9]{4}-[0-9]{2}-[0-9]{2}$"))'

expect GET '/api/costs/check?model=gpt-4o-mini' 200 "" \
  '.action | IN("allow", "switch", "throttle")' '.model | type == "string"' '(.retry_after_s | type) == "number"'
expect GET /api/costs/check 400 "" '.field == "model"'

expect POST /api/costs/set-cap 200 '{"scope":"model","key":"gpt-4o","usd_cap":5}' \
  '.cap.usd_cap == 5' '.cap.key == "gpt-4o"' '.status.models["gpt-4o"].cap_usd == 5'
expect POST /api/costs/set-cap 400 '{"scope":"daily","usd_cap":-1}' '.field == "usd_cap"'
expect POST /api/costs/set-cap 400 '{"scope":"model","usd_cap":3}' '.field == "key"'
expect POST /api/costs/set-cap 400 '{"scope":"weekly","usd_cap":3}' '.field == "scope"'

# the CLI agrees with the endpoint: exit 0 allow/switch, 1 throttle
if $ECHOOPS costs check gpt-4o >/dev/null; then echo "ok   echoops costs check gpt-4o -> 0"; else
  echo "FAIL echoops costs check gpt-4o exited $?"; failures=$((failures + 1)); fi
checks=$((checks + 1))

# per-call enforcement (issue 14): reserve, settle through usage, release, record
expect POST /api/costs/reserve 200 '{"model":"gpt-4o","estimate_usd":0.02}' \
  '.action == "allow"' '.reservation | test("^rsv_[0-9]+$")' '.estimate_usd == 0.02' '(.expires_at | type) == "string"'
rsv=$(jq -r .reservation "$BODY_FILE")
expect GET /api/costs/status 200 "" '.calls.in_flight == 1' '.calls.reserved_usd == 0.02' '.models["gpt-4o"].reserved_usd == 0.02'
expect POST /api/costs/usage 200 "{\"model\":\"gpt-4o\",\"input_tokens\":812,\"output_tokens\":95,\"reservation\":\"$rsv\"}" \
  '.recorded_usd == 0.00298' '.decision.model == "gpt-4o"'
expect POST /api/costs/usage 404 "{\"model\":\"gpt-4o\",\"usd\":1,\"reservation\":\"$rsv\"}" '.field == "reservation"'
expect POST /api/costs/reserve 200 '{"model":"gpt-4o","estimate_usd":0.5}' '.action == "allow"'
expect POST /api/costs/release 200 "{\"reservation\":$(jq .reservation "$BODY_FILE")}" '.released == true'
expect POST /api/costs/usage 200 '{"model":"gpt-4o-mini","usd":0.01}' '.recorded_usd == 0.01'
expect POST /api/costs/usage 400 '{"model":"gpt-4o-mini","usd":-1}' '.field == "usd"'
expect POST /api/costs/usage 400 '{"model":"gpt-4o-mini"}' '.field == "usd"'
expect GET /api/costs/status 200 "" '.calls.in_flight == 0' '.calls.recorded_5m >= 2'
if $ECHOOPS costs record gpt-4o --usd 0.01 >/dev/null; then echo "ok   echoops costs record -> 0"; else
  echo "FAIL echoops costs record exited $?"; failures=$((failures + 1)); fi
checks=$((checks + 1))
