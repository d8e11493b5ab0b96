#!/usr/bin/env bash
# `make down`: stops exactly what `make up` started (by its pid files), newest first.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
RUN="$SPINE_STATE/run"

stop() { # name: SIGTERM (the services flush and commit), then SIGKILL after 20 s
  local f="$RUN/$1.pid" pid
  [ -f "$f" ] || return 0
  pid=$(cat "$f")
  if kill -0 "$pid" 2>/dev/null; then
    say "stopping $1 (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    if kill -0 "$pid" 2>/dev/null; then say "$1 did not stop in 20 s: killing it"; kill -KILL "$pid" 2>/dev/null || true; fi
  fi
  rm -f "$f"
}

for name in producer api processor tansu; do stop "$name"; done

if [ -f "$RUN/postgres.pid" ]; then
  PG_BIN=$(pg_bin_dir)
  PG_DATA="$SPINE_STATE/pg/data"
  say "stopping Postgres"
  if [ "$(id -u)" = 0 ]; then
    runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast -w stop >/dev/null 2>&1 || true
  else
    "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast -w stop >/dev/null 2>&1 || true
  fi
  kill -0 "$(cat "$RUN/postgres.pid")" 2>/dev/null && stop postgres # pg_ctl could not stop it
  rm -f "$RUN/postgres.pid"
fi
say "everything make up started is stopped (data kept in $SPINE_STATE; make clean removes it)"
