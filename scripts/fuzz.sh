#!/usr/bin/env bash
# Builds the fuzz targets (fuzz/, see FUZZING.md) and runs them: each target first replays
# its regression inputs (fuzz/regressions/<target>/) and its seed corpus (fuzz/corpus/<target>/,
# made by scripts/fuzz-seeds.sh when missing), then fuzzes for SECONDS. A crash, a failed
# assertion, a timeout or running out of memory fails the run; the input that did it is left
# in fuzz/artifacts/<target>/.
#
# Usage: scripts/fuzz.sh [TARGET] [SECONDS]
#   TARGET   one target, or `all` / nothing for every target (default: all)
#   SECONDS  fuzzing time per target after the replay (default: 60; 0 replays only)
# Environment:
#   FUZZ_JOBS=N   targets run at once when running all (default: 2)
#   FUZZ_ASAN=1   build with AddressSanitizer (needs nightly features: RUSTC_BOOTSTRAP=1 is
#                 set for the build), for runs that reach unsafe code
#   FUZZ_LOG_DIR  where each target's libFuzzer output goes (default: fuzz/logs)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

target="${1:-all}"
seconds="${2:-60}"
jobs="${FUZZ_JOBS:-2}"
version="0.13.2"

if ! cargo fuzz --version 2>/dev/null | grep -qF "$version"; then
    cargo install --locked cargo-fuzz --version "$version"
fi

if [[ "${FUZZ_ASAN:-0}" == 1 ]]; then
    export RUSTC_BOOTSTRAP=1
    build_flags=(--sanitizer address)
else
    build_flags=(--sanitizer none)
fi

mapfile -t all_targets < <(cd fuzz && cargo fuzz list)
if [[ "$target" == all ]]; then
    targets=("${all_targets[@]}")
else
    if ! printf '%s\n' "${all_targets[@]}" | grep -qxF "$target"; then
        echo "fuzz: no target named $target; the targets are: ${all_targets[*]}" >&2
        exit 2
    fi
    targets=("$target")
fi

# The guest-side target drives the `imports` test fixture, built with the other guests.
if printf '%s\n' "${targets[@]}" | grep -qx guest_imports && [[ ! -f target/functions/imports.wasm ]]; then
    ./scripts/build-functions.sh
fi

build_started=$SECONDS
if [[ ${#targets[@]} -eq 1 ]]; then
    (cd fuzz && cargo fuzz build "${build_flags[@]}" "${targets[0]}")
else
    (cd fuzz && cargo fuzz build "${build_flags[@]}")
fi
echo "fuzz: built in $((SECONDS - build_started)) s"

if [[ ! -d fuzz/corpus ]]; then
    ./scripts/fuzz-seeds.sh fuzz/corpus >/dev/null
fi

export FUZZ_SECONDS="$seconds"
export FUZZ_LOG_DIR="${FUZZ_LOG_DIR:-fuzz/logs}"
export FUZZ_BIN_DIR="fuzz/target/x86_64-unknown-linux-gnu/release"
mkdir -p "$FUZZ_LOG_DIR"

# One target: replay, then fuzz; prints one line of figures.
run_target() {
    local name="$1"
    local corpus="fuzz/corpus/$name" regressions="fuzz/regressions/$name"
    local log="$FUZZ_LOG_DIR/$name.log" artifacts="fuzz/artifacts/$name/"
    local binary="$FUZZ_BIN_DIR/$name"
    mkdir -p "$corpus" "$regressions" "$artifacts"
    local options=(-artifact_prefix="$artifacts" -timeout=30 -rss_limit_mb=4096
        -print_final_stats=1)
    # Regression inputs alone first, so one that fails again is named as such.
    if [[ -n "$(ls -A "$regressions")" ]] &&
        ! "$binary" "${options[@]}" -runs=0 "$regressions" >"$log.replay" 2>&1; then
        echo "fuzz: $name: a regression input fails again (see $log.replay)"
        return 1
    fi
    local status=0
    if [[ "$FUZZ_SECONDS" -gt 0 ]]; then
        "$binary" "${options[@]}" -max_total_time="$FUZZ_SECONDS" "$corpus" "$regressions" \
            >"$log" 2>&1 || status=$?
    else
        "$binary" "${options[@]}" -runs=0 "$corpus" >"$log" 2>&1 || status=$?
    fi
    local runs cov
    runs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | grep -o '[0-9]*$' || true)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*$' || true)
    if [[ $status -ne 0 ]]; then
        echo "fuzz: $name FAILED after ${runs:-?} runs (see $log and $artifacts)"
        grep -m 5 -E 'panicked|ERROR|SUMMARY' "$log" || true
        return 1
    fi
    echo "fuzz: $name ok: ${FUZZ_SECONDS} s, ${runs:-?} runs, cov ${cov:-?} edges"
}
export -f run_target

printf '%s\n' "${targets[@]}" | xargs -P "$jobs" -I{} bash -c 'run_target "$@"' _ {}
