#!/usr/bin/env bash
# The full benchmark suite, one command: builds queuectl and queuectl-bench
# (this directory's crate) in release mode and runs every scenario at full
# size (a few minutes on 2 cores), measuring the queuectl built beside it.
# Prints the table, then the JSON report; both are also kept in
# bench/results/<UTC date>.{txt,json}.
#
#   bench/run.sh                        # everything
#   bench/run.sh --quick                # the CI-sized run
#   bench/run.sh --scenario throughput  # any queuectl-bench options pass through
#
# The figures are measured in a throwaway queue in $TMPDIR (or --dir DIR); the
# machine should otherwise be idle, since every target is a ratio against a
# baseline measured in the same run, but a busy neighbour still adds noise.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release --locked --quiet -p queuectl -p queuectl-bench
bin="${CARGO_TARGET_DIR:-target}/release/queuectl-bench"

mkdir -p bench/results
stamp="$(date -u +%Y-%m-%dT%H%M%SZ)"
table="bench/results/$stamp.txt"
json="bench/results/$stamp.json"

"$bin" --json-file "$json" "$@" | tee "$table"
echo
cat "$json"
echo
echo "saved: $table $json" >&2
