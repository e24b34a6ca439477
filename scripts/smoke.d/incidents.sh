# Phase 77: incident inbox and pager (sourced by scripts/smoke.sh; uses its `expect` helper).
# No Telegram/SMTP credentials here, so a CRITICAL is recorded and its channels are `skipped`.
expect POST /api/incidents/raise 200 '{"severity":"CRITICAL","msg":"SLO burn","source":"slo"}' \
  '.id | startswith("inc_")' '.fingerprint | test("^[0-9a-f]{64}$")' '.deduped == false' \
  '.channels == {"telegram":"skipped","email":"skipped"}'
expect POST /api/incidents/raise 200 '{"severity":"critical","msg":"SLO burn","source":"slo"}' \
  '.deduped == true' '.channels == {}'
expect POST /api/incidents/raise 400 '{"severity":"LOUD","msg":"SLO burn","source":"slo"}' \
  '.error == "invalid"' '.field == "severity"'
expect POST /api/incidents/raise 400 '{"severity":"CRITICAL","source":"slo"}' '.field == "msg"'
expect POST /api/incidents/summarize 200 '' \
  '.groups | type == "array"' \
  '[.groups[] | select(.source == "slo" and .msg == "SLO burn")] | length == 1' \
  '.groups[] | select(.source == "slo") | .count == 2 and .paged == true and .deliveries.telegram == "skipped"' \
  '.totals.groups >= 1' '.totals.deliveries | has("failed")'
expect POST '/api/incidents/summarize?hours=1' 200 '' '.hours == 1'
expect POST '/api/incidents/summarize?hours=abc' 400 '' '.field == "hours"'
