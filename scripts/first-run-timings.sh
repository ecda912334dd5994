#!/usr/bin/env bash
# Times a new user's first run: a fresh clone of this repository at REV (default HEAD), then
# the README's two set-up commands in order: `./scripts/run-sample.sh echo` until the echo
# sample answers a WebSocket handshake, then `./scripts/test.sh`. Prints both times.
#
# Usage: scripts/first-run-timings.sh [--fresh-crates] [--unreachable-rustup] [--no-tests] [REV]
#   --fresh-crates        an empty CARGO_HOME, so every crate is downloaded (the default
#                         measures with the crates already in ~/.cargo)
#   --unreachable-rustup  rustup's servers unreachable (RUSTUP_DIST_SERVER on a closed loopback
#                         port), which sends setup.sh down the Debian route when the
#                         wasm32-wasip2 target is not installed
#   --no-tests            time the first command only
#
# What is already on the machine counts: the script prints whether rustup's wasm32-wasip2
# target, Debian's rustc-web and wasm-component-ld are installed before it starts. Port 8080
# must be free. Logs stay in the clone (run-sample.log, test.log), which is kept.
set -uo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
fresh_crates=false
unreachable_rustup=false
run_tests=true
rev=HEAD
for argument in "$@"; do
    case "$argument" in
        --fresh-crates) fresh_crates=true ;;
        --unreachable-rustup) unreachable_rustup=true ;;
        --no-tests) run_tests=false ;;
        -*) echo "first-run-timings: unknown option $argument" >&2; exit 2 ;;
        *) rev=$argument ;;
    esac
done
say() { echo "first-run-timings: $*" >&2; }

installed() { "$@" >/dev/null 2>&1 && echo yes || echo no; }
say "before: rustup wasm32-wasip2 $(installed sh -c 'rustup target list --installed | grep -qx wasm32-wasip2')," \
    "rustc-web $(installed dpkg-query -W rustc-web)," \
    "wasm-component-ld $(installed sh -c 'command -v wasm-component-ld || test -x ~/.cargo/bin/wasm-component-ld')"

clone=$(mktemp -d /tmp/wsfn-first-run.XXXXXX)
git clone --quiet "$root" "$clone" && git -C "$clone" checkout --quiet "$rev" || exit 1
cd "$clone"
say "clone of $(git rev-parse --short HEAD) in $clone"
if [[ $fresh_crates == true ]]; then
    export CARGO_HOME="$clone.cargo-home"
    mkdir -p "$CARGO_HOME"
    say "empty CARGO_HOME $CARGO_HOME"
fi
if [[ $unreachable_rustup == true ]]; then
    export RUSTUP_DIST_SERVER=http://127.0.0.1:9 RUSTUP_UPDATE_ROOT=http://127.0.0.1:9/rustup
fi

seconds_since() { echo "$(date +%s.%N) - $1" | bc | xargs printf '%.0f'; }

start=$(date +%s.%N)
./scripts/run-sample.sh echo >run-sample.log 2>&1 &
pid=$!
while :; do
    status=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 --http1.1 \
        -H 'Connection: Upgrade' -H 'Upgrade: websocket' -H 'Sec-WebSocket-Version: 13' \
        -H 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==' http://127.0.0.1:8080/echo)
    [[ $status == 101 ]] && break
    if ! kill -0 "$pid" 2>/dev/null; then
        say "run-sample.sh exited before serving; see $clone/run-sample.log"
        exit 1
    fi
    sleep 0.5
done
echo "run-sample.sh echo: served after $(seconds_since "$start") s"
pkill -P "$pid" 2>/dev/null
kill "$pid" 2>/dev/null
pkill -f "$clone/target/debug/wsfn-host" 2>/dev/null
wait "$pid" 2>/dev/null

if [[ $run_tests == true ]]; then
    start=$(date +%s.%N)
    ./scripts/test.sh >test.log 2>&1
    code=$?
    echo "test.sh: exit $code after $(seconds_since "$start") s"
fi
