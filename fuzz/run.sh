#!/usr/bin/env bash
# Runs every fuzz target for a bounded time, starting from fuzz/inputs/:
#   bash fuzz/run.sh [SECONDS_EACH]    (default 25; .ci/run uses the default)
# cargo-fuzz passes nightly-only flags (-Z) to rustc and cargo; RUSTC_BOOTSTRAP=1
# makes the stable toolchain accept them, so no nightly toolchain is needed.
# A failing input is left in fuzz/artifacts/<target>/: keep it as
# fuzz/inputs/<target>/<what-broke> (then the normal test suite replays it,
# tests/it/fuzz_regressions.rs) and fix the code.
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:-25}
cargo_fuzz_version=0.13.2
export RUSTC_BOOTSTRAP=1 CARGO_TERM_COLOR=never

if ! cargo fuzz --version 2>/dev/null | grep -qxF "cargo-fuzz $cargo_fuzz_version"; then
  cargo install --locked --version "$cargo_fuzz_version" cargo-fuzz
fi
cargo fmt --check
cargo fetch --locked # cargo fuzz has no --locked: fail here if Cargo.lock is stale
cargo fuzz build -O

for target in $(cargo fuzz list); do
  mkdir -p "corpus/$target"
  log="corpus/$target.log"
  dict=()
  [ -f "dicts/$target.dict" ] && dict=(-dict="dicts/$target.dict")
  if cargo fuzz run -O "$target" "corpus/$target" "inputs/$target" -- \
    -max_total_time="$seconds" "${dict[@]}" >"$log" 2>&1; then
    echo "fuzz $target: $(grep -E '^Done [0-9]+ runs' "$log" || echo '(no summary)')"
  else
    tail -n 40 "$log"
    echo "fuzz $target: FAILED (see above; an input that broke a property is in fuzz/artifacts/$target/)" >&2
    exit 1
  fi
done
