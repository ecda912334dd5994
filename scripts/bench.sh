#!/usr/bin/env bash
# Benchmarks wsfn side by side with a raw fastwebsockets echo server (no WebAssembly: the
# ceiling; it also does the broadcast) and Node's `ws` echo server, in one run, on loopback.
#
# Every server runs pinned to CPU 0 and the load generator to CPU 1. Each measurement is
# repeated and the table shows medians and ratios. Results also go to target/bench/results.json.
#
# Environment (defaults in brackets):
#   BENCH_REPS [3]                 repetitions of each echo measurement
#   BENCH_SECONDS [10]             seconds measured per echo run (after 2 s of warm-up)
#   BENCH_CONNECTIONS [100]        echo connections
#   BENCH_SIZE [64]                echo message size in bytes
#   BENCH_IDLE_CONNECTIONS [10000] connections held for the memory measurement
#   BENCH_MEMBERS [10000]          group size for the broadcast measurement
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD

reps=${BENCH_REPS:-3}
seconds=${BENCH_SECONDS:-10}
connections=${BENCH_CONNECTIONS:-100}
size=${BENCH_SIZE:-64}
idle_connections=${BENCH_IDLE_CONNECTIONS:-10000}
members=${BENCH_MEMBERS:-10000}
server_cpu=0
client_cpu=1

say() { echo "bench: $*" >&2; }
die() {
    say "error: $*"
    exit 1
}

[[ $(nproc --all) -ge 2 ]] || die "needs at least 2 CPUs (server on CPU $server_cpu, load on CPU $client_cpu)"
# 10,000 connections need 10,000 descriptors on each side.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
most=$((idle_connections > members ? idle_connections : members))
[[ $(ulimit -n) -ge $((most + 1000)) ]] ||
    die "the open-file limit ($(ulimit -n)) is too low for $most connections"

# --- install and build -----------------------------------------------------------------
as_root() { if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi; }
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    say "installing Node.js"
    as_root apt-get update -qq && as_root apt-get install -y -qq nodejs npm >/dev/null
fi
command -v taskset >/dev/null || as_root apt-get install -y -qq util-linux >/dev/null
(cd bench/node && npm ci --no-audit --no-fund --silent)
./scripts/setup.sh
say "building the host, the raw echo server and the load generator (release; the first build takes a while)"
cargo build --release --quiet --target-dir target/bench -p wsfn-host -p wsfn-bench
bin=$root/target/bench/release
WSFN_HOST=$bin/wsfn-host ./scripts/build-functions.sh >/dev/null

work=$(mktemp -d)
server_pid=
stop_server() {
    if [[ -n $server_pid ]]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
        server_pid=
    fi
}
trap 'stop_server; rm -rf "$work"' EXIT

# start_server KIND [HOST OPTION...]: starts a server on CPU 0 and sets $address (IP:PORT)
# and $server_pid; options after the kind go to wsfn-host.
start_server() {
    local kind=$1 out=$work/$1.out
    shift
    : >"$out"
    case $kind in
        raw) taskset -c "$server_cpu" "$bin/raw-echo" 127.0.0.1:0 >"$out" 2>"$work/$kind.err" & ;;
        node) taskset -c "$server_cpu" node bench/node/echo.js 127.0.0.1:0 >"$out" 2>"$work/$kind.err" & ;;
        wsfn)
            rm -rf "$work/data"
            WSFN_ADMIN_TOKEN=bench RUST_LOG=warn taskset -c "$server_cpu" "$bin/wsfn-host" run \
                --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 --data-dir "$work/data" \
                --max-connections-per-ip 100000 "$@" \
                target/functions/echo.wasm target/functions/notify.wasm >"$out" 2>"$work/$kind.err" &
            ;;
    esac
    server_pid=$!
    local tries=0
    until grep -q 'listening on ws://' "$out"; do
        sleep 0.1
        tries=$((tries + 1))
        [[ $tries -lt 300 ]] || die "$kind did not start: $(cat "$work/$kind.err")"
    done
    address=$(grep -o 'listening on ws://[0-9.:]*' "$out" | head -1 | sed 's|listening on ws://||')
    admin=$(grep -o 'admin API on http://[0-9.:]*' "$out" | head -1 | sed 's|admin API on ||' || true)
}

path_of() { case $1 in wsfn) echo /echo ;; *) echo / ;; esac; }
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
load() { taskset -c "$client_cpu" "$bin/wsfn-bench" "$@"; }

