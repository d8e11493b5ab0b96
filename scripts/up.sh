#!/usr/bin/env bash
# `make up`: the whole spine on this machine, in one command.
#
# Installs what is missing, builds release binaries, then starts (each only if not already
# running, so re-running is harmless):
#   Postgres  .spine/pg, port $SPINE_PG_PORT (55432), database/user "platform"
#   broker    Tansu on 127.0.0.1:9092, data in .spine/tansu; skipped when KAFKA_BOOTSTRAP
#             is set and answers (e.g. a Redpanda you already run)
#   spine-processor, spine-api (http://localhost:8000), spine-producer
# Logs go to .spine/logs/, pid files to .spine/run/. In a terminal it then opens spine-tui;
# quitting the TUI leaves the spine running (`make down` stops it).
#
#   scripts/up.sh            start
#   scripts/up.sh --status   what is running (exit 1 if nothing)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

PG_PORT=$SPINE_PG_PORT
API_PORT=$SPINE_API_PORT
LOGS="$SPINE_STATE/logs"
RUN="$SPINE_STATE/run"
BIN="$CARGO_TARGET_DIR/release"

running() { # name -> 0 if its pid file names a live process (not one dying or a zombie)
  local f="$RUN/$1.pid" pid state
  [ -f "$f" ] || return 1
  pid=$(cat "$f")
  kill -0 "$pid" 2>/dev/null || return 1
  state=$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1)
  case "$state" in Z|X|x|"") return 1 ;; esac
}

