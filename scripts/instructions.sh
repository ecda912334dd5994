#!/usr/bin/env bash
# Counts the host's instructions per echo event with valgrind's callgrind: a figure that does
# not move with machine load, for comparing changes to the message path. The raw fastwebsockets
# echo server is measured the same way.
#
# Each server is run twice under callgrind, for a short and a long echo run (4 connections);
# instructions per event = (difference of the totals) / (difference of the round trips), so
# start-up, compilation and shutdown cancel out. User-space instructions only: kernel work
# (the socket system calls) is not counted.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

command -v valgrind >/dev/null || { sudo=""; [[ $(id -u) -eq 0 ]] || sudo=sudo; $sudo apt-get install -y -qq valgrind >/dev/null; }
./scripts/setup.sh
cargo build --profile profiling --quiet --target-dir target/bench -p wsfn-host -p wsfn-bench
bin=target/bench/profiling
WSFN_HOST=$bin/wsfn-host ./scripts/build-functions.sh >/dev/null
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# run_once KIND SECONDS: prints "<round trips> <instructions>".
run_once() {
    local kind=$1 seconds=$2 out=$work/$1-$2
    mkdir -p "$out"
    case $kind in
        wsfn)
            # A small instance pool: the default one reserves more address space than
            # valgrind can map (the code run per event is the same).
            WSFN_ADMIN_TOKEN=count RUST_LOG=warn valgrind --tool=callgrind --callgrind-out-file="$out/callgrind" \
                --smc-check=all-non-file "$bin/wsfn-host" run --max-instances 4 --listen 127.0.0.1:0 \
                --admin-listen 127.0.0.1:0 --data-dir "$out/data" target/functions/echo.wasm \
                >"$out/stdout" 2>"$out/stderr" &
            ;;
        raw) valgrind --tool=callgrind --callgrind-out-file="$out/callgrind" "$bin/raw-echo" 127.0.0.1:0 \
            >"$out/stdout" 2>"$out/stderr" & ;;
    esac
    local pid=$! tries=0
    until grep -q 'listening on ws://' "$out/stdout"; do
        sleep 1
        tries=$((tries + 1))
        [[ $tries -lt 120 ]] || { echo "$kind did not start under valgrind" >&2; exit 1; }
    done
    local address path=/
    address=$(grep -o 'listening on ws://[0-9.:]*' "$out/stdout" | sed 's|listening on ws://||')
    [[ $kind == wsfn ]] && path=/echo
    local trips
    trips=$("$bin/wsfn-bench" echo "ws://$address$path" --connections 4 --seconds "$seconds" --warmup 0 2>/dev/null |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["messages"])')
    kill -TERM "$pid"
    for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    echo "$trips $(grep -o 'Collected : [0-9]*' "$out/stderr" | grep -o '[0-9]*$')"
}

for kind in raw wsfn; do
    short=$(run_once "$kind" 3)
    long=$(run_once "$kind" 12)
    python3 - "$kind" $short $long <<'EOF'
import sys
kind, n1, i1, n2, i2 = sys.argv[1], *map(int, sys.argv[2:])
print(f"{kind}: {(i2 - i1) / (n2 - n1):,.0f} instructions per echo event ({n2 - n1:,} round trips)")
EOF
done
