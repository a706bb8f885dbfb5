#!/usr/bin/env bash
# CI: every fuzz target for a short fixed budget, starting from the committed seeds
# (fuzz/seeds/<target>, copied to a scratch corpus so a run never edits the checkout).
# A crash fails the step; libFuzzer's reproducer is copied to fuzz/artifacts/<target>/
# and its path printed, to be turned into a regression test.
#
# cargo-fuzz needs libFuzzer's instrumentation, a nightly feature: RUSTC_BOOTSTRAP=1
# lets the stable toolchain build it. FUZZ_SECONDS (default 30) is the budget per
# target; FUZZ_TARGETS (default: all) picks some.
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_FUZZ_VERSION=0.13.2
seconds="${FUZZ_SECONDS:-30}"
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version 2>/dev/null | grep -qF "$CARGO_FUZZ_VERSION"; then
    cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked
fi

read -r -a targets <<<"${FUZZ_TARGETS:-$(cargo fuzz list | tr '\n' ' ')}"
# One build of every target (debug assertions, hence overflow checks, on), then runs.
cargo fuzz build --debug-assertions

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
passed=0
failed=0
for target in "${targets[@]}"; do
    corpus="$scratch/corpus/$target"
    artifacts="$scratch/artifacts/$target/"
    mkdir -p "$corpus" "$artifacts"
    if [ -d "fuzz/seeds/$target" ]; then
        cp -r "fuzz/seeds/$target/." "$corpus/"
    fi
    dict=()
    if [ -f "fuzz/dicts/$target.dict" ]; then
        dict=("-dict=fuzz/dicts/$target.dict")
    fi
    echo "fuzz: $target for ${seconds} s"
    if cargo fuzz run --debug-assertions "$target" "$corpus" -- \
        -max_total_time="$seconds" -artifact_prefix="$artifacts" -print_final_stats=1 \
        "${dict[@]}" 2>"$scratch/$target.log"; then
        grep -E '^stat::number_of_executed_units|^Done' "$scratch/$target.log" || true
        passed=$((passed + 1))
    else
        tail -n 40 "$scratch/$target.log"
        mkdir -p "fuzz/artifacts/$target"
        cp "$artifacts"* "fuzz/artifacts/$target/" 2>/dev/null || true
        echo "fuzz: $target FAILED; reproducer in fuzz/artifacts/$target/:" >&2
        ls "fuzz/artifacts/$target/" >&2 || true
        failed=$((failed + 1))
    fi
done
echo "fuzz: $passed passed, $failed failed"
[ "$failed" = 0 ]
