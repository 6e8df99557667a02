#!/usr/bin/env bash
# signoff's benchmark, one command: bench/run.sh [--smoke]
#
# Builds everything (release), starts every server on loopback pinned to core 1 and drives it
# with wrk pinned to core 0, one server at a time, and appends a dated table to
# bench/RESULTS.md in which every figure is a ratio to baselines measured in this same run:
#   bare axum                      the ceiling: no session check at all
#   tower-sessions, MemoryStore    checks nothing against revocation
#   tower-sessions, SQLite store
#   express-session, MemoryStore   (Node)
#   express-session, connect-redis (Node, Redis)
# Scenarios:
#   1. GET /api/me with a session cookie: signoff in its default configuration (access log on,
#      written to a file), signoff with SIGNOFF_LOG_LEVEL=warn, and a signoff node on PostgreSQL
#      + Redis (a second node beside it issued the cookie);
#   2. GET /api/me with a bearer token: one token reused, and a pool of 10,000 distinct tokens
#      (each request the next token, round robin);
#   3. GET /authz/auth-request (forward authentication) with a session cookie, and the Node
#      verifier library: verifications per second, and revocation propagation (revoke response
#      to refusal, p50/p99) -- bench/node/verifier.mjs;
#   4. logout latency (scope global) through one of 1, 2 and 3 nodes on PostgreSQL, with and
#      without Redis (bench/cluster.py), the same for a client's Global Token Revocation of the
#      user (bench/cluster.py --via gtr), and a global logout of a user with 1 to 100,000
#      sessions on SQLite and on PostgreSQL (bench/global_logout.py), the two cluster tables
#      ending with the store's own commit latency in the same run (pgbench; bench/ssf.py ends
#      with SQLite's and PostgreSQL's), and a logout to its Shared
#      Signals SET pushed to a receiver and answered to a long poll (bench/ssf.py);
#   5. memory per denied access token after 1,000,000 revocations (the denylist, in process:
#      crates/signoff-core/examples/denylist_memory.rs);
#   6. validation latency (p99, GET /api/me with a cookie, two connections) alone and while a
#      flood of sign-ins (argon2id) runs against the same server (bench/flood.lua);
#   7. instructions per request (valgrind --tool=callgrind, bench/callgrind.py) for the cookie,
#      the reused token, the token pool and forward authentication: repeatable where wall-clock
#      figures on a shared machine are not.
#
# Scenarios 1 to 3 (requests a second) run in $ROUNDS rounds (3; 1 in --smoke), each measuring
# every server once in the same order, and the table gives each figure's median and each ratio as
# the median of its per-round ratios (with their range against bare axum and tower-sessions
# MemoryStore): a slow minute on this shared machine then lands in one round, not on one row.
#
# --smoke (what CI runs): debug builds, one second per run, 100 pooled tokens, 100 callgrind
# requests, a few rounds and small sizes for scenarios 3 to 6; it proves that every scenario
# builds and runs, and writes no results.
#
# Needs: wrk, valgrind, node/npm, redis-server, PostgreSQL at $SIGNOFF_TEST_POSTGRES_URL.
set -euo pipefail
cd "$(dirname "$0")/.."
SMOKE=false
[ "${1:-}" = --smoke ] && SMOKE=true
if $SMOKE; then
  DURATION=1s POOL=100 CALLS=100 PROFILE=debug ROUNDS=1
  VERIFY_SECONDS=1 VERIFY_ROUNDS=10 CLUSTER_ROUNDS=3 PAUSE_ROUNDS=1 WARMUP_ROUNDS=1 SIZES=1,100 DENIED=10000 SSF_ROUNDS=3
else
  DURATION=${DURATION:-10s} POOL=${POOL:-10000} CALLS=${CALLS:-2000} PROFILE=release ROUNDS=${ROUNDS:-3}
  VERIFY_SECONDS=5 VERIFY_ROUNDS=1000 CLUSTER_ROUNDS=200 PAUSE_ROUNDS=3 WARMUP_ROUNDS=20 SIZES=1,100,10000,100000 DENIED=1000000 SSF_ROUNDS=200
fi
CONNECTIONS=${CONNECTIONS:-32}
[[ "$ROUNDS" =~ ^[1-9][0-9]*$ ]] || { echo "bench: ROUNDS must be a whole number of rounds, not $ROUNDS" >&2; exit 1; }
for tool in wrk valgrind node npm redis-server psql pgbench taskset python3; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is missing" >&2; exit 1; }
done

