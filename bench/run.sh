#!/usr/bin/env bash
# Hot-path throughput on loopback: GET /api/me with a valid credential, measured with wrk.
#   signoff, session cookie   — validation incl. revocation check
#   signoff, bearer token     — JWT verification, denylist and token version from memory
#   bare axum handler         — the ceiling (no session check at all)
#   tower-sessions            — the reference (MemoryStore)
#   signoff on PostgreSQL     — the same two checks on a node of a several-node deployment
#                               (PostgreSQL + Redis, a second node running beside it): they
#                               answer from memory too, so the figures should match SQLite's
# Servers run on core 0 and wrk on core 1 (taskset), one server at a time under load.
# Usage: bench/run.sh            (DURATION=10s CONNECTIONS=32 THREADS=1 to change the load)
# Appends a dated table to bench/RESULTS.md. Needs wrk (apt-get install wrk), and PostgreSQL
# at $SIGNOFF_TEST_POSTGRES_URL and redis-server for the PostgreSQL rows.
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

wait_for() { for _ in $(seq 1 200); do curl -fs -o /dev/null "$1" && return 0; sleep 0.05; done; echo "no answer from $1" >&2; exit 1; }

PG=${SIGNOFF_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}
pgdb="signoff_bench_$$"
psql -q "$PG" -c "CREATE DATABASE $pgdb"
pg_url="${PG%/*}/$pgdb"
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; sleep 0.3; psql -q "$PG" -c "DROP DATABASE IF EXISTS $pgdb WITH (FORCE)" || true; rm -rf "$dir"; }
trap cleanup EXIT
redis-server --port 9109 --bind 127.0.0.1 --save '' --appendonly no >/dev/null & pids+=($!)

# (taskset execs the server, so $! is the server itself and cleanup can kill it)
on0="taskset -c 0"
SIGNOFF_LISTEN=127.0.0.1:9100 SIGNOFF_PUBLIC_URL=http://127.0.0.1:9100 SIGNOFF_DATABASE_URL="sqlite://$dir/bench.db" \
  SIGNOFF_LOG_LEVEL=error $on0 target/release/signoff serve & pids+=($!)
$on0 bench/target/release/bare 127.0.0.1:9101 & pids+=($!)
$on0 bench/target/release/tower_sessions 127.0.0.1:9102 & pids+=($!)
for port in 9103 9104; do
  SIGNOFF_LISTEN=127.0.0.1:$port SIGNOFF_PUBLIC_URL=http://127.0.0.1:9100 SIGNOFF_DATABASE_URL="$pg_url" \
    SIGNOFF_REDIS_URL=redis://127.0.0.1:9109 SIGNOFF_LOG_LEVEL=error $on0 target/release/signoff serve & pids+=($!)
done
wait_for http://127.0.0.1:9100/readyz
wait_for http://127.0.0.1:9103/readyz
wait_for http://127.0.0.1:9104/readyz

json='{"email":"bench@example.com","password":"correct horse battery staple"}'
credentials() { # base URL -> sets cookie and access
  local base=$1
  curl -fs -o /dev/null -X POST "$base/auth/register" -H 'content-type: application/json' -d "$json"
  cookie=$(curl -fs -D - -o /dev/null -X POST "$base/auth/login" -H 'content-type: application/json' -H 'accept: application/json' -d "$json" \
    | sed -n 's/^set-cookie: \(__Host-signoff_session=[^;]*\).*/\1/ip')
  access=$(curl -fs -X POST "$base/auth/token" -d grant_type=password --data-urlencode email=bench@example.com \
    --data-urlencode 'password=correct horse battery staple' | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
}
credentials http://127.0.0.1:9104
pg_cookie=$cookie pg_access=$access
credentials http://127.0.0.1:9100
ts_cookie=$(curl -fs -D - -o /dev/null http://127.0.0.1:9102/login | sed -n 's/^set-cookie: \([^;]*\).*/\1/ip')

declare -A rps
measure() {
  local name=$1 url=$2 header=$3
  local code
  code=$(curl -s -o /dev/null -w '%{http_code}' -H "$header" "$url")
  [ "$code" = 200 ] || { echo "$name answered $code, not 200" >&2; exit 1; }
  rps[$name]=$(taskset -c 1 wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" -H "$header" "$url" | awk '/Requests\/sec/ { print $2 }')
  echo "$name: ${rps[$name]} req/s"
}
measure bare http://127.0.0.1:9101/api/me "Cookie: session=anything"
measure tower_sessions http://127.0.0.1:9102/api/me "Cookie: $ts_cookie"
measure signoff_cookie http://127.0.0.1:9100/api/me "Cookie: $cookie"
measure signoff_bearer http://127.0.0.1:9100/api/me "Authorization: Bearer $access"
# Issued by the other node, checked on this one.
measure signoff_pg_cookie http://127.0.0.1:9103/api/me "Cookie: $pg_cookie"
measure signoff_pg_bearer http://127.0.0.1:9103/api/me "Authorization: Bearer $pg_access"

ratio() { python3 -c "print(f'{$1 / $2:.2f}')"; }
{
  echo
  echo "## $(date -u +%Y-%m-%d) — $(git rev-parse --short HEAD), $(nproc) cores, servers on core 0, wrk -t$THREADS -c$CONNECTIONS -d$DURATION on core 1"
  echo
  echo "| server | req/s | vs bare axum | vs tower-sessions |"
  echo "|---|---|---|---|"
  for n in bare tower_sessions signoff_cookie signoff_bearer signoff_pg_cookie signoff_pg_bearer; do
    echo "| $n | ${rps[$n]} | $(ratio "${rps[$n]}" "${rps[bare]}") | $(ratio "${rps[$n]}" "${rps[tower_sessions]}") |"
  done
} | tee -a bench/RESULTS.md
