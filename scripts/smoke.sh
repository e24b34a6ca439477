#!/usr/bin/env bash
# Smoke test: start `echoops serve` on a free port with a temp log dir, run the brief's curl
# checks (scripts/smoke.d/*.sh add one file per feature), fail on any unexpected status or
# missing field. Usage: scripts/smoke.sh   (needs echoops on PATH, curl and jq)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
ECHOOPS=${ECHOOPS:-echoops}
work=$(mktemp -d)
export ECHOOPS_LOG_DIR="$work/logs"
export DASHBOARD_KEY="smoke-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
export PORTAL_SIGNING_SECRET="smoke-signing-$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
BASE="http://127.0.0.1:$port"
export PORTAL_BASE_URL="$BASE"
failures=0
checks=0

cleanup() {
  [ -n "${server_pid:-}" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

# call METHOD PATH [BODY] -> sets STATUS and BODY_FILE (with the admin key)
call() {
  local method=$1 path=$2 body=${3:-}
  BODY_FILE="$work/body.json"
  if [ -n "$body" ]; then
    STATUS=$(curl -s -o "$BODY_FILE" -w '%{http_code}' -X "$method" -H "X-Dash-Key:$DASHBOARD_KEY" \
      -H 'Content-Type: application/json' -d "$body" "$BASE$path")
  else
    STATUS=$(curl -s -o "$BODY_FILE" -w '%{http_code}' -X "$method" -H "X-Dash-Key:$DASHBOARD_KEY" "$BASE$path")
  fi
}

# expect METHOD PATH STATUS [BODY] [JQ_FILTER...]: each filter must be true on the body
expect() {
  local method=$1 path=$2 want=$3 body=${4:-}
  shift 4 || shift $#
  call "$method" "$path" "$body"
  checks=$((checks + 1))
  if [ "$STATUS" != "$want" ]; then
    echo "FAIL $method $path: status $STATUS, want $want: $(head -c 300 "$BODY_FILE")"
    failures=$((failures + 1))
    return 0
  fi
  for filter in "$@"; do
    if ! jq -e "$filter" "$BODY_FILE" >/dev/null 2>&1; then
      echo "FAIL $method $path: '$filter' is not true in $(head -c 300 "$BODY_FILE")"
      failures=$((failures + 1))
      return 0
    fi
  done
  echo "ok   $method $path -> $STATUS"
}

mkdir -p "$ECHOOPS_LOG_DIR"
$ECHOOPS demo seed >/dev/null
$ECHOOPS serve --port "$port" --workers 2 >"$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 100); do
  curl -s -o /dev/null "$BASE/healthz" && break
  sleep 0.1
done

expect GET /healthz 200 "" '.ok == true' '.version | type == "string"'
# every admin route refuses a missing key
status=$(curl -s -o /dev/null -w '%{http_code}' "$BASE/api/slo/status"); checks=$((checks + 1))
[ "$status" = 401 ] && echo "ok   GET /api/slo/status without key -> 401" || { echo "FAIL no-key status $status"; failures=$((failures + 1)); }

for part in "$here"/smoke.d/*.sh; do
  [ -e "$part" ] || continue
  # shellcheck source=/dev/null
  . "$part"
done

echo "smoke: $checks checks, $failures failed"
[ "$failures" -eq 0 ]
