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
  '.groups[] | select(.source == "slo") | .count == 2 and .paged == false and .pages_raised == 1 and .deliveries.telegram == "skipped"' \
  '.totals.groups >= 1' '.totals.deliveries | has("failed")'
expect POST '/api/incidents/summarize?hours=1' 200 '' '.hours == 1'
expect POST '/api/incidents/summarize?hours=abc' 400 '' '.field == "hours"'

# Alertmanager's webhook (payload version 4): a firing alert becomes an incident, a re-send dedups,
# a resolved one resolves it, a malformed one names the field
AM='{"version":"4","status":"firing","receiver":"echoops","alerts":[{"status":"firing","labels":{"alertname":"SmokeAlert","severity":"warning"},"annotations":{"summary":"smoke alert"},"startsAt":"2026-11-30T12:00:00Z","endsAt":"0001-01-01T00:00:00Z","generatorURL":"","fingerprint":"5a0c1e"}]}'
expect POST /api/incidents/alertmanager 200 "$AM" '.firing == 1' '.alerts[0].fingerprint == "am:5a0c1e"' '.alerts[0].deduped == false'
expect POST /api/incidents/alertmanager 200 "$AM" '.alerts[0].deduped == true'
expect POST /api/incidents/alertmanager 200 "${AM//\"firing\"/\"resolved\"}" '.resolved == 1' '.alerts[0].id | startswith("inc_")'
expect POST /api/incidents/summarize 200 '' '.groups[] | select(.fingerprint == "am:5a0c1e") | .severity == "WARNING" and (.resolved_at | type) == "string"'
expect POST /api/incidents/alertmanager 400 '{"version":"3","alerts":[]}' '.field == "version"'

# Issue 15: answering pages. The SLO burn group is open; ack it by fingerprint, then resolve it.
expect POST /api/incidents/ack 404 '{"fingerprint":"smoke:db","by":"smoke"}' '.error == "not_found"'
expect POST /api/incidents/raise 200 '{"severity":"CRITICAL","msg":"db down","source":"db","fingerprint":"smoke:db"}' \
  '.state == "open"'
expect POST /api/incidents/ack 200 '{"fingerprint":"smoke:db","by":"smoke"}' \
  '.state == "acked"' '.acked_by == "smoke"' '.changed == true'
expect POST /api/incidents/ack 200 '{"fingerprint":"smoke:db"}' '.changed == false' '.acked_by == "smoke"'
expect POST /api/incidents/raise 200 '{"severity":"CRITICAL","msg":"db down","source":"db","fingerprint":"smoke:db"}' \
  '.deduped == true' '.state == "acked"' '.channels == {}'
expect POST /api/incidents/resolve 200 '{"fingerprint":"smoke:db","note":"smoke test"}' \
  '.state == "resolved"' '.note == "smoke test"' '.notices == {}'
expect POST /api/incidents/resolve 404 '{"id":"inc_nope"}' '.error == "not_found"'
expect POST /api/incidents/ack 400 '{}' '.field == "id"'
expect POST /api/incidents/silence 200 '{"match":{"source":"maint"},"for_min":30,"reason":"smoke"}' \
  '.state == "active"' '.left_s == 1800' '.id | startswith("sil_")'
expect POST /api/incidents/raise 200 '{"severity":"CRITICAL","msg":"replica lag","source":"maint"}' \
  '.state == "silenced"' '.channels == {}'
expect GET /api/incidents/silences 200 '' '.silences | length == 1' '.silences[0].matched == 1'
expect POST /api/incidents/silence 400 '{"match":{"colour":"red"},"for_min":30,"reason":"smoke"}' '.field == "match"'
expect GET '/api/incidents/ack-link?token=v1.x.y' 403 '' '.error == "forbidden"'
