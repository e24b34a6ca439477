# Customer portal (phase 78): sourced by scripts/smoke.sh after `echoops demo seed` (purchases for
# qa@echopilot.ai, one invoice stored as a PDF under logs/receipts/). Uses its `expect`, $BASE, $work.

# the brief's check: curl -s -H "X-Dash-Key:$DASHBOARD_KEY" "http://localhost:5000/api/portal/receipts?email=qa@echopilot.ai" | jq .
expect GET '/api/portal/receipts?email=qa@echopilot.ai' 200 "" \
  '.email == "qa@echopilot.ai"' \
  '.unsubscribed == false' \
  '.purchases | length >= 4' \
  '.purchases | all(.id and .created and (.amount | type == "number") and (.currency | length == 3) and .expires_at)' \
  '.purchases | all(.receipt_url | startswith("'"$BASE"'/api/portal/download?token=v1."))' \
  '[.purchases[] | select(.invoice_url != null)] | length >= 1' \
  '.unsubscribe_url | startswith("'"$BASE"'/api/portal/unsubscribe?token=v1.")'
receipts="$work/portal_receipts.json"
cp "$BODY_FILE" "$receipts"
path_of() { jq -r "$1 | sub(\"^https?://[^/]+\"; \"\")" "$receipts"; }
receipt=$(path_of '.purchases[0].receipt_url')
stored_invoice=$(path_of '[.purchases[] | select(.invoice_number == "EP-2026-0077")][0].invoice_url')
unsubscribe=$(path_of '.unsubscribe_url')

# portal_check NAME WANT_STATUS WANT_CONTENT_TYPE_PREFIX CURL_ARGS...: a public request (no X-Dash-Key)
portal_check() {
  local name=$1 want=$2 ctype=$3
  shift 3
  checks=$((checks + 1))
  local got
  got=$(curl -s -o "$work/portal_body" -w '%{http_code} %{content_type}' "$@")
  if [ "${got%% *}" = "$want" ] && [[ "${got#* }" == "$ctype"* ]]; then
    echo "ok   $name -> $got"
  else
    echo "FAIL $name: got '$got', want $want $ctype: $(head -c 200 "$work/portal_body")"
    failures=$((failures + 1))
  fi
}

# one returned link downloads without the admin key: a rendered receipt, and the stored PDF invoice
portal_check "GET receipt link (public)" 200 "text/html" "$BASE$receipt"
portal_check "GET stored invoice PDF (public)" 200 "application/pdf" "$BASE$stored_invoice"
# a tampered token (last character changed) and a missing one: 403 JSON
tampered="${receipt%?}$([ "${receipt: -1}" = A ] && echo B || echo A)"
portal_check "GET tampered token" 403 "application/json" "$BASE$tampered"
expect GET "$tampered" 403 "" '.error == "forbidden"' '.detail == "this link is invalid or has expired"'
expect GET /api/portal/download 403 "" '.error == "forbidden"'
# a malformed email: 400 naming the field
expect GET '/api/portal/receipts?email=not-an-email' 400 "" '.error == "invalid"' '.field == "email"'
expect GET '/api/portal/receipts' 400 "" '.field == "email"'

# unsubscribe: GET only asks; the RFC 8058 one-click POST unsubscribes (idempotent, no redirect)
portal_check "GET unsubscribe link (changes nothing)" 200 "text/html" "$BASE$unsubscribe"
expect GET '/api/portal/receipts?email=qa@echopilot.ai' 200 "" '.unsubscribed == false'
portal_check "POST one-click unsubscribe" 200 "application/json" -X POST -d 'List-Unsubscribe=One-Click' "$BASE$unsubscribe"
portal_check "POST one-click unsubscribe again" 200 "application/json" -X POST -d 'List-Unsubscribe=One-Click' "$BASE$unsubscribe"
expect GET '/api/portal/receipts?email=qa@echopilot.ai' 200 "" '.unsubscribed == true'
# an operator takes the customer back (the portal card's Resubscribe): audited below
expect POST /api/portal/resubscribe 200 '{"email":"QA@echopilot.ai"}' '.email == "qa@echopilot.ai"' \
  '.unsubscribed == false' '.changed == true'
expect POST /api/portal/resubscribe 400 '{"email":"qa@echopilot.ai","by":"x"}' '.field == "by"'
expect GET '/api/portal/receipts?email=qa@echopilot.ai' 200 "" '.unsubscribed == false'

# every attempt above is in the audit, the 403s with a reason, never the token
expect GET '/api/portal/audit?limit=50' 200 "" \
  '[.entries[] | select(.status == 403)] | length >= 2' \
  '[.entries[] | select(.status == 403 and .reason)] | length >= 2' \
  '[.entries[] | select(.status == 200 and .email == "qa@echopilot.ai")] | length >= 3' \
  '[.entries[] | select(.resource == "receipts" and .route == "GET /api/portal/receipts")] | length >= 2' \
  '[.entries[] | select(.action == "resubscribe" and .route == "POST /api/portal/resubscribe")] | length == 1'
checks=$((checks + 1))
if grep -q "${receipt#*token=}" "$ECHOOPS_LOG_DIR/portal_access.ndjson"; then
  echo "FAIL portal_access.ndjson contains a token"; failures=$((failures + 1))
else
  echo "ok   portal_access.ndjson holds no token"
fi
