#!/usr/bin/env bash
# Installs everything spine needs to build, test and run locally. Idempotent: each step checks
# first and does nothing when its tool is already there, so `make up` / `make test` call it every
# time. Tools built from source (Tansu) are cached outside the clone, under $SPINE_CACHE, so a
# fresh clone on the same machine reuses them.
#
#   scripts/setup.sh            everything (apt packages, Tansu, Python validators)
#   scripts/setup.sh apt        only the Debian packages
#   scripts/setup.sh tansu      only the local broker
#   scripts/setup.sh pytools    only the Python tools the manifest tests use
#   scripts/setup.sh benchtools the Python baseline `make bench` compares against
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=scripts/lib.sh
. "$here/lib.sh"

sudo_if_needed() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    die "need root (or sudo) to run: $*"
  fi
}

# Debian packages: Postgres server, the C toolchain librdkafka builds with, tmux for the TUI's
# terminal test, sqlite3 for the data-loss tests, chromium for the page's browser test, kubectl for rendering the manifests,
# wrk for the benchmark.
setup_apt() {
  local missing=()
  command -v cmake >/dev/null || missing+=(cmake)
  command -v g++ >/dev/null || missing+=(g++)
  command -v make >/dev/null || missing+=(make)
  command -v curl >/dev/null || missing+=(curl)
  command -v tmux >/dev/null || missing+=(tmux)
  # The data-loss tests remove records from the local broker's SQLite file, as retention would.
  command -v sqlite3 >/dev/null || missing+=(sqlite3)
  command -v python3 >/dev/null || missing+=(python3 python3-pip)
  [ -f /usr/include/x86_64-linux-gnu/curl/curl.h ] || [ -f /usr/include/curl/curl.h ] || missing+=(libcurl4-openssl-dev)
  # librdkafka is built with TLS (rdkafka's `ssl` feature): it links the system OpenSSL.
  [ -f /usr/include/openssl/ssl.h ] || missing+=(libssl-dev)
  command -v pkg-config >/dev/null || missing+=(pkg-config)
  pg_bin_dir >/dev/null 2>&1 || missing+=(postgresql)
  command -v kubectl >/dev/null || missing+=(kubernetes-client)
  command -v wrk >/dev/null || missing+=(wrk)
  command -v jq >/dev/null || missing+=(jq)
  # The live page's test runs it in a real (headless) browser.
  command -v chromium >/dev/null || missing+=(chromium)
  if [ ${#missing[@]} -eq 0 ]; then return 0; fi
  say "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  sudo_if_needed apt-get update -qq
  sudo_if_needed apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # The Debian package starts a system cluster on 5432; spine never uses it (it runs its own
  # throwaway servers), so leave it alone rather than fight over the port.
}

setup_tansu() {
  if [ -x "$TANSU_BIN" ]; then return 0; fi
  command -v cargo >/dev/null || die "cargo is missing: install Rust (https://rustup.rs) first"
  command -v cmake >/dev/null || setup_apt
  say "building the local broker, Tansu $TANSU_VERSION (once per machine, ~11 min on 2 cores) into $TANSU_ROOT"
  mkdir -p "$TANSU_ROOT"
  # Its own target dir so an interrupted build resumes instead of starting over.
  CARGO_TARGET_DIR="$SPINE_CACHE/tansu-build" \
    cargo install "tansu@$TANSU_VERSION" --locked --features libsql --root "$TANSU_ROOT" >&2
  [ -x "$TANSU_BIN" ] || die "Tansu build finished but $TANSU_BIN is missing"
  rm -rf "$SPINE_CACHE/tansu-build"
}

# Only for `make bench`: the seed's kind of processor (Python, confluent-kafka, psycopg2).
setup_benchtools() {
  setup_pytools
  if "$PYTOOLS/bin/python" -c 'import confluent_kafka, psycopg2' 2>/dev/null; then return 0; fi
  say "installing confluent-kafka and psycopg2-binary into $PYTOOLS (for the benchmark's baseline)"
  "$PYTOOLS/bin/pip" install -q --disable-pip-version-check 'confluent-kafka==2.*' 'psycopg2-binary==2.9.*' >&2
}

setup_pytools() {
  if [ -x "$PYTOOLS/bin/kubernetes-validate" ]; then return 0; fi
  say "installing kubernetes-validate into $PYTOOLS"
  python3 -m venv "$PYTOOLS" >&2 || die "python3 -m venv failed: install python3-venv"
  "$PYTOOLS/bin/pip" install -q --disable-pip-version-check 'kubernetes-validate==1.31.*' >&2
}

case "${1:-all}" in
  apt) setup_apt ;;
  tansu) setup_tansu ;;
  pytools) setup_pytools ;;
  benchtools) setup_benchtools ;;
  all) setup_apt; setup_tansu; setup_pytools ;;
  *) die "unknown step '$1' (apt, tansu, pytools, benchtools, all)" ;;
esac