# Builds go where cargo puts them: CARGO_TARGET_DIR when set (made absolute, since the baselines
# are built from bench/), else target/ and bench/target/.
if [ -n "${CARGO_TARGET_DIR:-}" ]; then
  CARGO_TARGET_DIR=$(realpath -m "$CARGO_TARGET_DIR")
  export CARGO_TARGET_DIR
  TARGET=$CARGO_TARGET_DIR BENCH_TARGET=$CARGO_TARGET_DIR
else
  TARGET=target BENCH_TARGET=bench/target
fi
if [ "$PROFILE" = release ]; then
  cargo build --release --locked --bin signoff
  cargo build --release --locked -p signoff-core --example denylist_memory
  (cd bench && cargo build --release --locked)
else
  # The debug builds the test suite makes (`cargo test` builds the server and the examples): a
  # plain `cargo build` resolves features without the dev-dependencies and would compile the
  # server again.
  cargo test --workspace --locked --no-run
  (cd bench && cargo build --locked)
fi
(cd bench/node && npm ci --no-audit --no-fund --loglevel=error)
(cd clients/node && npm ci --no-audit --no-fund --loglevel=error)
SIGNOFF=$TARGET/$PROFILE/signoff
BENCHBIN=$BENCH_TARGET/$PROFILE

dir=$(mktemp -d)
pids=()
PG=${SIGNOFF_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}
pgdb="signoff_bench_$$"
cleanup() {
  local status=$?
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  sleep 0.3
  if [ "$status" != 0 ]; then # what the servers said, for the failure's cause
    for log in "$dir"/*.log; do [ -f "$log" ] && { echo "--- $log" >&2; tail -n 20 "$log" >&2; }; done
  fi
  psql -q "$PG" -c "DROP DATABASE IF EXISTS $pgdb WITH (FORCE)" >/dev/null || echo "bench: could not drop $pgdb" >&2
  rm -rf "$dir"
}
trap cleanup EXIT
psql -q "$PG" -c "CREATE DATABASE $pgdb"
pg_url="${PG%/*}/$pgdb"

# Servers and the Redis they use on core 1 (taskset execs them, so $! is the server itself);
# the machine's PostgreSQL is not ours to pin (the nodes answer validation from memory).
on1="taskset -c 1"
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_for() { # URL: until it answers anything
  for _ in $(seq 1 300); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "$1")" != 000 ] && return 0
    sleep 0.1
  done
  echo "bench: no answer from $1" >&2
  exit 1
}

REDIS_PORT=$(port)
$on1 redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no >/dev/null & pids+=($!)
signoff() { # PORT [ENV...]: a signoff server on SQLite, its log in $dir
  local p=$1; shift
  env SIGNOFF_LISTEN="127.0.0.1:$p" SIGNOFF_PUBLIC_URL="http://127.0.0.1:$p" "$@" \
    $on1 "$SIGNOFF" serve 2>>"$dir/signoff-$p.log" & pids+=($!)
}
P_DEFAULT=$(port) P_QUIET=$(port) P_PG1=$(port) P_PG2=$(port)
ADMIN=bench-admin-token-0123456789abcdef0123456789
signoff "$P_DEFAULT" SIGNOFF_DATABASE_URL="sqlite://$dir/default.db" SIGNOFF_ADMIN_TOKEN="$ADMIN"
signoff "$P_QUIET" SIGNOFF_DATABASE_URL="sqlite://$dir/quiet.db" SIGNOFF_LOG_LEVEL=warn
# Two nodes of one deployment: one database, one Redis, one public URL (the tokens' issuer).
for p in "$P_PG1" "$P_PG2"; do
  signoff "$p" SIGNOFF_DATABASE_URL="$pg_url" SIGNOFF_REDIS_URL="redis://127.0.0.1:$REDIS_PORT" \
    SIGNOFF_PUBLIC_URL="http://127.0.0.1:$P_PG1"
done
P_BARE=$(port) P_TSM=$(port) P_TSS=$(port) P_ESM=$(port) P_ESR=$(port)
ports="$REDIS_PORT $P_DEFAULT $P_QUIET $P_PG1 $P_PG2 $P_BARE $P_TSM $P_TSS $P_ESM $P_ESR"
[ "$(echo "$ports" | tr ' ' '\n' | sort -u | wc -l)" = 10 ] || { echo "bench: a port was handed out twice: $ports" >&2; exit 1; }
$on1 "$BENCHBIN/bare" "127.0.0.1:$P_BARE" & pids+=($!)
$on1 "$BENCHBIN/tower_sessions" "127.0.0.1:$P_TSM" & pids+=($!)
$on1 "$BENCHBIN/tower_sessions" "127.0.0.1:$P_TSS" "sqlite:$dir/tower.db" & pids+=($!)
$on1 node bench/node/app.js "$P_ESM" & pids+=($!)
$on1 node bench/node/app.js "$P_ESR" "redis://127.0.0.1:$REDIS_PORT" & pids+=($!)
for p in "$P_DEFAULT" "$P_QUIET" "$P_PG1" "$P_PG2"; do wait_for "http://127.0.0.1:$p/readyz"; done
for p in "$P_BARE" "$P_TSM" "$P_TSS" "$P_ESM" "$P_ESR"; do wait_for "http://127.0.0.1:$p/api/me"; done

# Credentials. signoff: a cookie and an access token per server (the PostgreSQL pair: issued by
# the second node, checked on the first); the baselines: their session cookie from /login.
json='{"email":"bench@example.com","password":"correct horse battery staple"}'
cookie_of() { # base -> session cookie of a new sign-in (registering first)
  curl -fs -o /dev/null -X POST "$1/auth/register" -H 'content-type: application/json' -d "$json" || true
  curl -fs -D - -o /dev/null -X POST "$1/auth/login" -H 'content-type: application/json' -H 'accept: application/json' -d "$json" \
    | sed -n 's/^set-cookie: \(__Host-signoff_session=[^;]*\).*/\1/ip' | tr -d '\r'
}
token_of() { # base -> access token of a password grant
  curl -fs -X POST "$1/auth/token" -d grant_type=password --data-urlencode email=bench@example.com \
    --data-urlencode 'password=correct horse battery staple' | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])'
}
baseline_cookie() { curl -fs -D - -o /dev/null "$1/login" | sed -n 's/^set-cookie: \([^;]*\).*/\1/ip' | tr -d '\r'; }
default_cookie=$(cookie_of "http://127.0.0.1:$P_DEFAULT")
default_token=$(token_of "http://127.0.0.1:$P_DEFAULT")
quiet_cookie=$(cookie_of "http://127.0.0.1:$P_QUIET")
pg_cookie=$(cookie_of "http://127.0.0.1:$P_PG2")
pg_token=$(token_of "http://127.0.0.1:$P_PG2")
# The pool: refresh grants (no password hash each), every access token distinct and valid.
python3 bench/tokens.py "http://127.0.0.1:$P_DEFAULT" "$POOL" > "$dir/tokens.txt"
python3 bench/tokens.py "http://127.0.0.1:$P_PG2" "$POOL" > "$dir/pg-tokens.txt"
tsm_cookie=$(baseline_cookie "http://127.0.0.1:$P_TSM")
tss_cookie=$(baseline_cookie "http://127.0.0.1:$P_TSS")
esm_cookie=$(baseline_cookie "http://127.0.0.1:$P_ESM")
esr_cookie=$(baseline_cookie "http://127.0.0.1:$P_ESR")

