#!/usr/bin/env bash
# Hot-path throughput on loopback: GET /api/me with a valid credential, measured with wrk.
#   signoff, session cookie   — validation incl. revocation check
#   signoff, bearer token     — JWT verification, denylist and token version from memory
#   bare axum handler         — the ceiling (no session check at all)
#   tower-sessions            — the reference (MemoryStore)
# Usage: bench/run.sh            (DURATION=10s CONNECTIONS=32 THREADS=1 to change the load)
# Appends a dated table to bench/RESULTS.md. Needs wrk (apt-get install wrk).
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-32}
THREADS=${THREADS:-1}
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }

cargo build --release --locked --bin signoff
(cd bench && cargo build --release)

dir=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$dir"; }
trap cleanup EXIT

wait_for() { for _ in $(seq 1 200); do curl -fs -o /dev/null "$1" && return 0; sleep 0.05; done; echo "no answer from $1" >&2; exit 1; }

SIGNOFF_LISTEN=127.0.0.1:9100 SIGNOFF_PUBLIC_URL=http://127.0.0.1:9100 SIGNOFF_DATABASE_URL="sqlite://$dir/bench.db" \
  SIGNOFF_LOG_LEVEL=error target/release/signoff serve & pids+=($!)
bench/target/release/bare 127.0.0.1:9101 & pids+=($!)
bench/target/release/tower_sessions 127.0.0.1:9102 & pids+=($!)
wait_for http://127.0.0.1:9100/readyz

json='{"email":"bench@example.com","password":"correct horse battery staple"}'
curl -fs -o /dev/null -X POST http://127.0.0.1:9100/auth/register -H 'content-type: application/json' -d "$json"
cookie=$(curl -fs -D - -o /dev/null -X POST http://127.0.0.1:9100/auth/login -H 'content-type: application/json' -H 'accept: application/json' -d "$json" \
  | sed -n 's/^set-cookie: \(__Host-signoff_session=[^;]*\).*/\1/ip')
access=$(curl -fs -X POST http://127.0.0.1:9100/auth/token -d grant_type=password --data-urlencode email=bench@example.com \
  --data-urlencode 'password=correct horse battery staple' | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
ts_cookie=$(curl -fs -D - -o /dev/null http://127.0.0.1:9102/login | sed -n 's/^set-cookie: \([^;]*\).*/\1/ip')

declare -A rps
measure() {
  local name=$1 url=$2 header=$3
  local code
  code=$(curl -s -o /dev/null -w '%{http_code}' -H "$header" "$url")
  [ "$code" = 200 ] || { echo "$name answered $code, not 200" >&2; exit 1; }
  rps[$name]=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" -H "$header" "$url" | awk '/Requests\/sec/ { print $2 }')
  echo "$name: ${rps[$name]} req/s"
}
measure bare http://127.0.0.1:9101/api/me "Cookie: session=anything"
measure tower_sessions http://127.0.0.1:9102/api/me "Cookie: $ts_cookie"
measure signoff_cookie http://127.0.0.1:9100/api/me "Cookie: $cookie"
measure signoff_bearer http://127.0.0.1:9100/api/me "Authorization: Bearer $access"

ratio() { python3 -c "print(f'{$1 / $2:.2f}')"; }
{
  echo
  echo "## $(date -u +%Y-%m-%d) — $(git rev-parse --short HEAD), $(nproc) cores, wrk -t$THREADS -c$CONNECTIONS -d$DURATION"
  echo
  echo "| server | req/s | vs bare axum | vs tower-sessions |"
  echo "|---|---|---|---|"
  for n in bare tower_sessions signoff_cookie signoff_bearer; do
    echo "| $n | ${rps[$n]} | $(ratio "${rps[$n]}" "${rps[bare]}") | $(ratio "${rps[$n]}" "${rps[tower_sessions]}") |"
  done
} | tee -a bench/RESULTS.md
