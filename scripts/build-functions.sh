#!/usr/bin/env bash
# Builds every sample function and every test fixture to target/functions/<name>.wasm, then
# checks that each one is a valid wsfn component. Given NAMEs, it builds only those (samples:
# echo, chat, counter, notify; fixtures: faulty, lifecycle, swap-a, swap-b, fallible, imports).
#
# Usage: scripts/build-functions.sh [--other-languages] [NAME...]
#
# Uses rustup's wasm32-wasip2 target when it is installed, otherwise the Debian toolchain set
# up by scripts/setup.sh. Guests build in target/guest/<route>, apart from the host's own
# target/debug and target/release.
#
# With --other-languages (or WSFN_OTHER_LANGUAGES=1) it also builds the Python and JavaScript
# ports of echo and chat to target/functions/<name>-py.wasm and <name>-js.wasm, with the tools
# `scripts/setup.sh --other-languages` installs. They are rebuilt, and checked, only when their
# source, the WIT or the tools changed, since building and checking each takes seconds.
#
# Environment:
#   WSFN_HOST             a built wsfn-host binary to validate with, instead of `cargo run -p wsfn-host`
#   WSFN_OTHER_LANGUAGES  1: the same as --other-languages
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly root
readonly out="$root/target/functions"
readonly target=wasm32-wasip2
readonly component_magic="0061736d0d000100" # "\0asm", version 0x0d, layer 1 (component)

say() { echo "build-functions: $*" >&2; }
die() {
    say "error: $*"
    exit 1
}

readonly samples=(echo chat counter notify)
readonly fixtures=(faulty lifecycle swap-a swap-b fallible imports)

other_languages=false
[[ "${WSFN_OTHER_LANGUAGES:-}" == 1 ]] && other_languages=true
wanted=()
for argument in "$@"; do
    case "$argument" in
        --other-languages) other_languages=true ;;
        -*) die "unknown option $argument (expected --other-languages)" ;;
        *)
            [[ " ${samples[*]} ${fixtures[*]} " == *" $argument "* ]] ||
                die "no function named '$argument': choose from ${samples[*]} ${fixtures[*]}"
            wanted+=("$argument")
            ;;
    esac
done

