# spine: `make up` runs the whole spine locally, `make test` runs every test. Both install what
# they need first (scripts/setup.sh, idempotent). `make help` lists every target.

SHELL := /bin/bash
.DEFAULT_GOAL := help

SPINE_CACHE ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/spine
# Compiled artefacts outside the clone: a fresh clone reuses the dependencies already built.
export CARGO_TARGET_DIR ?= $(SPINE_CACHE)/target
export SPINE_CACHE

.PHONY: help setup build up down logs status tui test lint bench clean

help: ## List the targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | \
	  awk 'BEGIN {FS = ":.*## "}; {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}'

setup: ## Install what building, testing and running need (apt packages, Tansu, validators)
	scripts/setup.sh

build: ## Build release binaries of all four services
	cargo build --release --locked --bins

up: ## Start Postgres, the broker, processor, API and producer locally; open spine-tui in a terminal
	scripts/up.sh

down: ## Stop exactly what `make up` started
	scripts/down.sh

logs: ## Follow the logs of everything `make up` started
	@ls .spine/logs/*.log >/dev/null 2>&1 || { echo "nothing has run yet: make up"; exit 1; }
	tail -n 40 -F .spine/logs/*.log

status: ## Show what `make up` started and whether it is still running
	@scripts/up.sh --status

tui: ## Open spine-tui against the local spine
	"$(CARGO_TARGET_DIR)/release/spine-tui" --api http://localhost:8000 --brokers "$${KAFKA_BOOTSTRAP:-127.0.0.1:9092}" --log-file .spine/logs/spine-tui.log

lint: ## cargo fmt --check and clippy with warnings as errors
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets --locked -- -D warnings

test: setup lint ## Every test: fmt, clippy, unit, Postgres/broker integration, end-to-end, manifests
	@# End-to-end tests run the binaries of other packages: build them all first.
	cargo build --workspace --bins --locked
	cargo test --workspace --locked --no-fail-fast
	$(MAKE) --no-print-directory deploy-check

bench: ## Measure: processor catch-up of 1M events (CPU per million), broker ceiling, API under load
	scripts/bench.sh

clean: ## Remove local state (.spine/) after `make down`; keeps the build cache
	@if scripts/up.sh --status >/dev/null 2>&1; then echo "still running: make down first"; exit 1; fi
	rm -rf .spine

include deploy/deploy.mk
