#!/usr/bin/env bash
# Cross-node messaging against one node, side by side in one run: pairs of connections in
# chat rooms of two, the sender's message timed until the receiver has it (closed loop per
# pair). Four setups:
#   single    one wsfn-host, no Redis (both ends on one node)
#   redis     one wsfn-host with --redis (both ends on one node; what the Redis mirror costs)
#   cross     two wsfn-host nodes on one Redis, sender on node A, receiver on node B
#   cluster3  three nodes on a three-shard Redis Cluster, sender on node A, receiver on node B
# Then what a publish costs the nodes that hold no member of its group: four nodes on one
# Redis, the relay run with both members of every room on node B (each message a publish to
# a group whose members sit on B only), and the CPU time each node spends meanwhile (from
# /proc/PID/stat). With BENCH_BEFORE, an earlier wsfn-host runs the same four nodes beside it.
# Last, what a resumable session costs per message: echo through the Rust client with
# sessions off and on, against one node without Redis (sessions kept in memory) and one node
# on Redis (sessions journaled in Redis, as in any cluster).
# The servers (every node and redis-server) are pinned to CPU 0, the load generator to CPU 1.
# Each setup runs several times; the tables show medians and ratios to `single`.
#
# Environment (defaults in brackets):
#   BENCH_REPS [3]         repetitions of each setup
#   BENCH_SECONDS [10]     seconds measured per run (after 2 s of warm-up)
#   BENCH_PAIRS [50]       sender/receiver pairs
#   BENCH_BEFORE [unset]   an earlier wsfn-host binary for the four-node run
#   BENCH_SESSION_CONNECTIONS [50]  echo connections for the session comparison
#   BENCH_SECTIONS ["relay four sessions"]  which parts to run
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD

reps=${BENCH_REPS:-3}
seconds=${BENCH_SECONDS:-10}
pairs=${BENCH_PAIRS:-50}
session_connections=${BENCH_SESSION_CONNECTIONS:-50}
sections=" ${BENCH_SECTIONS:-relay four sessions} "
section() { [[ $sections == *" $1 "* ]]; }
before_host=${BENCH_BEFORE:-}
if [[ -n $before_host ]]; then
    [[ -x $before_host ]] || { echo "bench-cluster: BENCH_BEFORE ($before_host) is not an executable" >&2; exit 1; }
    before_host=$(realpath "$before_host")
fi
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

# start_cluster3: a Redis Cluster of three primaries; sets $cluster_url.
start_cluster3() {
    local ports=() port
    for shard in 1 2 3; do
        port=$(free_port)
        # A fresh directory each time: a node that finds its nodes.conf rejoins its old cluster.
        rm -rf "$work/shard-$shard"
        mkdir -p "$work/shard-$shard"
        : >"$work/shard-$shard.out"
        # The bus port is chosen too: the default (port + 10000) may be taken or past 65535.
        taskset -c "$server_cpu" redis-server --bind 127.0.0.1 --port "$port" --save "" \
            --appendonly no --cluster-enabled yes --cluster-port "$(free_port)" \
            --cluster-config-file "$work/shard-$shard/nodes.conf" \
            --dir "$work/shard-$shard" >"$work/shard-$shard.out" 2>&1 &
        pids+=($!)
        local pid=$!
        until grep -q "Ready to accept" "$work/shard-$shard.out"; do
            kill -0 "$pid" 2>/dev/null || die "a Redis Cluster node did not start: $(tail -1 "$work/shard-$shard.out")"
            sleep 0.1
        done
        ports+=("127.0.0.1:$port")
    done
    redis-cli --cluster create "${ports[@]}" --cluster-replicas 0 --cluster-yes >"$work/create.out" 2>&1 ||
        die "redis-cli --cluster create failed: $(tail -3 "$work/create.out")"
    for address in "${ports[@]}"; do
        until redis-cli -h 127.0.0.1 -p "${address#*:}" cluster info | grep -q cluster_state:ok; do sleep 0.1; done
    done
    cluster_url="redis://${ports[0]}/"
}

