#!/usr/bin/env bash
# Installs what building guest components (scripts/build-functions.sh) needs.
#
# With rustup's wasm32-wasip2 target installed there is nothing to do. Otherwise it sets up
# the Debian route: Debian's rustc/cargo (whose standard library source lets cargo rebuild
# std for wasm32-wasip2), LLVM's wasm linker, wasi-libc, and wasm-component-ld to turn the
# linked module into a component. Safe to run again: it only installs what is missing and
# prints nothing when everything is there.
set -euo pipefail

readonly DEBIAN_PACKAGES=(rustc-web cargo-web rust-web-src lld-22 wasi-libc)
# Pinned so a new release cannot raise the Rust version needed to install it.
readonly WASM_COMPONENT_LD_VERSION=0.5.31

say() { echo "setup: $*" >&2; }
die() {
    say "error: $*"
    exit 1
}

# Runs a command as root: directly when already root, else through sudo when there is one.
as_root() {
    if [[ "$(id -u)" -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        die "need root (or sudo) to run: $*"
    fi
}

rustup_has_wasip2() {
    command -v rustup >/dev/null 2>&1 &&
        rustup target list --installed 2>/dev/null | grep -qx 'wasm32-wasip2'
}

if rustup_has_wasip2; then
    exit 0
fi

# --- Debian route ---------------------------------------------------------------------
missing=()
for package in "${DEBIAN_PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$package")
    fi
done
if ((${#missing[@]} > 0)); then
    command -v apt-get >/dev/null 2>&1 ||
        die "no rustup wasm32-wasip2 target and no apt-get; run 'rustup target add wasm32-wasip2'"
    say "installing ${missing[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v wasm-component-ld >/dev/null 2>&1 && [[ ! -x "$HOME/.cargo/bin/wasm-component-ld" ]]; then
    cargo_bin=$(command -v cargo || echo /usr/bin/cargo)
    say "installing wasm-component-ld $WASM_COMPONENT_LD_VERSION (takes a few minutes)"
    "$cargo_bin" install --locked --quiet --version "$WASM_COMPONENT_LD_VERSION" wasm-component-ld
fi
