#!/usr/bin/env bash
# Runs every fuzz target for FUZZ_SECS seconds each (make fuzz FUZZ_SECS=60) and prints
# the inputs each one ran. New inputs land in corpus/<target> (minimize with
# `cargo fuzz cmin <target>` before committing); a crash stops its target, leaves the
# input in artifacts/<target>/ and makes this script fail after the other targets ran.
# Keep a reproducer in artifacts-kept/<target>/ so that `cargo test -p cart-proto
# --test fuzz_corpus` replays it.
set -euo pipefail
cd "$(dirname "$0")"
secs="${FUZZ_SECS:-60}"
targets="${FUZZ_TARGETS:-cart_request_json cart_request_protobuf order_request admin_document admin_request cart_event order_event}"
# The toolchain is stable: RUSTC_BOOTSTRAP lets it take the -Z flags libFuzzer builds
# need. No sanitizer: the decoders are safe Rust (unsafe_code is forbidden), and it
# triples the inputs per second; debug assertions make overflows panic, as in tests.
export RUSTC_BOOTSTRAP=1
flags=(--sanitizer none --debug-assertions)
# The instrumented build stays in fuzz/target, apart from the workspace's.
unset CARGO_TARGET_DIR
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
[ -d corpus/admin_request ] || cargo run -q --example seed
cargo fuzz build "${flags[@]}"
mkdir -p logs
failed=()
total=0
for t in $targets; do
  mkdir -p "corpus/$t"
  log="logs/$t.$(date +%Y%m%dT%H%M%S).log"
  if cargo fuzz run "${flags[@]}" "$t" -- -max_total_time="$secs" -print_final_stats=1 \
      >"$log" 2>&1; then
    status=ok
  else
    status=CRASH
    failed+=("$t")
  fi
  runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n1)"
  runs="${runs:-0}"
  total=$((total + runs))
  printf '%-24s %12s inputs in %ss  %s\n' "$t" "$runs" "$secs" "$status"
done
printf '%-24s %12s inputs\n' total "$total"
if [ ${#failed[@]} -gt 0 ]; then
  echo "crashed: ${failed[*]} (inputs in fuzz/artifacts/<target>/, logs in fuzz/logs/<target>.<time>.log)" >&2
  exit 1
fi