# is_wanted NAME: whether NAME is to be built (every function when none was named).
is_wanted() {
    ((${#wanted[@]} == 0)) || [[ " ${wanted[*]} " == *" $1 "* ]]
}

# --- choose the toolchain -------------------------------------------------------------
# The Debian route's settings go in environment variables for the guest builds only, so
# nothing leaks into a rustup build or into the host build below.
if command -v rustup >/dev/null 2>&1 && rustup target list --installed 2>/dev/null | grep -qx "$target"; then
    route=rustup
    guest_env=()
    cargo_build=(cargo build --release --target "$target")
else
    route=debian
    linker=$(command -v wasm-component-ld || echo "$HOME/.cargo/bin/wasm-component-ld")
    for needed in /usr/bin/rustc /usr/bin/cargo /usr/bin/wasm-ld-22 /usr/lib/wasm32-wasi "$linker"; do
        [[ -e "$needed" ]] || die "no rustup $target target and $needed is missing: run scripts/setup.sh"
    done
    guest_env=(
        RUSTC=/usr/bin/rustc
        RUSTDOC=/usr/bin/rustdoc
        # Debian's rustc is stable; this unlocks -Zbuild-std, which rebuilds std for the
        # target from Debian's library source because no prebuilt wasm std is shipped.
        RUSTC_BOOTSTRAP=1
        CARGO_TARGET_WASM32_WASIP2_LINKER="$linker"
        CARGO_TARGET_WASM32_WASIP2_RUSTFLAGS="-L native=/usr/lib/wasm32-wasi -C link-arg=--wasm-ld-path=/usr/bin/wasm-ld-22"
    )
    cargo_build=(/usr/bin/cargo build --release --target "$target" -Zbuild-std=std,panic_abort)
fi
# The two workspaces share one target directory per route, so std and the common
# dependencies are compiled once.
readonly target_dir="$root/target/guest/$route"

# --- build ----------------------------------------------------------------------------
mkdir -p "$out"
built=()
# Components to validate: every Rust one (cheap to check) and the other languages' ones built
# by this run (checking compiles them, which takes seconds each).
to_check=()

# build_workspace DIR NAME...: builds the crates NAME of the cargo workspace in DIR that are
# wanted and copies the component of each to target/functions/NAME.wasm.
build_workspace() {
    local workspace=$1
    shift
    local name selected=() packages=()
    for name in "$@"; do
        if is_wanted "$name"; then
            selected+=("$name")
            packages+=(-p "$name")
        fi
    done
    ((${#selected[@]} > 0)) || return 0
    say "building ${selected[*]} ($route route)"
    env ${guest_env[@]+"${guest_env[@]}"} "${cargo_build[@]}" \
        --manifest-path "$root/$workspace/Cargo.toml" "${packages[@]}" --target-dir "$target_dir" ||
        die "building $workspace failed"
    local artifact
    for name in "${selected[@]}"; do
        # Cargo names a library artifact after the crate with `-` turned into `_`.
        artifact="$target_dir/$target/release/${name//-/_}.wasm"
        [[ -f "$artifact" ]] || die "$workspace built, but $artifact is missing"
        cp "$artifact" "$out/$name.wasm"
        built+=("$out/$name.wasm")
        to_check+=("$out/$name.wasm")
    done
}

build_workspace sample-functions "${samples[@]}"
build_workspace tests/fixtures "${fixtures[@]}"

# --- other languages ------------------------------------------------------------------
readonly python_tools="$root/target/tools/python"
readonly js_tools="$root/target/tools/js"
readonly world=wsfn:function/function

# up_to_date OUTPUT SOURCE...: whether OUTPUT exists and nothing under the SOURCEs is newer.
up_to_date() {
    local output=$1
    shift
    [[ -f "$output" ]] && [[ -z "$(find "$@" -name __pycache__ -prune -o -type f -newer "$output" -print -quit)" ]]
}

# build_python NAME: sample-functions/python/NAME/app.py -> target/functions/NAME-py.wasm
build_python() {
    local name=$1 source="$root/sample-functions/python/$1" output="$out/$1-py.wasm"
    if ! up_to_date "$output" "$source" "$root/wit" "$python_tools/installed-requirements.txt"; then
        say "building $name-py (componentize-py)"
        local started=$SECONDS
        "$python_tools/bin/componentize-py" --wit-path "$root/wit" --world "$world" \
            componentize --python-path "$source" app --output "$output.tmp" >/dev/null ||
            die "componentize-py failed for $name"
        mv "$output.tmp" "$output"
        say "built $name-py in $((SECONDS - started)) s"
        to_check+=("$output")
    fi
    built+=("$output")
}

# build_javascript NAME: sample-functions/js/NAME/app.js -> target/functions/NAME-js.wasm
build_javascript() {
    local name=$1 source="$root/sample-functions/js/$1" output="$out/$1-js.wasm"
    if ! up_to_date "$output" "$source" "$root/wit" "$js_tools/installed-package-lock.json"; then
        say "building $name-js (ComponentizeJS)"
        local started=$SECONDS
        # The engine would otherwise import wasi:http for a `fetch` event handler and for
        # `fetch()`; the host provides neither, and the samples use neither.
        "$js_tools/node_modules/.bin/componentize-js" "$source/app.js" --wit "$root/wit" \
            --world-name "$world" --disable http fetch-event --out "$output.tmp" >/dev/null ||
            die "componentize-js failed for $name"
        mv "$output.tmp" "$output"
        say "built $name-js in $((SECONDS - started)) s"
        to_check+=("$output")
    fi
    built+=("$output")
}

if [[ "$other_languages" == true ]]; then
    [[ -x "$python_tools/bin/componentize-py" && -x "$js_tools/node_modules/.bin/componentize-js" ]] ||
        die "the Python and JavaScript tools are missing: run scripts/setup.sh --other-languages"
    for name in echo chat; do
        is_wanted "$name" || continue
        build_python "$name"
        build_javascript "$name"
    done
fi

# --- validate -------------------------------------------------------------------------
for file in "${to_check[@]}"; do
    magic=$(head -c 8 "$file" | od -An -tx1 | tr -d ' \n')
    [[ "$magic" == "$component_magic" ]] ||
        die "$file is not a WebAssembly component (header $magic)"
done

if [[ -n "${WSFN_HOST:-}" ]]; then
    host_check=("$WSFN_HOST" check)
else
    host_check=(cargo run --quiet --manifest-path "$root/Cargo.toml" -p wsfn-host -- check)
fi
say "validating with wsfn-host check (the first run builds the host)"
if ! "${host_check[@]}" "${to_check[@]}"; then
    # A rejected component must not count as up to date on the next run.
    for file in "${to_check[@]}"; do
        if [[ "$file" == *-py.wasm || "$file" == *-js.wasm ]]; then rm -f "$file"; fi
    done
    die "wsfn-host check rejected a function (see above)"
fi

for file in "${built[@]}"; do
    printf '%-10s %9d bytes  %s\n' "$(basename "$file" .wasm)" "$(wc -c <"$file" | tr -d ' ')" "${file#"$root"/}"
done
