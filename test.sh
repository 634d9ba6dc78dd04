#!/usr/bin/env bash
# Runs every test of tidemark: the workspace tests (engine, model checks,
# CLI, crash harness), the loom suite under --cfg loom, the model's mutant
# table and the crash schedules. This is the one test command the README
# names; .ci/run calls it.
set -euo pipefail
cd "$(dirname "$0")"

step() { printf '\n==> %s\n' "$*"; }

step "workspace tests (engine, model, CLI, crash harness)"
cargo test --workspace --all-targets

step "loom suite (--cfg loom, its own target directory)"
RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom \
    cargo test -p loom-tests --release -- --nocapture

step "model check: the shipped protocol and every mutant"
cargo run --release --bin check-model -- --all

step "crash schedules: 2,000 seeded schedules plus every crash point of 10 seeds, and zombies"
cargo run --release --bin crash-check -- --seeds 2000
cargo run --release --bin crash-check -- --seeds 10 --seed-start 5000 --every-op
cargo run --release --bin crash-check -- --seeds 300 --seed-start 9000 --zombies

step "all tests passed"
