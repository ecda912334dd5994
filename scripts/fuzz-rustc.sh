#!/usr/bin/env bash
# The compiler wrapper of fuzz builds (RUSTC_WORKSPACE_WRAPPER, set by scripts/fuzz.sh): cargo
# calls it only for this workspace's own crates, and it compiles them with libFuzzer's
# coverage instrumentation. The dependencies build exactly as for the tests, so a fuzz build
# after `cargo test` reuses every one of them and compiles only the host and the targets.
#
# Build scripts are left alone (they are programs run by cargo, not linked with libFuzzer).
# FUZZ_SANITIZER=address adds AddressSanitizer to the same crates (nightly flag: scripts/fuzz.sh
# sets RUSTC_BOOTSTRAP=1 and a target directory of its own for it).
set -euo pipefail

rustc=$1
shift
crate=
previous=
for argument in "$@"; do
    [[ $previous == --crate-name ]] && crate=$argument
    previous=$argument
done

case "$crate" in
    "" | ___ | build_script_*) exec "$rustc" "$@" ;;
esac

flags=(
    --cfg fuzzing
    -Cpasses=sancov-module
    -Cllvm-args=-sanitizer-coverage-level=4
    -Cllvm-args=-sanitizer-coverage-inline-8bit-counters
    -Cllvm-args=-sanitizer-coverage-pc-table
    -Cllvm-args=-sanitizer-coverage-trace-compares
    # Comparisons folded into one branch would hide from the trace what the fuzzer must match.
    -Cllvm-args=-simplifycfg-branch-fold-threshold=0
)
# The dev profile builds our crates unoptimised, which makes each execution several times
# slower; opt-level 1 keeps the debug assertions and overflow checks and most of the speed.
[[ ${FUZZ_OPT_LEVEL:-} ]] && flags+=(-Copt-level="$FUZZ_OPT_LEVEL")
if [[ ${FUZZ_SANITIZER:-none} == address ]]; then
    flags+=(-Zsanitizer=address -Cunsafe-allow-abi-mismatch=sanitizer)
fi
exec "$rustc" "$@" "${flags[@]}"
