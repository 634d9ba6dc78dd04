#!/usr/bin/env bash
# Runs every test of tidemark: the workspace tests (engine, model checks,
# CLI, crash harness, and the S3 suite against a local moto server), the
# loom suite under --cfg loom, the model's mutant table, the crash
# schedules (in memory and over S3) and a short fuzz run of every target
# (nightly). This is the one test command the README names; .ci/run calls it.
set -euo pipefail
cd "$(dirname "$0")"

# No incremental caches: CI builds once, and they doubled the target's size.
export CARGO_INCREMENTAL=0

step() { printf '\n==> %s\n' "$*"; }

# The local S3 server: installed into target/s3-venv on first use, stopped
# when this script exits for any reason. If it does not start, the run fails.
# shellcheck source=scripts/s3-server.sh
source scripts/s3-server.sh
trap s3_server_stop EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

step "local S3 server (moto) for the S3 tests"
s3_server_start

step "workspace tests (engine, model, CLI, crash harness, S3 suites over $TIDEMARK_S3_ENDPOINT)"
# `tidemark/aws`: the engine's S3 suite (engine/tests/s3.rs) needs the S3
# client; the CLI (cli/tests/cli_s3.rs) has it by default.
cargo test --workspace --all-targets --features tidemark/aws

step "loom suite (--cfg loom, its own target directory)"
RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom \
    cargo test -p loom-tests --release -- --nocapture

step "model check: the shipped protocol and every mutant"
cargo run --release --bin check-model -- --all

# On the paused clock a seed set's conformance skips are fixed:
# --max-skipped holds each set to the traces it skips today (the known
# placements crash/README.md lists), so a new one fails the run.
step "crash schedules on the paused clock (exact replay): 100,000 seeds, every crash point of 200 seeds, 20,000 zombie seeds"
cargo run --release --bin crash-check -- --seeds 100000 --max-skipped 0
cargo run --release --bin crash-check -- --seeds 200 --seed-start 5000 --every-op --max-skipped 0
cargo run --release --bin crash-check -- --seeds 20000 --seed-start 1000000 --zombies --max-skipped 2

step "crash schedules with store faults (issue 14): transient errors, ambiguous creates, delayed reads, zombies on even seeds; liveness checks and racing openers"
cargo run --release --bin crash-check -- --faults --seeds 20000 --seed-start 2000000 --max-skipped 1
cargo run --release --bin crash-check -- --faults --seeds 20 --seed-start 6000 --every-op --max-skipped 0

step "crash schedules of the lifecycle: compaction and GC on the schedule's clock, read-only handles, held snapshots and scans, held listings, hedges"
cargo run --release --bin crash-check -- --lifecycle --seeds 2000 --seed-start 7000000 --max-skipped 0

step "crash schedules with WALs in a store of their own (Settings::wal_store): 10,000 seeds, 2,000 with faults (about 50 s)"
cargo run --release --bin crash-check -- --wal-store --seeds 10000 --seed-start 3000000 --max-skipped 0
cargo run --release --bin crash-check -- --wal-store --faults --seeds 2000 --seed-start 3200000 --max-skipped 1

step "crash schedules on the wall clock (timing varies run to run)"
cargo run --release --bin crash-check -- --seeds 500 --seed-start 200000 --wall-clock
cargo run --release --bin crash-check -- --seeds 100 --seed-start 300000 --zombies --wall-clock

step "crash schedules over the local S3 server (wall clock, a prefix per schedule)"
cargo run --release -p tidemark-crash --features s3 --bin crash-check -- --s3 --seeds 200 --seed-start 400000

step "fuzz: every target (wal, sst, manifest, db_open) 30 s from its seeds, AddressSanitizer (nightly); any finding fails"
engine/fuzz/run.sh --ci

step "all tests passed"
