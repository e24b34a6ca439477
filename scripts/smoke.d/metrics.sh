# GET /metrics: the Prometheus exposition, the key sent as a bearer token (what Prometheus sends).
# Sourced by scripts/smoke.sh (uses $BASE, $DASHBOARD_KEY, $work and the counters).
checks=$((checks + 1))
status=$(curl -s -o "$work/metrics.txt" -w '%{http_code}' -H "Authorization: Bearer $DASHBOARD_KEY" "$BASE/metrics")
if [ "$status" = 200 ] && grep -q '^echoops_deploy_gate ' "$work/metrics.txt" \
  && grep -q '^echoops_slo_burn_rate{window="2h"} ' "$work/metrics.txt" \
  && grep -q '^echoops_incidents_total{severity="CRITICAL"} ' "$work/metrics.txt"; then
  echo "ok   GET /metrics (Bearer) -> 200 with echoops_deploy_gate, echoops_slo_burn_rate, echoops_incidents_total"
else
  echo "FAIL GET /metrics (Bearer) -> $status"; failures=$((failures + 1))
fi
checks=$((checks + 1))
status=$(curl -s -o /dev/null -w '%{http_code}' "$BASE/metrics")
if [ "$status" = 401 ]; then echo "ok   GET /metrics without the key -> 401"; else
  echo "FAIL GET /metrics without the key -> $status"; failures=$((failures + 1)); fi
