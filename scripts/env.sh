# Shared paths and ports for spine's scripts and the Makefile. Sourced, not run (scripts source
# lib.sh, which sources this and adds say/warn/die).
# Everything built or downloaded once per machine lives under SPINE_CACHE, outside the clone.
SPINE_CACHE=${SPINE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/spine}
TANSU_VERSION=0.6.0
TANSU_ROOT="$SPINE_CACHE/tansu-$TANSU_VERSION"
TANSU_BIN="$TANSU_ROOT/bin/tansu"
PYTOOLS="$SPINE_CACHE/pytools"
export SPINE_CACHE TANSU_VERSION TANSU_ROOT TANSU_BIN PYTOOLS

# The directory holding initdb/pg_ctl/postgres (Debian keeps them off PATH).
pg_bin_dir() {
  local d
  for d in /usr/lib/postgresql/*/bin; do
    if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then echo "$d"; return 0; fi
  done
  if command -v initdb >/dev/null && command -v pg_ctl >/dev/null; then
    dirname "$(command -v initdb)"; return 0
  fi
  return 1
}

# Build artefacts live outside the clone too, so a fresh clone on this machine reuses the
# compiled dependencies (librdkafka alone takes minutes on 2 cores).
CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$SPINE_CACHE/target}
export CARGO_TARGET_DIR

# Where `make up` keeps its state: the clone's .spine/ (logs, pid files, Postgres data).
SPINE_STATE=${SPINE_STATE:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/.spine}
export SPINE_STATE

# The ports `make up` serves on, read by up.sh and by the Makefile's targets (make tui).
SPINE_API_PORT=${SPINE_API_PORT:-8000}
SPINE_PG_PORT=${SPINE_PG_PORT:-55432}
export SPINE_API_PORT SPINE_PG_PORT