declare -A rps # name -> its requests a second, one figure per round
measure() { # name url header [wrk args...]: requests per second, after checking the answer is 200
  local name=$1 url=$2 header=$3; shift 3
  local code
  code=$(curl -s -o /dev/null -w '%{http_code}' -H "$header" "$url")
  [ "$code" = 200 ] || { echo "bench: $name answered $code, not 200" >&2; exit 1; }
  local out
  out=$(taskset -c 0 wrk -t1 -c"$CONNECTIONS" -d"$DURATION" -H "$header" "$url" "$@")
  # Every answer must be a 2xx, and no connection may fail or time out.
  if echo "$out" | grep -Eq 'Non-2xx|Socket errors'; then echo "bench: $name: $(echo "$out" | grep -E 'Non-2xx|Socket errors')" >&2; exit 1; fi
  local figure
  figure=$(echo "$out" | awk '/Requests\/sec/ { print $2 }')
  [ -n "$figure" ] || { echo "bench: $name: no figure from wrk: $out" >&2; exit 1; }
  rps[$name]="${rps[$name]:-} $figure"
  echo "$name: $figure req/s"
}
me() { echo "http://127.0.0.1:$1/api/me"; }
for round in $(seq 1 "$ROUNDS"); do
  echo "== round $round of $ROUNDS: baselines"
  measure bare "$(me "$P_BARE")" "Cookie: session=anything"
  measure tower_sessions_memory "$(me "$P_TSM")" "Cookie: $tsm_cookie"
  measure tower_sessions_sqlite "$(me "$P_TSS")" "Cookie: $tss_cookie"
  measure express_session_memory "$(me "$P_ESM")" "Cookie: $esm_cookie"
  measure express_session_redis "$(me "$P_ESR")" "Cookie: $esr_cookie"
  echo "== round $round of $ROUNDS: 1. cookie"
  measure cookie_default "$(me "$P_DEFAULT")" "Cookie: $default_cookie"
  measure cookie_log_warn "$(me "$P_QUIET")" "Cookie: $quiet_cookie"
  measure cookie_pg_node "$(me "$P_PG1")" "Cookie: $pg_cookie"
  echo "== round $round of $ROUNDS: 2. bearer"
  measure bearer_reused "$(me "$P_DEFAULT")" "Authorization: Bearer $default_token"
  measure bearer_pool "$(me "$P_DEFAULT")" "Authorization: Bearer $default_token" -s bench/pool.lua -- "$dir/tokens.txt"
  # The control: the same script against the ceiling, for what the script costs wrk.
  measure bare_pool "$(me "$P_BARE")" "Authorization: Bearer $default_token" -s bench/pool.lua -- "$dir/tokens.txt"
  measure bearer_pg_node "$(me "$P_PG1")" "Authorization: Bearer $pg_token"
  measure bearer_pool_pg_node "$(me "$P_PG1")" "Authorization: Bearer $pg_token" -s bench/pool.lua -- "$dir/pg-tokens.txt"
  echo "== round $round of $ROUNDS: 3. forward auth"
  measure forward_auth "http://127.0.0.1:$P_DEFAULT/authz/auth-request" "Cookie: $default_cookie"
