#!/usr/bin/env bash
# Runs every test of tidemark: the workspace tests (engine, model checks,
# CLI tests), the loom suite under --cfg loom, and the model's mutant table.
# This is the one test command named in the README; .ci/run calls it.
set -euo pipefail
cd "$(dirname "$0")"

step() { printf '\n==> %s\n' "$*"; }

step "workspace tests (engine, model, CLI)"
cargo test --workspace --all-targets

step "loom suite (--cfg loom, own target directory)"
RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom \
    cargo test -p loom-tests --release

step "model check: shipped protocol and every mutant"
cargo run --release --bin check-model -- --all

step "all tests passed"
