# Developer entry points for the cart service.
#
#   make run      start/reuse PostgreSQL + nats-server, then run cartd in the foreground
#   make test     start/reuse the services, then run the workspace tests
#   make ci       what CI runs (.ci/run)
#   make bench-feed  export and projection-rebuild throughput (BENCHMARKS.md)
#
# DATABASE_URL and NATS_URL can be overridden from the environment or the
# command line; they are exported to every recipe (cartd and the tests read them).

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

CARGO ?= cargo
DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/cart
NATS_URL ?= nats://127.0.0.1:4222
CATALOG ?= $(or $(CART_CATALOG),deploy/catalog.json)
# Extra arguments for the test runner, e.g. make test TEST_ARGS='cart_flow'
TEST_ARGS ?=
export DATABASE_URL NATS_URL
# Tests create a fresh database per test on the server of DATABASE_URL; they need an
# existing database to connect to first, so they use the server's maintenance database.
TEST_DATABASE_URL ?= $(shell sed -E 's#^([a-z]+://[^/?]*)(/[^?]*)?#\1/postgres#' <<< '$(DATABASE_URL)')

# cargo-nextest when installed, else cargo test (only evaluated by `make test`).
TEST_CMD = $(if $(shell $(CARGO) nextest --version 2>/dev/null),$(CARGO) nextest run,$(CARGO) test) --workspace --no-fail-fast

# cart-domain must stay free of I/O, async and wire-format crates.
DOMAIN_FORBIDDEN_RE := ^(tokio|sqlx|async-nats|prost|serde)\b

.PHONY: help services services-stop build run test fmt fmt-check lint check-deps ci bench-feed bench-domain

help:
	@echo "targets: run test build services services-stop fmt fmt-check lint check-deps ci bench-feed bench-domain"
	@echo "DATABASE_URL=$(DATABASE_URL)"
	@echo "NATS_URL=$(NATS_URL)"

services:
	deploy/dev/services.sh

services-stop:
	deploy/dev/services.sh stop

build:
	$(CARGO) build --workspace --bins

run: services
	@echo "make: cartd starts below; in another terminal try: cargo run -q -p cartctl -- --help"
	$(CARGO) run -p cartd --bin cartd -- --catalog $(CATALOG)

# Seeds database cart_bench_feed with BENCH_EVENTS events (once) and prints medians.
BENCH_EVENTS ?= 1000000
bench-feed: services
	DATABASE_URL='$(TEST_DATABASE_URL)' $(CARGO) run --release -q -p cart-bench -- feed --events $(BENCH_EVENTS)

# criterion micro-benchmarks of the pure domain: the event fold and pricing.
bench-domain:
	$(CARGO) bench -p cart-domain --bench domain

test: services
	DATABASE_URL='$(TEST_DATABASE_URL)' $(TEST_CMD) $(TEST_ARGS)

fmt:
	$(CARGO) fmt --all

fmt-check:
	$(CARGO) fmt --all -- --check

lint:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

check-deps:
	@tree="$$($(CARGO) tree -p cart-domain -e normal --prefix none)"; \
	bad="$$(grep -E '$(DOMAIN_FORBIDDEN_RE)' <<<"$$tree" | sort -u || true)"; \
	if [ -n "$$bad" ]; then \
		echo "check-deps: cart-domain must not depend on tokio, sqlx, async-nats, prost or serde; found:"; \
		echo "$$bad" | sed 's/^/  /'; \
		exit 1; \
	fi; \
	echo "check-deps: ok (cart-domain has no tokio/sqlx/async-nats/prost/serde dependency)"

ci: fmt-check check-deps lint test
