#!/usr/bin/env bash
# `make bench`: builds release binaries and runs the benchmark harness, spine-bench
# (bench/src/main.rs), then the API abuse run below. Extra arguments go to the harness, e.g.
#   scripts/bench.sh --events 200000 --skip-api
#   scripts/bench.sh --only drain,freshness    # some steps (spine-bench --help lists them)
#   scripts/bench.sh --only abuse              # just the API abuse run (also: --only-api-abuse)
# The abuse run is part of every run without --only, and of a run whose --only names `abuse`.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

# --- spine-api under abuse ------------------------------------------------------------------
# 64 connections (wrk) hammer /orders?status=order_placed&limit=1000 over 200,000 orders while
# /readyz is polled every 100 ms and a 65th client samples /orders one request at a time.
# Reports /readyz's status codes, how the hammering was answered (200 or 503), and the p99
# latency of the 503s: client-side (the sampler, curl's time_total) and server-side (the access
# log). On a fresh throwaway Postgres (fsync off, as in the tests) and the release spine-api,
# reading as its own role spine_api. Settings: ABUSE_ORDERS, ABUSE_SECONDS, ABUSE_CONNECTIONS.
api_abuse() {
  local orders=${ABUSE_ORDERS:-200000} seconds=${ABUSE_SECONDS:-15} conns=${ABUSE_CONNECTIONS:-64}
  local bin="$CARGO_TARGET_DIR/release" pg_port api_port
  # Global, for the cleanup trap.
  ABUSE_PIDS=()
  pg_bin=$(pg_bin_dir) || { echo "Postgres server binaries not found (scripts/setup.sh apt)" >&2; return 1; }
  command -v wrk >/dev/null || { echo "wrk not found (scripts/setup.sh benchtools)" >&2; return 1; }
  dir=$(mktemp -d /tmp/spine-abuse-XXXXXX)
  free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
  pg_port=$(free_port); api_port=$(free_port)
  as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
  [ "$(id -u)" = 0 ] && chown postgres:postgres "$dir"
  # shellcheck disable=SC2317 # called by the trap
  abuse_cleanup() {
    for p in "${ABUSE_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    as_pg "$pg_bin/pg_ctl" -D "$dir/data" stop -m immediate >/dev/null 2>&1 || true
    rm -rf "$dir"
  }
  trap abuse_cleanup EXIT
  as_pg "$pg_bin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --locale=C >"$dir/initdb.log" 2>&1
  as_pg "$pg_bin/pg_ctl" -D "$dir/data" -l "$dir/pg.log" -w -t 60 -o "-p $pg_port -k $dir \
    -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c max_connections=200" start >/dev/null
  local psql=(psql -h 127.0.0.1 -p "$pg_port" -U postgres -qAt -v ON_ERROR_STOP=1)
  "${psql[@]}" -d postgres -c "CREATE DATABASE platform" \
    -c "CREATE ROLE spine_reader NOLOGIN" -c "CREATE ROLE spine_api LOGIN IN ROLE spine_reader"

  # The processor migrates at start-up (before it needs a broker): run it until the schema is there.
  KAFKA_BOOTSTRAP=127.0.0.1:1 METRICS_ADDR=127.0.0.1:0 DATABASE_URL="postgres://postgres@127.0.0.1:$pg_port/platform" \
    "$bin/spine-processor" >"$dir/processor.log" 2>&1 &
  local processor=$!
  ABUSE_PIDS+=("$processor")
  # Every migration, not just the first few: spine-api is not ready until the schema is current.
  local newest
  newest=$(find services/core/migrations -name 'V*__*.sql' | sed -E 's|.*/V([0-9]+)__.*|\1|' | sort -n | tail -1)
  for _ in $(seq 300); do
    [ "$("${psql[@]}" -d platform -c "SELECT max(version) >= $newest FROM refinery_schema_history" 2>/dev/null)" = t ] && break
    sleep 0.1
  done
  kill "$processor"; wait "$processor" 2>/dev/null || true
  "${psql[@]}" -d platform -c "
    INSERT INTO current_orders
    SELECT 'tenant-' || (i % 20), 'ord-' || i,
           (ARRAY['order_placed', 'order_paid', 'order_shipped', 'order_cancelled'])[1 + i % 4],
           i, 'USD', timestamptz '2026-01-01' + i * interval '1 second', gen_random_uuid()
      FROM generate_series(1, $orders) i;
    ANALYZE current_orders;"

  API_ADDR=127.0.0.1:$api_port POSTGRES_HOST=127.0.0.1 POSTGRES_PORT=$pg_port POSTGRES_DB=platform \
    POSTGRES_USER=postgres POSTGRES_API_USER=spine_api LOG_FORMAT=json RUST_LOG=info \
    "$bin/spine-api" 2>"$dir/api.log" &
  ABUSE_PIDS+=($!)
  local base="http://127.0.0.1:$api_port"
  for _ in $(seq 100); do curl -fs -o /dev/null "$base/readyz" && break; sleep 0.1; done
  curl -fs -o /dev/null "$base/readyz" || { echo "spine-api did not become ready:" >&2; tail "$dir/api.log" >&2; return 1; }

  local url="$base/orders?status=order_placed&limit=1000"
  ( end=$((SECONDS + seconds)); while [ $SECONDS -lt "$end" ]; do
      curl -s -o /dev/null --max-time 5 -w '%{http_code} %{time_total}\n' "$base/readyz" || echo "000 5"
      sleep 0.1
    done ) >"$dir/readyz.txt" &
  ABUSE_PIDS+=($!)
  local poller=$!
  ( end=$((SECONDS + seconds)); while [ $SECONDS -lt "$end" ]; do
      curl -s -o /dev/null --max-time 5 -w '%{http_code} %{time_total}\n' "$url" || echo "000 5"
    done ) >"$dir/sampler.txt" &
  ABUSE_PIDS+=($!)
  local sampler=$!
  wrk -t2 -c"$conns" -d"${seconds}s" --latency "$url" >"$dir/wrk.txt" 2>&1
  wait "$poller" "$sampler" 2>/dev/null || true

  p99() { sort -n | awk '{v[NR]=$1} END {if (NR == 0) {print "n/a"; exit} i=int(NR*0.99); if (i < NR*0.99) i++; if (i < 1) i=1; printf "%.2f ms (n=%d)\n", v[i], NR}'; }
  echo
  echo "spine-api under abuse: $conns connections on /orders?status=order_placed&limit=1000, $orders orders, ${seconds}s"
  echo "  wrk:             $(grep -E 'Requests/sec' "$dir/wrk.txt" | xargs), $(grep -E 'requests in' "$dir/wrk.txt" | xargs)"
  echo "                   non-2xx (the 503s): $(grep -E 'Non-2xx' "$dir/wrk.txt" | awk '{print $NF}' || true)"
  echo "                   latency of all answers: $(grep -E '^ +(50|99)%' "$dir/wrk.txt" | xargs)"
  echo "  /readyz codes:   $(awk '{print $1}' "$dir/readyz.txt" | sort | uniq -c | xargs) (every 100 ms)"
  echo "  /readyz p99:     $(awk '{print $2 * 1000}' "$dir/readyz.txt" | p99)"
  echo "  sampler codes:   $(awk '{print $1}' "$dir/sampler.txt" | sort | uniq -c | xargs)"
  echo "  503 p99, client: $(awk '$1 == 503 {print $2 * 1000}' "$dir/sampler.txt" | p99)"
  echo "  503 p99, server: $(jq -rR 'fromjson? | select(.message == "request" and .status == 503 and .span.path == "/orders") | .latency_ms' "$dir/api.log" | p99)"
  echo "  200 p99, server: $(jq -rR 'fromjson? | select(.message == "request" and .status == 200 and .span.path == "/orders") | .latency_ms' "$dir/api.log" | p99)"
  echo "  access log:      $(grep -c '"message":"request"' "$dir/api.log") lines"
}

# Which steps run: every one, or those --only names (the harness checks the names).
args=() only=
while [ $# -gt 0 ]; do
  case $1 in
    --only-api-abuse) only=abuse ;;
    --only) only=${2:-}; args+=("$1" "${2:-}"); shift ;;
    --only=*) only=${1#--only=}; args+=("$1") ;;
    *) args+=("$1") ;;
  esac
  shift
done
run_abuse=true run_harness=true
if [ -n "$only" ]; then
  case ",$only," in *,abuse,*) ;; *) run_abuse=false ;; esac
  [ -z "$(tr ',' '\n' <<<"$only" | grep -vx -e abuse -e '')" ] && run_harness=false
fi

scripts/setup.sh apt
if $run_harness; then
  scripts/setup.sh tansu
  scripts/setup.sh benchtools
  export SPINE_BENCH_PYTHON="$PYTOOLS/bin/python"
fi
say "building release binaries"
cargo build --release --locked --bins --quiet
if $run_harness; then
  BENCH="$CARGO_TARGET_DIR/release/spine-bench"
  [ -x "$BENCH" ] || die "$BENCH is missing after the build: is bench/ a member of the workspace?"
  "$BENCH" "${args[@]}"
fi
if $run_abuse; then api_abuse; fi
