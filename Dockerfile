# syntax=docker/dockerfile:1
# The cart service's image: cartd, cart-webhook and cartctl, built in release mode.
#
#   docker build -t cart:dev .
#   docker run --rm cart:dev cartd --help
#
# Stages: `chef` (the toolchain and cargo-chef), `planner` (the dependency recipe),
# `builder` (dependencies first, in a layer of their own that a change to our sources
# does not invalidate, then the three binaries) and `runtime` (Debian bookworm slim with
# CA roots and a non-root user; no compiler, no cargo, no shell tools beyond Debian's base).
# `make image-check` proves the runtime stage without a Docker engine (docs/operations.md).

# The toolchain CI builds and tests with (rust-version in Cargo.toml is the floor).
ARG RUST_VERSION=1.95
ARG CHEF_VERSION=0.1.71

FROM rust:${RUST_VERSION}-slim-bookworm AS chef
ARG CHEF_VERSION
RUN cargo install cargo-chef --locked --version "${CHEF_VERSION}"
WORKDIR /src

FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
COPY --from=planner /src/recipe.json recipe.json
# Only the dependencies (of the whole workspace, as the recipe has them): this layer is
# rebuilt when a Cargo.toml or Cargo.lock changes, not when a source file does.
RUN cargo chef cook --release --recipe-path recipe.json
COPY . .
# The release profile keeps line tables (for perf on a build machine); the image drops
# them (about 100 MB to 23 MB per binary) and keeps the symbols, so backtraces still name
# functions. `make image-check` strips its copies the same way.
RUN cargo build --release --locked -p cartd -p cart-webhook -p cartctl --bins \
    && mkdir -p /out \
    && cp target/release/cartd target/release/cart-webhook target/release/cartctl /out/ \
    && strip --strip-debug /out/cartd /out/cart-webhook /out/cartctl

FROM debian:bookworm-slim AS runtime
# ca-certificates: the system roots for cart-webhook's HTTPS (--ca-file / CART_WEBHOOK_CA_FILE
# points at a bundle of one's own); tzdata is not needed: every time is UTC.
# Unpinned (hadolint DL3008): the roots should be the suite's current ones at each build.
# `make image-check` replays these RUN lines in a debootstrapped bookworm root.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid 10001 cart \
    && useradd --system --uid 10001 --gid cart --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin cart
COPY --from=builder /out/cartd /out/cart-webhook /out/cartctl /usr/local/bin/
COPY deploy/catalog.json /etc/cart/catalog.json
# Inside a container the admin endpoints (/healthz, /readyz, /metrics) must answer on the
# pod's address, not on loopback as on a developer's machine.
ENV CART_ADMIN_ADDR=0.0.0.0:9464 \
    CART_WEBHOOK_ADMIN_ADDR=0.0.0.0:9465 \
    CART_LOG_FORMAT=json
USER 10001:10001
EXPOSE 9464 9465
# The image runs cartd by default; `cart-webhook` and `cartctl ...` are named commands.
CMD ["cartd"]