answers() { # host:port -> 0 if something accepts TCP there
  local host=${1%:*} port=${1##*:}
  timeout 2 bash -c "exec 3<>/dev/tcp/$host/$port" 2>/dev/null
}

wait_for() { # what, seconds, command...
  local what=$1 secs=$2; shift 2
  for _ in $(seq $((secs * 5))); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.2
  done
  die "$what did not come up within ${secs}s (see $LOGS/)"
}

status() {
  local any=1
  for name in postgres tansu processor api producer; do
    if running "$name"; then
      printf '  %-10s running (pid %s)\n' "$name" "$(cat "$RUN/$name.pid")"; any=0
    elif [ -f "$RUN/$name.pid" ]; then
      printf '  %-10s stopped (stale pid file)\n' "$name"
    fi
  done
  return $any
}

if [ "${1:-}" = "--status" ]; then status; exit $?; fi

mkdir -p "$LOGS" "$RUN"

# --- the broker: the user's, or our Tansu ---------------------------------------------
if [ -n "${KAFKA_BOOTSTRAP:-}" ] && answers "${KAFKA_BOOTSTRAP%%,*}"; then
  BOOTSTRAP=$KAFKA_BOOTSTRAP
  say "using the broker at KAFKA_BOOTSTRAP=$BOOTSTRAP"
  USE_TANSU=0
else
  [ -n "${KAFKA_BOOTSTRAP:-}" ] && warn "KAFKA_BOOTSTRAP=$KAFKA_BOOTSTRAP does not answer: starting the local broker instead"
  BOOTSTRAP=127.0.0.1:9092
  USE_TANSU=1
fi

# --- installs and build -----------------------------------------------------------------
scripts/setup.sh apt
[ "$USE_TANSU" = 1 ] && scripts/setup.sh tansu
say "building release binaries (first time: several minutes)"
cargo build --release --locked --bins --quiet

# --- Postgres -----------------------------------------------------------------------------
PG_BIN=$(pg_bin_dir) || die "Postgres server binaries not found (scripts/setup.sh apt installs them)"
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
if [ "$(id -u)" = 0 ] && ! runuser -u postgres -- test -x "$SPINE_STATE" 2>/dev/null; then
  # initdb/postgres refuse root, and user postgres cannot reach this clone (e.g. under /root):
  # keep the data where it can, linked from .spine/pg.
  PG_DIR="/var/tmp/spine-pg-$(printf '%s' "$SPINE_STATE" | sha1sum | cut -c1-10)"
  mkdir -p "$PG_DIR"
  [ -L "$SPINE_STATE/pg" ] || { rm -rf "$SPINE_STATE/pg"; ln -s "$PG_DIR" "$SPINE_STATE/pg"; }
else
  PG_DIR="$SPINE_STATE/pg"
  mkdir -p "$PG_DIR"
fi
[ "$(id -u)" = 0 ] && chown postgres:postgres "$PG_DIR"
if [ ! -f "$PG_DIR/data/PG_VERSION" ]; then
  say "creating the local Postgres cluster in $SPINE_STATE/pg"
  as_pg "$PG_BIN/initdb" -D "$PG_DIR/data" -U postgres --auth=trust -E UTF8 --locale=C >"$LOGS/postgres-init.log" 2>&1 \
    || die "initdb failed: $LOGS/postgres-init.log"
fi
if as_pg "$PG_BIN/pg_ctl" -D "$PG_DIR/data" status >/dev/null 2>&1; then
  say "Postgres already running on port $PG_PORT"
else
  say "starting Postgres on 127.0.0.1:$PG_PORT"
  as_pg "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w -t 60 \
    -o "-p $PG_PORT -k $PG_DIR -c listen_addresses=127.0.0.1" start >/dev/null \
    || die "Postgres did not start: $PG_DIR/server.log"
fi
as_pg head -1 "$PG_DIR/data/postmaster.pid" >"$RUN/postgres.pid"
ln -sf "$PG_DIR/server.log" "$LOGS/postgres.log"
psql_pg() { as_pg psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -qAt "$@"; }
if [ "$(psql_pg -c "SELECT 1 FROM pg_roles WHERE rolname = 'platform'")" != 1 ]; then
  psql_pg -c "CREATE ROLE platform LOGIN"
fi
if [ "$(psql_pg -c "SELECT 1 FROM pg_database WHERE datname = 'platform'")" != 1 ]; then
  psql_pg -c "CREATE DATABASE platform OWNER platform"
fi
# The API's own role (README, "The API's Postgres role"): spine_reader, the NOLOGIN group the
# processor's migrations grant SELECT to (made here because platform may not create roles), and
# spine_api, a login member of it whose sessions are read-only. Local connections are trusted,
# so it has no password.
if [ "$(psql_pg -c "SELECT 1 FROM pg_roles WHERE rolname = 'spine_reader'")" != 1 ]; then
  psql_pg -c "CREATE ROLE spine_reader NOLOGIN"
fi
if [ "$(psql_pg -c "SELECT 1 FROM pg_roles WHERE rolname = 'spine_api'")" != 1 ]; then
  psql_pg -c "CREATE ROLE spine_api LOGIN"
fi
psql_pg -c "GRANT spine_reader TO spine_api" -c "ALTER ROLE spine_api SET default_transaction_read_only = on"

# --- Tansu --------------------------------------------------------------------------------
if [ "$USE_TANSU" = 1 ]; then
  if running tansu; then
    say "broker already running on $BOOTSTRAP"
  elif answers "$BOOTSTRAP"; then
    die "$BOOTSTRAP is taken by another process: set KAFKA_BOOTSTRAP=$BOOTSTRAP to use that broker, or free the port"
  else
    say "starting the local broker (Tansu, SQLite engine) on $BOOTSTRAP"
    mkdir -p "$SPINE_STATE/tansu"
    # exec: the pid recorded is the broker's own, and nothing keeps this script's output open.
    (cd "$SPINE_STATE/tansu" && RUST_LOG=warn exec setsid "$TANSU_BIN" broker \
        --listener-url "tcp://$BOOTSTRAP" --advertised-listener-url "tcp://$BOOTSTRAP" \
        --storage-engine sqlite://tansu.db) >>"$LOGS/tansu.log" 2>&1 </dev/null &
    echo $! >"$RUN/tansu.pid"
    wait_for "the broker" 30 answers "$BOOTSTRAP"
  fi
fi

# --- the services ---------------------------------------------------------------------------
export KAFKA_BOOTSTRAP=$BOOTSTRAP
export POSTGRES_HOST=127.0.0.1 POSTGRES_PORT=$PG_PORT POSTGRES_DB=platform POSTGRES_USER=platform
unset DATABASE_URL POSTGRES_PASSWORD API_DATABASE_URL POSTGRES_API_USER POSTGRES_API_PASSWORD

start() { # name, the address it listens on, then env assignments and the command
  local name=$1 addr=$2; shift 2
  if running "$name"; then say "$name already running (pid $(cat "$RUN/$name.pid"))"; return; fi
  # A process killed a moment ago may still hold its port for a few milliseconds.
  for _ in $(seq 50); do answers "$addr" || break; sleep 0.2; done
  answers "$addr" && die "$addr is in use by another process: stop it, or set the matching address variable"
  say "starting $name"
  setsid env "$@" >>"$LOGS/$name.log" 2>&1 </dev/null &
  echo $! >"$RUN/$name.pid"
}
http_ok() { curl -fsS -o /dev/null --max-time 2 "$1"; }

start processor 127.0.0.1:9101 METRICS_ADDR=127.0.0.1:9101 "$BIN/spine-processor"
wait_for "spine-processor" 60 http_ok http://127.0.0.1:9101/readyz
start api "127.0.0.1:$API_PORT" API_ADDR="0.0.0.0:$API_PORT" POSTGRES_API_USER=spine_api "$BIN/spine-api"
wait_for "spine-api" 30 http_ok "http://127.0.0.1:$API_PORT/readyz"
start producer 127.0.0.1:9100 METRICS_ADDR=127.0.0.1:9100 "$BIN/spine-producer"
wait_for "spine-producer" 60 http_ok http://127.0.0.1:9100/readyz

cat <<MSG

  spine is up.
    live page     http://localhost:$API_PORT
    orders        curl 'localhost:$API_PORT/orders?limit=5'
    stats         curl localhost:$API_PORT/stats
    batches       curl 'localhost:$API_PORT/batches?limit=3'
    live stream   curl -N localhost:$API_PORT/stream   (a batch event per commit)
    the topic     $BIN/spine-tui peek --num 5 --brokers $BOOTSTRAP
    Postgres      psql postgres://platform@127.0.0.1:$PG_PORT/platform   (the API reads as spine_api)
    metrics       curl localhost:9100/metrics (producer), localhost:9101/metrics (processor)
    logs          $LOGS/   (make logs)
    observer      make tui
    stop          make down

MSG

if [ -t 0 ] && [ -t 1 ] && [ -z "${SPINE_NO_TUI:-}" ]; then
  say "opening spine-tui (q quits it; the spine keeps running)"
  "$BIN/spine-tui" --api "http://localhost:$API_PORT" --brokers "$BOOTSTRAP" --log-file "$LOGS/spine-tui.log" || true
  echo "spine is still running: make down stops it."
fi
