#!/usr/bin/env bash
# Installs the programs the end-to-end tests start besides wsfn-host: a real redis-server for
# the Redis backend and cluster tests, and for the browser client's tests Debian's chromium and
# the pinned node modules of tests/browser (playwright-core, and ws for the client in node;
# they need node and npm). Safe to run again: it installs only what is missing.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

readonly DEBIAN_PACKAGES=(redis-server chromium)

say() { echo "test-deps: $*" >&2; }
die() {
    say "error: $*"
    exit 1
}

as_root() {
    if [[ "$(id -u)" -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        die "need root (or sudo) to run: $*"
    fi
}

missing=()
for package in "${DEBIAN_PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$package")
    fi
done
# node may come from elsewhere (nodesource bundles npm); Debian's packages only when it is absent.
if ! command -v npm >/dev/null 2>&1; then
    missing+=(nodejs npm)
fi
if ((${#missing[@]} > 0)); then
    command -v apt-get >/dev/null 2>&1 || die "install ${missing[*]} with your package manager"
    say "installing ${missing[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The browser tests drive chromium with the exact playwright-core version of the lock file, and
# run the client in node on its ws.
if [[ ! -d tests/browser/node_modules/playwright-core || ! -d tests/browser/node_modules/ws ]]; then
    say "installing tests/browser's node modules"
    npm ci --prefix tests/browser --no-audit --no-fund >/dev/null
fi