results=$work/results.jsonl
record() { echo "{\"server\":\"$1\",\"rep\":$2,\"result\":$3}" >>"$results"; }

# --- echo throughput and latency --------------------------------------------------------
for rep in $(seq 1 "$reps"); do
    for kind in raw node wsfn; do
        start_server "$kind"
        say "echo: $kind, run $rep of $reps"
        line=$(load echo "ws://$address$(path_of "$kind")" --connections "$connections" --size "$size" --seconds "$seconds")
        record "$kind" "$rep" "$line"
        stop_server
    done
done

# --- hot swap during an echo run --------------------------------------------------------
# Two components that both echo: the echo sample and the faulty fixture (which echoes any
# message but its trigger words). One run without swaps, then one during which 5 deploys
# alternate them, each a second after the previous one returned. Every deploy compiles (a
# version's bytes differ from the one it replaces). Twice: with the default compile priority
# (nice 10), and with `--compile-priority idle`, where compiling only gets the CPU time
# serving leaves, so on this saturated CPU the deploys take seconds and the run is longer.
swap_component() {
    local started=$(date +%s%N)
    curl -fsS -o /dev/null -H "Authorization: Bearer bench" -X PUT --data-binary "@$1" "$admin/v1/functions/echo" || return 1
    echo $((($(date +%s%N) - started) / 1000000)) >>"$work/deploys"
}
for priority in low idle; do
    case $priority in low) during_seconds=10 ;; idle) during_seconds=70 ;; esac
    for rep in $(seq 1 "$reps"); do
        start_server wsfn --compile-priority "$priority"
        say "hot swap, compile priority $priority: run $rep of $reps"
        before=$(load echo "ws://$address/echo" --connections "$connections" --size "$size" --seconds 5)
        : >"$work/deploys"
        (
            sleep 2.5
            for component in faulty echo faulty echo faulty; do
                swap_component "target/functions/$component.wasm"
                sleep 1
            done
        ) &
        swapper=$!
        during=$(load echo "ws://$address/echo" --connections "$connections" --size "$size" --seconds "$during_seconds")
        # Only deploys that returned while the load ran count.
        done_in_run=$(wc -l <"$work/deploys")
        wait "$swapper" || die "a deploy during the echo run failed"
        [[ $done_in_run -eq 5 ]] || say "warning: only $done_in_run of 5 deploys finished during the run"
        record "swap-before-$priority" "$rep" "$before"
        record "swap-during-$priority" "$rep" "$during"
        record "swap-deploys-$priority" "$rep" "{\"mode\":\"deploys\",\"in_run\":$done_in_run,\"ms\":[$(paste -sd, "$work/deploys")]}"
        stop_server
    done
done

# --- memory per idle connection ---------------------------------------------------------
for kind in raw node wsfn; do
    start_server "$kind"
    sleep 1
    before=$(rss_kib "$server_pid")
    load idle "ws://$address$(path_of "$kind")" --connections "$idle_connections" --hold 8 >"$work/idle.out" &
    idler=$!
    until grep -q holding "$work/idle.out" 2>/dev/null; do
        sleep 0.2
        kill -0 "$idler" 2>/dev/null || die "the idle load generator failed against $kind"
    done
    sleep 2
    after=$(rss_kib "$server_pid")
    wait "$idler"
    record "$kind" 1 "{\"mode\":\"idle\",\"connections\":$idle_connections,\"rss_before_kib\":$before,\"rss_after_kib\":$after}"
    say "idle: $kind RSS $before KiB -> $after KiB with $idle_connections connections"
    stop_server
done

# --- connection rate --------------------------------------------------------------------
for kind in raw node wsfn; do
    start_server "$kind"
    say "connect: $kind"
    record "$kind" 1 "$(load connect "ws://$address$(path_of "$kind")" --seconds 5)"
    stop_server
done

# --- group broadcast --------------------------------------------------------------------
# raw: members on /group, every frame sent on /publish is written to each of them straight
# from the publisher's task (the least a broadcast can cost); wsfn: the notify sample.
for rep in $(seq 1 "$reps"); do
    for kind in raw wsfn; do
        start_server "$kind"
        say "broadcast: $kind, $members members, run $rep of $reps"
        case $kind in
            raw) record raw "$rep" "$(load broadcast "ws://$address/group" "ws://$address/publish" \
                --trigger hello --members "$members" --rounds 5)" ;;
            wsfn) record wsfn "$rep" "$(load broadcast "ws://$address/notify?user=bench" "ws://$address/notify?user=publisher" \
                --trigger '{"to":"bench","text":"hello"}' --members "$members" --rounds 5)" ;;
        esac
        stop_server
    done
