#!/usr/bin/env bash
# Cross-node messaging against one node, side by side in one run: pairs of connections in
# chat rooms of two, the sender's message timed until the receiver has it (closed loop per
# pair). Three setups:
#   single  one wsfn-host, no Redis (both ends on one node)
#   redis   one wsfn-host with --redis (both ends on one node; what the Redis mirror costs)
#   cross   two wsfn-host nodes on one Redis, sender on node A, receiver on node B
# The servers (both nodes and redis-server) are pinned to CPU 0, the load generator to CPU 1.
# Each setup runs several times; the table shows medians and ratios to `single`.
#
# Environment (defaults in brackets):
#   BENCH_REPS [3]      repetitions of each setup
#   BENCH_SECONDS [10]  seconds measured per run (after 2 s of warm-up)
#   BENCH_PAIRS [50]    sender/receiver pairs
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD

reps=${BENCH_REPS:-3}
seconds=${BENCH_SECONDS:-10}
pairs=${BENCH_PAIRS:-50}
server_cpu=0
client_cpu=1

say() { echo "bench-cluster: $*" >&2; }
die() {
    say "error: $*"
    exit 1
}
[[ $(nproc --all) -ge 2 ]] || die "needs at least 2 CPUs"

./scripts/setup.sh
./scripts/test-deps.sh
say "building the host and the load generator (release; the first build takes a while)"
cargo build --profile profiling --quiet --target-dir target/bench -p wsfn-host -p wsfn-bench
bin=$root/target/bench/profiling
WSFN_HOST=$bin/wsfn-host ./scripts/build-functions.sh >/dev/null

work=$(mktemp -d)
pids=()
stop_all() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    pids=()
}
trap 'stop_all; rm -rf "$work"' EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

start_redis() {
    redis_port=$(free_port)
    taskset -c "$server_cpu" redis-server --bind 127.0.0.1 --port "$redis_port" --save "" \
        --appendonly no --dir "$work" >"$work/redis.out" 2>&1 &
    pids+=($!)
    until grep -q "Ready to accept" "$work/redis.out"; do sleep 0.1; done
}

# start_node NAME [OPTIONS...]: starts a wsfn-host serving chat; sets $address.
start_node() {
    local name=$1 out=$work/$1.out
    shift
    rm -rf "$work/$name-data"
    : >"$out"
    WSFN_ADMIN_TOKEN=bench RUST_LOG=warn taskset -c "$server_cpu" "$bin/wsfn-host" run \
        --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 --data-dir "$work/$name-data" \
        --store memory "$@" target/functions/chat.wasm >"$out" 2>"$work/$name.err" &
    pids+=($!)
    local tries=0
    until grep -q 'listening on ws://' "$out"; do
        sleep 0.1
        tries=$((tries + 1))
        [[ $tries -lt 300 ]] || die "$name did not start: $(cat "$work/$name.err")"
    done
    address=$(grep -o 'listening on ws://[0-9.:]*' "$out" | head -1 | sed 's|listening on ws://||')
}

load() { taskset -c "$client_cpu" "$bin/wsfn-bench" "$@"; }
results=$work/results.jsonl
relay() {
    local setup=$1 rep=$2 receiver=$3 sender=$4
    say "$setup: run $rep of $reps"
    line=$(load relay "ws://$receiver/chat?room=p{pair}&user=r" "ws://$sender/chat?room=p{pair}&user=s" \
        --pairs "$pairs" --seconds "$seconds")
    echo "{\"setup\":\"$setup\",\"rep\":$rep,\"result\":$line}" >>"$results"
}

for rep in $(seq 1 "$reps"); do
    start_node single
    relay single "$rep" "$address" "$address"
    stop_all

    start_redis
    start_node solo --redis "redis://127.0.0.1:$redis_port/"
    relay redis "$rep" "$address" "$address"
    stop_all

    start_redis
    start_node a --redis "redis://127.0.0.1:$redis_port/"
    a=$address
    start_node b --redis "redis://127.0.0.1:$redis_port/"
    relay cross "$rep" "$address" "$a"
    stop_all
done

mkdir -p target/bench
cp "$results" target/bench/cluster-results.jsonl
python3 - "$results" "$pairs" <<'PY'
import json, statistics, sys
path, pairs = sys.argv[1], int(sys.argv[2])
rows = [json.loads(line) for line in open(path)]
def med(setup, key):
    return statistics.median(r["result"][key] for r in rows if r["setup"] == setup)
reps = sum(1 for r in rows if r["setup"] == "single")
print(f"\n## Messages between connections: {pairs} pairs, closed loop (median of {reps} runs)\n")
print("| setup | msg/s | p50 µs | p99 µs | msg/s vs single | p50 vs single | p99 vs single |")
print("|---|---:|---:|---:|---:|---:|---:|")
for setup in ["single", "redis", "cross"]:
    print(f"| {setup} | {med(setup,'per_second'):,.0f} | {med(setup,'p50_us'):.0f} | {med(setup,'p99_us'):.0f} | "
          f"{med(setup,'per_second')/med('single','per_second'):.2f} | {med(setup,'p50_us')/med('single','p50_us'):.2f} | "
          f"{med(setup,'p99_us')/med('single','p99_us'):.2f} |")
PY
