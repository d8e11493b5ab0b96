# spine: `make up` runs the whole spine locally, `make test` runs every test. Both install what
# they need first (scripts/setup.sh, idempotent). `make help` lists every target.

SHELL := /bin/bash
.DEFAULT_GOAL := help

SPINE_CACHE ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/spine
# Compiled artefacts outside the clone: a fresh clone reuses the dependencies already built.
export CARGO_TARGET_DIR ?= $(SPINE_CACHE)/target
export SPINE_CACHE
# Recipes that need `make up`'s state (SPINE_STATE) or ports (SPINE_API_PORT) source the file
# up.sh reads them from, so both always agree.
ENV := . scripts/env.sh &&

.PHONY: help setup build up down logs status tui test lint bench clean

help: ## List the targets
	@if [ -t 1 ] && [ -z "$${NO_COLOR:-}" ]; then on='\033[36m' off='\033[0m'; else on= off=; fi; \
	  grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | \
	  awk -v on="$$on" -v off="$$off" 'BEGIN {FS = ":.*## "}; {printf "  %s%-14s%s %s\n", on, $$1, off, $$2}'

setup: ## Install what building, testing and running need (apt packages, Tansu, validators)
	scripts/setup.sh

build: ## Build release binaries: the four services and spine-bench
	cargo build --release --locked --bins

up: ## Start Postgres, the broker, processor, API and producer locally; open spine-tui in a terminal
	scripts/up.sh

down: ## Stop exactly what `make up` started
	scripts/down.sh

logs: ## Follow the logs of everything `make up` started
	@$(ENV) { ls "$$SPINE_STATE"/logs/*.log >/dev/null 2>&1 || { echo "nothing has run yet: make up"; exit 1; }; \
	  exec tail -n 40 -F "$$SPINE_STATE"/logs/*.log; }

status: ## Show what `make up` started and whether it is still running
	@scripts/up.sh --status

tui: ## Open spine-tui against the local spine
	@$(ENV) mkdir -p "$$SPINE_STATE/logs" && exec "$$CARGO_TARGET_DIR/release/spine-tui" --api "http://localhost:$$SPINE_API_PORT" \
	  --brokers "$${KAFKA_BOOTSTRAP:-127.0.0.1:9092}" --log-file "$$SPINE_STATE/logs/spine-tui.log"

lint: ## cargo fmt --check and clippy with warnings as errors
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets --locked -- -D warnings

test: setup lint ## Every test: fmt, clippy, unit, Postgres/broker integration, end-to-end, manifests
	@# End-to-end tests run the binaries of other packages: build them all first.
	cargo build --workspace --bins --locked
	cargo test --workspace --locked --no-fail-fast
	$(MAKE) --no-print-directory deploy-check

bench: ## Measure: backlog drain (CPU per million events, peak RSS, Postgres by statement), freshness, growth, API under load
	scripts/bench.sh

clean: ## Remove local state (SPINE_STATE, default .spine/) after `make down`; keeps the build cache
	@if scripts/up.sh --status >/dev/null 2>&1; then echo "still running: make down first"; exit 1; fi
	@# As root, up.sh keeps Postgres' data outside the clone, linked from $$SPINE_STATE/pg: remove both.
	@$(ENV) if [ -L "$$SPINE_STATE/pg" ]; then rm -rf -- "$$(readlink "$$SPINE_STATE/pg")"; fi; \
	  echo "rm -rf $$SPINE_STATE"; rm -rf -- "$$SPINE_STATE"

include deploy/deploy.mk
