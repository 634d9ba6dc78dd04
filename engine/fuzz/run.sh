#!/usr/bin/env bash
# Fuzzes tidemark's decoders (issue 17): WAL, SST, manifest.
#   engine/fuzz/run.sh [SECONDS_PER_TARGET]   (default 300)
# Needs a nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`).
# Builds the seed corpora from a real database first. Not part of CI.
set -euo pipefail
cd "$(dirname "$0")"
secs="${1:-300}"
cargo run --quiet --example seeds -- corpus
for target in wal sst manifest; do
    echo "== $target: ${secs}s"
    cargo +nightly fuzz run "$target" "corpus/$target" -- \
        -dict=fuzz.dict -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 2>&1 | tail -n 4
done
