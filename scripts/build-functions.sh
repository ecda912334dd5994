#!/usr/bin/env bash
# Builds every sample function and every test fixture to target/functions/<name>.wasm, then
# checks that each one is a valid wsfn component.
#
# Uses rustup's wasm32-wasip2 target when it is installed, otherwise the Debian toolchain set
# up by scripts/setup.sh. Guests build in target/guest/<route>, apart from the host's own
# target/debug and target/release.
#
# Environment:
#   WSFN_HOST  a built wsfn-host binary to validate with, instead of `cargo run -p wsfn-host`
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

# build_workspace DIR NAME...: builds the cargo workspace in DIR and copies the component of
# each crate NAME to target/functions/NAME.wasm.
build_workspace() {
    local workspace=$1
    shift
    say "building $workspace ($route route)"
    env ${guest_env[@]+"${guest_env[@]}"} "${cargo_build[@]}" \
        --manifest-path "$root/$workspace/Cargo.toml" --workspace --target-dir "$target_dir" ||
        die "building $workspace failed"
    local name artifact
    for name in "$@"; do
        # Cargo names a library artifact after the crate with `-` turned into `_`.
        artifact="$target_dir/$target/release/${name//-/_}.wasm"
        [[ -f "$artifact" ]] || die "$workspace built, but $artifact is missing"
        cp "$artifact" "$out/$name.wasm"
        built+=("$out/$name.wasm")
    done
}

build_workspace sample-functions echo chat counter notify
build_workspace tests/fixtures faulty lifecycle swap-a swap-b

# --- validate -------------------------------------------------------------------------
for file in "${built[@]}"; do
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
"${host_check[@]}" "${built[@]}" || die "wsfn-host check rejected a function (see above)"

for file in "${built[@]}"; do
    printf '%-10s %8d bytes  %s\n' "$(basename "$file" .wasm)" "$(wc -c <"$file" | tr -d ' ')" "${file#"$root"/}"
done
