#!/usr/bin/env bash
# Installs what building guest components (scripts/build-functions.sh) needs.
#
# With --other-languages it also installs the pinned tools that build the Python and
# JavaScript samples: componentize-py (sample-functions/python/requirements.txt) into a
# virtualenv at target/tools/python, and ComponentizeJS (sample-functions/js/package-lock.json)
# into target/tools/js. These need python3 (3.10 or newer, with venv) and Node.js 18+ with npm.
#
# Where rustup is installed it adds rustup's wasm32-wasip2 target and installs nothing else.
# Only without rustup, or when that fails (it says why), it sets up the Debian route: Debian's
# rustc/cargo (whose standard library source lets cargo rebuild std for wasm32-wasip2), LLVM's
# wasm linker, wasi-libc, and wasm-component-ld to turn the linked module into a component.
# Safe to run again: it only installs what is missing and prints nothing when everything is
# there.
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

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly root
other_languages=false
for argument in "$@"; do
    case "$argument" in
        --other-languages) other_languages=true ;;
        *) die "unknown argument $argument (expected --other-languages)" ;;
    esac
done

# --- Python and JavaScript tools (--other-languages) ----------------------------------
# Each is reinstalled only when its pin changed, so a second run costs a version check.
install_python_tools() {
    local requirements="$root/sample-functions/python/requirements.txt"
    local venv="$root/target/tools/python"
    local stamp="$venv/installed-requirements.txt"
    if [[ -x "$venv/bin/componentize-py" ]] && cmp -s "$requirements" "$stamp"; then
        return
    fi
    command -v python3 >/dev/null 2>&1 || die "--other-languages needs python3"
    say "installing $(grep -v '^#' "$requirements" | tr '\n' ' ')into ${venv#"$root"/}"
    rm -rf "$venv"
    python3 -m venv "$venv" || die "python3 -m venv failed (on Debian: apt-get install python3-venv)"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements"
    cp "$requirements" "$stamp"
}

install_javascript_tools() {
    local lock="$root/sample-functions/js/package-lock.json"
    local tools="$root/target/tools/js"
    local stamp="$tools/installed-package-lock.json"
    if [[ -x "$tools/node_modules/.bin/componentize-js" ]] && cmp -s "$lock" "$stamp"; then
        return
    fi
    command -v npm >/dev/null 2>&1 || die "--other-languages needs Node.js and npm"
    say "installing ComponentizeJS from sample-functions/js/package-lock.json into ${tools#"$root"/}"
    rm -rf "$tools"
    mkdir -p "$tools"
    cp "$root/sample-functions/js/package.json" "$lock" "$tools/"
    # `npm install` with the lock file present installs exactly the locked versions. Not
    # `npm ci`: npm 10 and 11 reject this lock as out of sync because of optional
    # platform-specific packages that some dependencies list without publishing.
    (cd "$tools" && npm install --silent --no-save --no-audit --no-fund) || die "npm install failed"
    cp "$lock" "$stamp"
}

if [[ "$other_languages" == true ]]; then
    install_python_tools
    install_javascript_tools
fi

# --- rustup route --------------------------------------------------------------------
# Where rustup is, its wasm32-wasip2 target is all a guest build needs: a prebuilt standard
# library and the component linker, in seconds. The Debian route is the fallback for machines
# without rustup or where rustup cannot reach its servers.
if command -v rustup >/dev/null 2>&1; then
    if rustup target list --installed 2>/dev/null | grep -qx 'wasm32-wasip2'; then
        exit 0
    fi
    say "installing rustup's wasm32-wasip2 target"
    if rustup_output=$(rustup target add wasm32-wasip2 2>&1); then
        exit 0
    fi
    # rustup's own error line; its causes (and a backtrace, with RUST_BACKTRACE) follow it.
    reason=$(printf '%s\n' "$rustup_output" | sed -n 's/^error: //p' | head -n 1)
    [[ -n $reason ]] || reason=$(printf '%s\n' "$rustup_output" | grep -v '^[[:space:]]*$' | tail -n 1)
    say "rustup target add wasm32-wasip2 failed (${reason:-no message}); using Debian's toolchain instead"
else
    say "no rustup; using Debian's toolchain for wasm32-wasip2 (with rustup: rustup target add wasm32-wasip2)"
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
