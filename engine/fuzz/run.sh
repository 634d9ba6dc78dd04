#!/usr/bin/env bash
# Fuzzes tidemark (issue 17): the WAL, SST and manifest decoders and a
# whole-database open over a store with one object replaced (db_open).
#
#   engine/fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]   (default 300 s, every target)
#   engine/fuzz/run.sh --ci [TARGET...]                   (30 s each, seeds only, fails on any finding)
#   engine/fuzz/run.sh --mutant NAME                      (db_open under a named protocol mutant
#                                                          for up to 60 s: must find it)
#
# Needs the nightly toolchain (or TIDEMARK_FUZZ_TOOLCHAIN) (-Zsanitizer=address, -Cpasses=sancov-module).
# Builds the targets as `cargo fuzz build` does: AddressSanitizer,
# libFuzzer's coverage instrumentation, debug assertions and overflow
# checks; checks that ASan is linked in; builds the seed corpora from a real
# database (examples/seeds.rs); then runs each target with the dictionary
# of large varints (fuzz.dict). The long mode keeps its corpus in corpus/
# and prints libFuzzer's final stats; the CI mode starts from the seeds
# alone (so a run takes the same time however long corpus/ has grown).
# Crashes, timeouts and OOMs land in artifacts/; the log of each run in
# artifacts/TARGET.log. Exits non-zero on the first finding.
set -euo pipefail
cd "$(dirname "$0")"

all_targets=(wal sst manifest db_open)
ci=false
secs=300
mutant=""
if [[ "${1:-}" == "--ci" ]]; then
    ci=true
    secs=30
    shift
elif [[ "${1:-}" == "--mutant" ]]; then
    mutant="${2:?run.sh --mutant NAME (a protocol mutant, e.g. replay-across-gap)}"
    ci=true
    secs=60
    set -- db_open
elif [[ "${1:-}" =~ ^[0-9]+$ ]]; then
    secs="$1"
    shift
fi
targets=("$@")
[[ ${#targets[@]} -eq 0 ]] && targets=("${all_targets[@]}")
for t in "${targets[@]}"; do
    [[ " ${all_targets[*]} " == *" $t "* ]] || { echo "run.sh: unknown target '$t' (targets: ${all_targets[*]})" >&2; exit 2; }
done

# TIDEMARK_FUZZ_TOOLCHAIN: a nightly other than `nightly` (a dated one, say).
toolchain="${TIDEMARK_FUZZ_TOOLCHAIN:-nightly}"
if ! RUSTUP_AUTO_INSTALL=0 cargo "+$toolchain" --version >/dev/null 2>&1; then
    echo "run.sh: FAILED: the fuzz suite needs the Rust toolchain '$toolchain' (AddressSanitizer and" >&2
    echo "libFuzzer's coverage instrumentation are nightly-only): rustup toolchain install $toolchain" >&2
    exit 3
fi

triple="$(rustc -vV | sed -n 's/^host: //p')"
# As cargo-fuzz 0.13 builds: ASan (every crate, hence the ABI-mismatch
# allowance for the precompiled std), sancov, debug assertions, overflow checks.
export RUSTFLAGS="-Zsanitizer=address -Cunsafe-allow-abi-mismatch=sanitizer \
-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks"
# --target: build scripts and proc macros are built without the sanitizer.
dir=target/fuzz
features=()
if [[ -n "$mutant" ]]; then
    dir=target/fuzz-mutants
    features=(--features mutants)
    export TIDEMARK_FUZZ_PROTOCOL="$mutant"
fi
cargo "+$toolchain" build --quiet --release --bins "${features[@]}" --target "$triple" --target-dir "$dir"
bins="$dir/$triple/release"
for t in "${targets[@]}"; do
    if ! nm "$bins/$t" | grep ' __asan_init$' >/dev/null; then
        echo "run.sh: $bins/$t has no AddressSanitizer runtime (__asan_init missing)" >&2
        exit 4
    fi
done

corpus=corpus
if $ci; then
    corpus="$(mktemp -d)"
    trap 'rm -rf "$corpus"' EXIT
fi
RUSTFLAGS="" cargo run --quiet --release --example seeds -- "$corpus"
mkdir -p artifacts
if [[ -n "$mutant" ]]; then
    echo "== db_open under mutant $mutant: up to ${secs}s (ASan)"
    log="artifacts/db_open-mutant-$mutant.log"
    if "$bins/db_open" "$corpus/db_open" -dict=fuzz.dict -max_total_time="$secs" -rss_limit_mb=3072 \
        -timeout=10 -print_final_stats=1 -artifact_prefix="artifacts/mutant-$mutant-" >"$log" 2>&1; then
        echo "run.sh: db_open did NOT catch mutant $mutant in ${secs}s (log $PWD/$log)" >&2
        exit 1
    fi
    grep -m1 -E "panicked at|ERROR: libFuzzer" -A1 "$log" || true
    grep -E '^stat::number_of_executed_units' "$log" || true
    echo "run.sh: db_open caught mutant $mutant (log $PWD/$log)"
    exit 0
fi
for t in "${targets[@]}"; do
    echo "== $t: ${secs}s (ASan)"
    log="artifacts/$t.log"
    if ! "$bins/$t" "$corpus/$t" -dict=fuzz.dict -max_total_time="$secs" -rss_limit_mb=3072 \
        -timeout=10 -print_final_stats=1 -artifact_prefix="artifacts/$t-" >"$log" 2>&1; then
        tail -n 40 "$log" >&2
        echo "run.sh: FINDING in target $t (log $PWD/$log; input in $PWD/artifacts/$t-*)" >&2
        exit 1
    fi
    grep -E '^(stat::number_of_executed_units|stat::average_exec_per_sec|stat::peak_rss_mb)|^Done ' "$log" || true
done