done

# --- report -----------------------------------------------------------------------------
mkdir -p target/bench
cp "$results" target/bench/results.jsonl
python3 - "$results" "$connections" "$size" "$idle_connections" "$members" <<'EOF'
import json, statistics, sys
path, connections, size, idle, members = sys.argv[1], *map(int, sys.argv[2:])
rows = [json.loads(line) for line in open(path)]
def runs(server, mode):
    return [r["result"] for r in rows if r["server"] == server and r["result"]["mode"] == mode]
def med(server, mode, key):
    values = [r[key] for r in runs(server, mode)]
    return statistics.median(values) if values else float("nan")

print(f"\n## Echo: {connections} connections x {size} B, closed loop (median of {len(runs('wsfn', 'echo'))} runs)\n")
print("| server | msg/s | p50 µs | p90 µs | p99 µs | p99.9 µs |")
print("|---|---:|---:|---:|---:|---:|")
for server in ["raw", "node", "wsfn"]:
    print(f"| {server} | {med(server,'echo','per_second'):,.0f} | {med(server,'echo','p50_us'):.0f} | "
          f"{med(server,'echo','p90_us'):.0f} | {med(server,'echo','p99_us'):.0f} | {med(server,'echo','p999_us'):.0f} |")
w, r, n = (med(s, "echo", "per_second") for s in ["wsfn", "raw", "node"])
print(f"\n- wsfn / raw throughput: **{w/r:.2f}** (target ≥ 0.9)")
print(f"- wsfn / node throughput: **{w/n:.2f}** (target ≥ 1.8)")
print(f"- wsfn / raw p99: **{med('wsfn','echo','p99_us')/med('raw','echo','p99_us'):.2f}** (target ≤ 1.5)")

print("\n## Memory per idle connection\n")
print(f"| server | RSS before | RSS with {idle:,} connections | bytes per connection |")
print("|---|---:|---:|---:|")
for server in ["raw", "node", "wsfn"]:
    for r in runs(server, "idle"):
        per = (r["rss_after_kib"] - r["rss_before_kib"]) * 1024 / r["connections"]
        print(f"| {server} | {r['rss_before_kib']:,} KiB | {r['rss_after_kib']:,} KiB | {per:,.0f} |")

print("\n## New connections per second (handshake and on-connect included)\n")
print("| server | connections/s |")
print("|---|---:|")
for server in ["raw", "node", "wsfn"]:
    print(f"| {server} | {med(server,'connect','per_second'):,.0f} |")

print(f"\n## Publish to a group of {members:,} members, until the last one received (median of {len(runs('wsfn', 'broadcast'))} runs of 5 rounds)\n")
print("| server | median ms | rounds ms |")
print("|---|---:|---|")
for server in ["raw", "wsfn"]:
    rounds = ", ".join(f"{t:.1f}" for r in runs(server, "broadcast") for t in r["rounds_ms"])
    print(f"| {server} | {med(server,'broadcast','median_ms'):.1f} | {rounds} |")
print(f"\n- wsfn / raw time: **{med('wsfn','broadcast','median_ms')/med('raw','broadcast','median_ms'):.2f}** (target: wsfn ≤ 50 ms)")
print(f"\n## Hot swap during the echo run (5 deploys, each compiling, a second apart)\n")
print("| compile priority | p99 before µs | p99 during µs | ratio (target ≤ 2) | msg/s before | msg/s during | failed connections | deploys in the run | deploy time, median |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
for priority in ["low", "idle"]:
    before, during = med(f"swap-before-{priority}", "echo", "p99_us"), med(f"swap-during-{priority}", "echo", "p99_us")
    failed = sum(r["failed_connections"] for r in runs(f"swap-during-{priority}", "echo"))
    deploys = runs(f"swap-deploys-{priority}", "deploys")
    in_run = f"{min(d['in_run'] for d in deploys)}–{max(d['in_run'] for d in deploys)} of 5"
    times = [t for d in deploys for t in d["ms"]]
    print(f"| {priority} | {before:.0f} | {during:.0f} | **{during/before:.2f}** | "
          f"{med(f'swap-before-{priority}','echo','per_second'):,.0f} | {med(f'swap-during-{priority}','echo','per_second'):,.0f} | "
          f"{failed} | {in_run} | {statistics.median(times):,.0f} ms |")
EOF