done
echo "== 3. the Node verifier library (on core 0, against the default server)"
verifier=$(taskset -c 0 node bench/node/verifier.mjs "http://127.0.0.1:$P_DEFAULT" "$ADMIN" "$VERIFY_SECONDS" "$VERIFY_ROUNDS")
echo "node verifier: $verifier"

echo "== 6. validation p99 alone, and under a sign-in flood"
curl -fs -o /dev/null -X POST "http://127.0.0.1:$P_DEFAULT/auth/register" -H 'content-type: application/json' \
  -d '{"email":"flood@example.com","password":"correct horse battery staple"}'
p99() { # wrk output -> its 99th percentile latency in ms
  awk '$1 == "99%" { v = $2; u = v; sub(/[0-9.]+/, "", u); sub(/[a-z]+$/, "", v);
    print (u == "us" ? v / 1000 : u == "s" ? v * 1000 : v) }'
}
latency() { # -> p99 ms of GET /api/me with the default cookie, two connections
  local out
  out=$(taskset -c 0 wrk -t1 -c2 -d"$DURATION" --latency -H "Cookie: $default_cookie" "$(me "$P_DEFAULT")")
  if echo "$out" | grep -Eq 'Non-2xx|Socket errors'; then echo "bench: validation: $(echo "$out" | grep -E 'Non-2xx|Socket errors')" >&2; exit 1; fi
  echo "$out" | p99
}
calm_p99=$(latency)
logins() { curl -fs "http://127.0.0.1:$P_DEFAULT/metrics" | awk '$1 == "signoff_logins_total" { print $2 }'; }
logins_before=$(logins)
flood_out="$dir/flood.txt"
taskset -c 0 wrk -t1 -c8 -d"$(( ${DURATION%s} + 2 ))s" -s bench/flood.lua "http://127.0.0.1:$P_DEFAULT/auth/login" > "$flood_out" &
flood=$!
sleep 1
flood_p99=$(latency)
wait "$flood"
# What the flood achieved: requests sent, and sign-ins that succeeded (the server's own count).
signins=$(awk '/Requests\/sec/ { print $2 }' "$flood_out")
succeeded=$(( $(logins) - logins_before ))
echo "validation p99: ${calm_p99} ms alone, ${flood_p99} ms under the flood (${signins} sign-in requests/s, ${succeeded} sign-ins succeeded)"
[ -n "$calm_p99" ] && [ -n "$flood_p99" ] && [ -n "$signins" ] || { echo "bench: no latency figure" >&2; exit 1; }
# A flood that signed nobody in (refused, throttled) would make the second figure a calm one.
[ "$succeeded" -gt 0 ] || { echo "bench: the flood signed nobody in: $(cat "$flood_out")" >&2; exit 1; }

echo "== 5. memory per denied token"
denylist=$(taskset -c 1 "$TARGET/$PROFILE/examples/denylist_memory" "$DENIED")
echo "$denylist"

