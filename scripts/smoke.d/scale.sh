# Scale (phase 80): sourced by scripts/smoke.sh after `echoops demo seed` (queue with a rising backlog).
# The demo queue outruns its 2 workers, so the dry-run autoscaler wants more than it has.
expect GET /api/scale/status 200 "" \
  '(.desired | type == "number") and (.actual | type == "number")' \
  '.reason | type == "string" and length > 0' \
  '.dry_run == true' \
  '.desired > .actual' \
  '.forecast.backlog > 0' \
  '.cooldown_remaining_s == 0' \
  '.gate.set == false'
expect POST /api/scale/apply 200 '{}' '.dry_run == true' '.applied == false' '.actuator == null'
expect POST /api/scale/apply 200 '{"dry_run":true}' '.dry_run == true' '.applied == false'
expect POST /api/scale/apply 400 '{"dry_run":false}' '.error == "invalid"' '.field == "dry_run"' \
  '.detail | test("SCALE_CMD")'
expect POST /api/scale/apply 400 '{"dry_run":"no"}' '.field == "dry_run"' '.detail | test("dry_run")'
expect GET /api/scale/status 200 "" '.history | length == 2' '.history[-1].dry_run == true'