# start_node NAME [OPTIONS...]: starts a wsfn-host (WSFN_BIN, default this build) serving
# chat and notify; sets $address and $node_pid.
start_node() {
    local name=$1 out=$work/$1.out
    shift
    rm -rf "$work/$name-data"
    : >"$out"
    WSFN_ADMIN_TOKEN=bench RUST_LOG=warn taskset -c "$server_cpu" "${WSFN_BIN:-$bin/wsfn-host}" run \
        --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 --data-dir "$work/$name-data" \
        --store memory "$@" target/functions/chat.wasm target/functions/notify.wasm \
        target/functions/echo.wasm >"$out" 2>"$work/$name.err" &
    node_pid=$!
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

# CPU time of a process so far, in clock ticks (user + system).
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# four_nodes SETUP REP: the relay run with every room's two members on node B, so every
# publish is to a group whose members sit on one node of four; A, C and D hold none.
four_nodes() {
    local setup=$1 rep=$2 node_pids=() addresses=() ticks_before=() ticks_after=()
    say "$setup: run $rep of $reps"
    start_redis
    for name in a b c d; do
        start_node "$setup-$name" --redis "redis://127.0.0.1:$redis_port/"
        node_pids+=("$node_pid")
        addresses+=("$address")
    done
    for pid in "${node_pids[@]}"; do ticks_before+=("$(cpu_ticks "$pid")"); done
    local started_ns=$(date +%s%N)
    line=$(load relay "ws://${addresses[1]}/chat?room=p{pair}&user=r" "ws://${addresses[1]}/chat?room=p{pair}&user=s" \
        --pairs "$pairs" --seconds "$seconds")
    local wall_ms=$((($(date +%s%N) - started_ns) / 1000000))
    for pid in "${node_pids[@]}"; do ticks_after+=("$(cpu_ticks "$pid")"); done
    local ticks=()
    for i in 0 1 2 3; do ticks+=($((ticks_after[i] - ticks_before[i]))); done
    echo "{\"setup\":\"$setup\",\"rep\":$rep,\"ticks\":[${ticks[0]},${ticks[1]},${ticks[2]},${ticks[3]}],\"hz\":$(getconf CLK_TCK),\"wall_ms\":$wall_ms,\"result\":$line}" >>"$results"
    stop_all
}

for rep in $(seq 1 "$reps"); do
  if section relay; then
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

    start_cluster3
    start_node a --redis "$cluster_url"
    a=$address
    start_node b --redis "$cluster_url"
    start_node c --redis "$cluster_url"
    relay cluster3 "$rep" "$address" "$a"
    stop_all

  fi
  if section four; then
    four_nodes four "$rep"
    if [[ -n $before_host ]]; then
        WSFN_BIN=$before_host four_nodes four-before "$rep"
    fi
  fi

    # Sessions off and on: in memory (one node, no Redis), then journaled (a node on Redis).
    section sessions || continue
    for place in memory journal; do
        if [[ $place == journal ]]; then
            start_redis
            start_node "sessions-$place" --redis "redis://127.0.0.1:$redis_port/"
        else
            start_node "sessions-$place"
        fi
        for side in off on; do
            flag=--wsfn-client
            [[ $side == on ]] && flag=--session
            say "sessions $side, $place: run $rep of $reps"
            line=$(load echo "ws://$address/echo" --connections "$session_connections" --size 64 \
                --seconds "$seconds" $flag)
            echo "{\"setup\":\"sessions-$place-$side\",\"rep\":$rep,\"result\":$line}" >>"$results"
        done
        stop_all
    done
done

mkdir -p target/bench
cp "$results" target/bench/cluster-results.jsonl
python3 - "$results" "$pairs" <<'PY'
import json, statistics, sys
path, pairs = sys.argv[1], int(sys.argv[2])
rows = [json.loads(line) for line in open(path)]
relays = [r for r in rows if "ticks" not in r and not r["setup"].startswith("sessions-")]
sessions = [r for r in rows if r["setup"].startswith("sessions-")]
fours = [r for r in rows if "ticks" in r]
def med(setup, key):
    return statistics.median(r["result"][key] for r in relays if r["setup"] == setup)
reps = max(sum(1 for r in rows if r["setup"] == s) for s in ("single", "four", "sessions-memory-on"))
if relays:
    print(f"\n## Messages between connections: {pairs} pairs, closed loop (median of {reps} runs)\n")
    print("| setup | msg/s | p50 µs | p99 µs | msg/s vs single | p50 vs single | p99 vs single |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for setup in ["single", "redis", "cross", "cluster3"]:
        print(f"| {setup} | {med(setup,'per_second'):,.0f} | {med(setup,'p50_us'):.0f} | {med(setup,'p99_us'):.0f} | "
              f"{med(setup,'per_second')/med('single','per_second'):.2f} | {med(setup,'p50_us')/med('single','p50_us'):.2f} | "
              f"{med(setup,'p99_us')/med('single','p99_us'):.2f} |")
def cpu_ms(r, node):
    return r["ticks"][node] * 1000 / r["hz"]
def publishes(r):
    # The relay's rate over the whole call (its warm-up and connecting included).
    return r["result"]["per_second"] * r["wall_ms"] / 1000
if fours:
    print(f"\n## A publish costs the nodes without members (four nodes on one Redis; every room on node B; median of {reps} runs)\n")
    print("| build | msg/s | CPU ms: B (members) | A | C | D | A+C+D per 1,000 publishes | B per 1,000 |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
for setup in ["four", "four-before"]:
    runs = [r for r in fours if r["setup"] == setup]
    if not runs:
        continue
    m = lambda f: statistics.median(f(r) for r in runs)
    name = "this build" if setup == "four" else "before (BENCH_BEFORE)"
    others = lambda r: cpu_ms(r, 0) + cpu_ms(r, 2) + cpu_ms(r, 3)
    print(f"| {name} | {m(lambda r: r['result']['per_second']):,.0f} | {m(lambda r: cpu_ms(r,1)):,.0f} | "
          f"{m(lambda r: cpu_ms(r,0)):,.0f} | {m(lambda r: cpu_ms(r,2)):,.0f} | {m(lambda r: cpu_ms(r,3)):,.0f} | "
          f"{m(lambda r: others(r) * 1000 / publishes(r)):.2f} | {m(lambda r: cpu_ms(r,1) * 1000 / publishes(r)):.1f} |")
if sessions:
    def smed(setup, key):
        return statistics.median(r["result"][key] for r in sessions if r["setup"] == setup)
    print(f"\n## What a resumable session costs per message: echo, 64 B, Rust client, sessions off and on (median of {reps} runs)\n")
    print("| where sessions live | msg/s off | msg/s on | on vs off | p99 µs off | p99 µs on | p99 on vs off |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for place, name in [("memory", "one node, no Redis (in memory)"), ("journal", "a node on Redis (journaled)")]:
        off, on = f"sessions-{place}-off", f"sessions-{place}-on"
        print(f"| {name} | {smed(off,'per_second'):,.0f} | {smed(on,'per_second'):,.0f} | {smed(on,'per_second')/smed(off,'per_second'):.2f} | "
              f"{smed(off,'p99_us'):.0f} | {smed(on,'p99_us'):.0f} | {smed(on,'p99_us')/smed(off,'p99_us'):.2f} |")
PY
