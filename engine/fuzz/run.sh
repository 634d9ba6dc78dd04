#!/usr/bin/env bash
# Fuzzes tidemark's decoders (issue 17): WAL, SST and manifest.
#   engine/fuzz/run.sh [SECONDS_PER_TARGET]     (default 300)
# Needs the nightly toolchain (for -Cpasses=sancov-module). Builds the
# targets with libFuzzer's coverage instrumentation, debug assertions and
# overflow checks (as `cargo fuzz build` does, without AddressSanitizer;
# with cargo-fuzz installed, `cargo +nightly fuzz run wal` works as well),
# builds the seed corpora from a real database, then runs each target.
# Crashes land in artifacts/. Not part of CI.
set -euo pipefail
cd "$(dirname "$0")"
secs="${1:-300}"
triple="$(rustc -vV | sed -n 's/^host: //p')"
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks"
cargo +nightly build --release --bins --target "$triple" --target-dir target/fuzz
bins="target/fuzz/$triple/release"
RUSTFLAGS="" cargo run --quiet --example seeds -- corpus
mkdir -p artifacts
for target in wal sst manifest; do
    echo "== $target: ${secs}s"
    "$bins/$target" "corpus/$target" -dict=fuzz.dict -max_total_time="$secs" \
        -rss_limit_mb=2048 -timeout=10 -artifact_prefix="artifacts/$target-" 2>&1 | tail -n 3
done
