#!/usr/bin/env bash
# `make bench`: builds release binaries and runs the benchmark harness, spine-bench
# (bench/src/main.rs). Extra arguments go to the harness, e.g.
#   scripts/bench.sh --events 200000 --skip-api
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
scripts/setup.sh apt
scripts/setup.sh tansu
scripts/setup.sh benchtools
export SPINE_BENCH_PYTHON="$PYTOOLS/bin/python"
say "building release binaries"
cargo build --release --locked --bins --quiet
BENCH="$CARGO_TARGET_DIR/release/spine-bench"
[ -x "$BENCH" ] || die "$BENCH is missing after the build: is bench/ a member of the workspace?"
exec "$BENCH" "$@"
