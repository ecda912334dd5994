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
#   FUZZ_JOBS=N        targets run at once when running all (default: 2)
#   FUZZ_PROFILE=fuzz  the long-run build: the host at opt-level 3 (with debug assertions),
#                      dependencies at 1, in target/fuzz; the first build takes a while.
#                      Default: the dev profile, sharing the tests' build of every dependency,
#                      so after `cargo test` only the host and the targets are compiled.
#   FUZZ_ASAN=1        with AddressSanitizer, for runs that reach unsafe code (the fuzz profile
#                      in a target directory of its own, target/fuzz-asan; nightly flags need
#                      RUSTC_BOOTSTRAP=1, which this sets for that build)
#   FUZZ_LOG_DIR       where each target's libFuzzer output goes (default: fuzz/logs)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

target="${1:-all}"
seconds="${2:-60}"
jobs="${FUZZ_JOBS:-2}"
profile="${FUZZ_PROFILE:-dev}"
target_dir=target

# Our crates are instrumented by the wrapper; dependencies build as they do for the tests.
export RUSTC_WORKSPACE_WRAPPER="$PWD/scripts/fuzz-rustc.sh"
if [[ "${FUZZ_ASAN:-0}" == 1 ]]; then
    export RUSTC_BOOTSTRAP=1 FUZZ_SANITIZER=address
    profile=fuzz
    target_dir=target/fuzz-asan
    # LeakSanitizer would report what a target deliberately keeps for the process's lifetime
    # (the host started once per process); memory errors are what this build is for.
    export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=0}"
fi
case "$profile" in
    dev)
        export FUZZ_OPT_LEVEL=1
        profile_dir=debug
        ;;
    fuzz) profile_dir=fuzz ;;
    *)
        echo "fuzz: FUZZ_PROFILE is dev or fuzz, not $profile" >&2
        exit 2
        ;;
esac

mapfile -t all_targets < <(sed -n 's/^name = "\(.*\)"$/\1/p' fuzz/Cargo.toml | grep -vx wsfn-fuzz)
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
    ./scripts/build-functions.sh imports
fi

build_started=$SECONDS
bins=()
for name in "${targets[@]}"; do bins+=(--bin "$name"); done
cargo build --quiet --profile "$profile" --target-dir "$target_dir" -p wsfn-fuzz "${bins[@]}"
echo "fuzz: built in $((SECONDS - build_started)) s ($profile profile)"

if [[ ! -d fuzz/corpus ]]; then
    ./scripts/fuzz-seeds.sh fuzz/corpus >/dev/null
fi

export FUZZ_SECONDS="$seconds"
export FUZZ_LOG_DIR="${FUZZ_LOG_DIR:-fuzz/logs}"
export FUZZ_BIN_DIR="$target_dir/$profile_dir"
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
