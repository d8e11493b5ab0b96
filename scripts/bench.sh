#!/usr/bin/env bash
# `make bench`: builds release binaries and runs the benchmark harness
# (services/testkit/src/bin/spine-bench.rs). Extra arguments go to the harness, e.g.
#   scripts/bench.sh --events 200000 --skip-api
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
scripts/setup.sh apt
scripts/setup.sh tansu
scripts/setup.sh benchtools
export SPINE_BENCH_PYTHON="$PYTOOLS/bin/python"
cargo build --release --locked --bins --quiet
exec "$CARGO_TARGET_DIR/release/spine-bench" "$@"