echo "== 4. logout and Global Token Revocation latency across nodes; global logout by sessions"
cluster=$(python3 bench/cluster.py "$CLUSTER_ROUNDS" --bin "$SIGNOFF" --pause-rounds "$PAUSE_ROUNDS" --warmup "$WARMUP_ROUNDS")
echo "$cluster"
gtr=$(python3 bench/cluster.py "$CLUSTER_ROUNDS" --bin "$SIGNOFF" --pause-rounds "$PAUSE_ROUNDS" --warmup "$WARMUP_ROUNDS" --via gtr)
echo "$gtr"
if $SMOKE; then
  # bench/logout_pair.py compares two builds round by round (see BENCHMARKS.md); here it is only
  # checked to work, with the one build on both sides.
  python3 bench/logout_pair.py "$SIGNOFF" "$SIGNOFF" --nodes 2 --rounds 3 --warmup 1
fi
global=$(python3 bench/global_logout.py "$SIGNOFF" "$SIZES")
echo "$global"
ssf=$(taskset -c 0 python3 bench/ssf.py "$SIGNOFF" "$SSF_ROUNDS")
echo "$ssf"

echo "== 7. instructions per request (callgrind)"
declare -A ir
ir[cookie]=$(python3 bench/callgrind.py "$SIGNOFF" "$CALLS" cookie)
ir[bearer]=$(python3 bench/callgrind.py "$SIGNOFF" "$CALLS" bearer)
ir[pool]=$(python3 bench/callgrind.py "$SIGNOFF" "$CALLS" pool "$POOL")
ir[authz]=$(python3 bench/callgrind.py "$SIGNOFF" "$CALLS" authz)
ir[bare]=$(python3 bench/callgrind.py "$BENCHBIN/bare" "$CALLS" bare)
echo "instructions per request: cookie ${ir[cookie]}, bearer ${ir[bearer]}, bearer pool of $POOL ${ir[pool]}, forward auth ${ir[authz]}, bare axum ${ir[bare]}"

# The table: every figure and its ratio to each baseline, computed at once (a failure fails).
table=$(for n in bare tower_sessions_memory tower_sessions_sqlite express_session_memory express_session_redis \
  cookie_default cookie_log_warn cookie_pg_node bearer_reused bearer_pool bare_pool bearer_pg_node bearer_pool_pg_node \
  forward_auth; do
  echo "$n ${rps[$n]}"
done | python3 -c '
import statistics, sys
rows = [line.split() for line in sys.stdin]
rps = {r[0]: [float(v) for v in r[1:]] for r in rows}
rounds = {len(v) for v in rps.values()}
if rounds != {int(sys.argv[1])}:
    sys.exit(f"bench: a server was measured {sorted(rounds)} times, not {sys.argv[1]}")
bases = ["bare", "tower_sessions_memory", "tower_sessions_sqlite", "express_session_memory", "express_session_redis"]
def ratio(n, b):
    each = [x / y for x, y in zip(rps[n], rps[b])]
    median = f"{statistics.median(each):.2f}"
    if len(each) > 1 and b in bases[:2]:
        median += f" ({min(each):.2f}–{max(each):.2f})"
    return median
for n in rps:
    print(f"| {n} | {statistics.median(rps[n]):,.0f} | " + " | ".join(ratio(n, b) for b in bases) + " |")
' "$ROUNDS")
if $SMOKE; then
  echo "$table"
  echo "bench smoke: every scenario ran"
  exit 0
fi
{
  echo
  echo "## $(date -u +%Y-%m-%d) — $(git rev-parse --short HEAD), $(nproc) cores, servers on core 1, wrk -t1 -c$CONNECTIONS -d$DURATION on core 0"
  echo
  echo "Requests a second: the median of $ROUNDS rounds (each round measures every server once, in this order); each ratio is"
  echo "the median of the per-round ratios, with their range against the first two baselines."
  echo
  echo "| scenario | req/s | vs bare axum | vs tower-sessions memory | vs tower-sessions SQLite | vs express-session memory | vs express-session Redis |"
  echo "|---|---|---|---|---|---|---|"
  echo "$table"
  echo
  echo "Instructions per request (callgrind, $CALLS requests): cookie ${ir[cookie]}, bearer ${ir[bearer]}, bearer pool of $POOL ${ir[pool]}, forward auth ${ir[authz]}, bare axum ${ir[bare]}."
  echo
  echo "Node verifier (scenario 3): $verifier"
  echo
  echo "Validation p99 (scenario 6): ${calm_p99} ms alone, ${flood_p99} ms under a sign-in flood (${signins} sign-in requests/s, ${succeeded} sign-ins succeeded, the rest refused busy)."
  echo
  echo "Denylist (scenario 5): $denylist"
  echo
  echo "$cluster"
  echo
  echo "$gtr"
  echo
  echo "$global"
  echo
  echo "$ssf"
} | tee -a bench/RESULTS.md
