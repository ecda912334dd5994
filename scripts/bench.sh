#!/usr/bin/env bash
# Benchmarks wsfn side by side with a raw fastwebsockets echo server (no WebAssembly: the
# ceiling; it also does the broadcast) and Node's `ws` echo server, in one run, on loopback;
# then wsfn with resumable sessions on and off, a resume storm, and permessage-deflate on and
# off.
#
# Every server runs pinned to CPU 0 and the load generator to CPU 1. Each measurement is
# repeated and the table shows medians and ratios. Results also go to target/bench/results.jsonl.
#
# Sections (BENCH_SECTIONS picks some, in this order):
#   echo       echo throughput and latency: raw, node, wsfn (fastwebsockets client)
#   swap       hot swaps during an echo run
#   idle       memory per idle connection: raw, node, wsfn
#   connect    new connections per second
#   broadcast  publish to a group: raw, wsfn
#   sessions   wsfn with sessions on and off (wsfn-client both sides): echo, idle memory
#   storm      BENCH_STORM_SESSIONS sessions whose sockets all drop at once, BENCH_STORM_MESSAGES
#              publishes while they are away, all resumed together
#   deflate    wsfn with permessage-deflate on and off (wsfn-client both sides): the chat
#              sample's JSON (wire bytes, msg/s), echo, idle memory, publish to a group
#
# Environment (defaults in brackets):
#   BENCH_SECTIONS [all of the above]  which sections to run, e.g. "sessions storm deflate"
#   BENCH_REPS [3]                 repetitions of each measurement (idle of raw/node/wsfn: once)
#   BENCH_SECONDS [10]             seconds measured per echo or chat run (after 2 s of warm-up)
#   BENCH_CONNECTIONS [100]        echo and chat connections
#   BENCH_SIZE [64]                echo message size in bytes
#   BENCH_IDLE_CONNECTIONS [10000] connections held for the memory measurements
#   BENCH_MEMBERS [10000]          group size for the broadcast measurements
#   BENCH_CHAT_SIZE [200]          bytes of each chat line (the deflate section's chat and publish)
#   BENCH_STORM_SESSIONS [10000]   sessions in the resume storm
#   BENCH_STORM_MESSAGES [10]      messages published to them while they are cut off
#   BENCH_STORM_RESUME_MS [1000]   how long after the cut they all resume
#   BENCH_BEFORE [unset]           another wsfn-host binary (an earlier build) to run beside this
#                                  one in the echo, idle, connect and broadcast sections, as
#                                  server "before": a before/after comparison in one run
#
# A short run of the new sections only, for instance:
#   BENCH_SECTIONS="sessions storm deflate" BENCH_REPS=1 BENCH_SECONDS=3 \
#   BENCH_IDLE_CONNECTIONS=1000 BENCH_MEMBERS=1000 BENCH_STORM_SESSIONS=1000 ./scripts/bench.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD

reps=${BENCH_REPS:-3}
seconds=${BENCH_SECONDS:-10}
connections=${BENCH_CONNECTIONS:-100}
size=${BENCH_SIZE:-64}
idle_connections=${BENCH_IDLE_CONNECTIONS:-10000}
members=${BENCH_MEMBERS:-10000}
sections=" ${BENCH_SECTIONS:-echo swap idle connect broadcast sessions storm deflate} "
chat_size=${BENCH_CHAT_SIZE:-200}
storm_sessions=${BENCH_STORM_SESSIONS:-10000}
storm_messages=${BENCH_STORM_MESSAGES:-10}
storm_resume_ms=${BENCH_STORM_RESUME_MS:-1000}
before_host=${BENCH_BEFORE:-}
server_cpu=0
client_cpu=1

say() { echo "bench: $*" >&2; }
die() {
    say "error: $*"
    exit 1
}

if [[ -n $before_host ]]; then
    [[ -x $before_host ]] || die "BENCH_BEFORE ($before_host) is not an executable"
    before_host=$(realpath "$before_host")
fi
[[ $(nproc --all) -ge 2 ]] || die "needs at least 2 CPUs (server on CPU $server_cpu, load on CPU $client_cpu)"
# 10,000 connections need 10,000 descriptors on each side.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
section() { [[ $sections == *" $1 "* ]]; }
most=$((idle_connections > members ? idle_connections : members))
if section storm && [[ $storm_sessions -gt $most ]]; then most=$storm_sessions; fi
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
say "building the host, the raw echo server and the load generator (the profiling profile: release with line tables; the first build takes a while)"
cargo build --profile profiling --quiet --target-dir target/bench -p wsfn-host -p wsfn-bench
bin=$root/target/bench/profiling
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

# The components wsfn serves; the deflate section adds the chat sample.
wsfn_functions=(target/functions/echo.wasm target/functions/notify.wasm)

# start_server KIND [HOST OPTION...]: starts a server on CPU 0 and sets $address (IP:PORT)
# and $server_pid; options after the kind go to wsfn-host.
start_server() {
    local kind=$1 out=$work/$1.out
    shift
    : >"$out"
    case $kind in
        raw) taskset -c "$server_cpu" "$bin/raw-echo" 127.0.0.1:0 >"$out" 2>"$work/$kind.err" & ;;
        node) taskset -c "$server_cpu" node bench/node/echo.js 127.0.0.1:0 >"$out" 2>"$work/$kind.err" & ;;
        wsfn | before)
            local host=$bin/wsfn-host
            [[ $kind == before ]] && host=$before_host
            rm -rf "$work/data"
            WSFN_ADMIN_TOKEN=bench RUST_LOG=warn taskset -c "$server_cpu" "$host" run \
                --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 --data-dir "$work/data" \
                --max-connections-per-ip 100000 "$@" \
                "${wsfn_functions[@]}" >"$out" 2>"$work/$kind.err" &
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

path_of() { case $1 in wsfn | before) echo /echo ;; *) echo / ;; esac; }
# The servers of the echo, idle and connect sections, and of the broadcast section.
servers=(raw node wsfn)
broadcasters=(raw wsfn)
if [[ -n $before_host ]]; then
    servers+=(before)
    broadcasters+=(before)
fi
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
load() { taskset -c "$client_cpu" "$bin/wsfn-bench" "$@"; }

results=$work/results.jsonl
record() { echo "{\"server\":\"$1\",\"rep\":$2,\"result\":$3}" >>"$results"; }

# measure_idle LABEL REP URL [LOAD OPTION...]: holds $idle_connections connections to URL on
# the running server and records its RSS before and while it holds them.
measure_idle() {
    local label=$1 rep=$2 url=$3
    shift 3
    sleep 1
    local before after idler
    before=$(rss_kib "$server_pid")
    load idle "$url" --connections "$idle_connections" --hold 8 "$@" >"$work/idle.out" &
    idler=$!
    until grep -q holding "$work/idle.out" 2>/dev/null; do
        sleep 0.2
        kill -0 "$idler" 2>/dev/null || die "the idle load generator failed ($label)"
    done
    sleep 2
    after=$(rss_kib "$server_pid")
    wait "$idler"
    record "$label" "$rep" "{\"mode\":\"idle\",\"connections\":$idle_connections,\"rss_before_kib\":$before,\"rss_after_kib\":$after}"
    say "idle: $label RSS $before KiB -> $after KiB with $idle_connections connections"
}

# The "off" and "on" sides of a comparison, as load generator options: both go through the
# repository's Rust client, so only the feature differs.
side_flags() {
    case $1-$2 in
        *-off) echo --wsfn-client ;;
        sessions-on) echo --session ;;
        deflate-on) echo --deflate ;;
    esac
}

# A chat line of $chat_size bytes, for the publish with compression on and off.
chat_line=$(python3 -c "
import random, sys
words = 'the meeting is moved to three see you there thanks for the update can we talk about the release tomorrow morning I will bring coffee and the notes from yesterday sounds good'.split()
rng, line = random.Random(7), ''
while len(line) < int(sys.argv[1]): line += (' ' if line else '') + rng.choice(words)
print(line[:int(sys.argv[1])])" "$chat_size")

# --- echo throughput and latency --------------------------------------------------------
if section echo; then
    for rep in $(seq 1 "$reps"); do
        for kind in "${servers[@]}"; do
            start_server "$kind"
            say "echo: $kind, run $rep of $reps"
            line=$(load echo "ws://$address$(path_of "$kind")" --connections "$connections" --size "$size" --seconds "$seconds")
            record "$kind" "$rep" "$line"
            stop_server
        done
    done
fi

# --- hot swap during an echo run --------------------------------------------------------
# Two components that both echo: the echo sample and the faulty fixture (which echoes any
# message but its trigger words). One run without swaps, then one during which 5 deploys
# alternate them, each a second after the previous one returned. Every deploy compiles (a
# version's bytes differ from the one it replaces). Twice: with the default compile priority
# (nice 10), and with `--compile-priority idle`, where compiling only gets the CPU time
# serving leaves, so on this saturated CPU the deploys take seconds and the run is longer.
if section swap; then
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
fi

# --- memory per idle connection ---------------------------------------------------------
# Once for raw and node; for wsfn every repetition when it is compared with "before".
if section idle; then
    for rep in $(seq 1 "$reps"); do
        for kind in "${servers[@]}"; do
            [[ $rep -eq 1 || ( -n $before_host && ( $kind == wsfn || $kind == before ) ) ]] || continue
            start_server "$kind"
            measure_idle "$kind" "$rep" "ws://$address$(path_of "$kind")"
            stop_server
        done
    done
fi

# --- connection rate --------------------------------------------------------------------
if section connect; then
    for kind in "${servers[@]}"; do
        start_server "$kind"
        say "connect: $kind"
        record "$kind" 1 "$(load connect "ws://$address$(path_of "$kind")" --seconds 5)"
        stop_server
    done
fi

# --- group broadcast --------------------------------------------------------------------
# raw: members on /group, every frame sent on /publish is written to each of them straight
# from the publisher's task (the least a broadcast can cost); wsfn: the notify sample.
if section broadcast; then
    for rep in $(seq 1 "$reps"); do
        for kind in "${broadcasters[@]}"; do
            start_server "$kind"
            say "broadcast: $kind, $members members, run $rep of $reps"
            case $kind in
                raw) record raw "$rep" "$(load broadcast "ws://$address/group" "ws://$address/publish" \
                    --trigger hello --members "$members" --rounds 5)" ;;
                wsfn | before) record "$kind" "$rep" "$(load broadcast "ws://$address/notify?user=bench" "ws://$address/notify?user=publisher" \
                    --trigger '{"to":"bench","text":"hello"}' --members "$members" --rounds 5)" ;;
            esac
            stop_server
        done
    done
fi

# --- sessions on and off ---------------------------------------------------------------
# The echo run and the idle memory, with the repository's Rust client on both sides: plain
# WebSocket ("off") and resumable sessions ("on": a type byte per message, acknowledgements,
# the host keeping what it sent until acknowledged).
if section sessions; then
    for rep in $(seq 1 "$reps"); do
        for side in off on; do
            start_server wsfn
            say "sessions $side: echo, run $rep of $reps"
            line=$(load echo "ws://$address/echo" --connections "$connections" --size "$size" --seconds "$seconds" $(side_flags sessions $side))
            record "sessions-$side" "$rep" "$line"
            stop_server
        done
        for side in off on; do
            start_server wsfn
            measure_idle "sessions-$side" "$rep" "ws://$address/echo" $(side_flags sessions $side)
            stop_server
        done
    done
fi

# --- resume storm -----------------------------------------------------------------------
# Sessions to the notify sample, all in one user's group; every client drops its socket at
# once (no close frame, as a network failure), the publisher makes the host publish
# BENCH_STORM_MESSAGES messages to the group while they are away, and after
# BENCH_STORM_RESUME_MS all resume together. Measured: the time from the cut until every
# session has every message.
if section storm; then
    for rep in $(seq 1 "$reps"); do
        start_server wsfn
        say "resume storm: $storm_sessions sessions, run $rep of $reps"
        record storm "$rep" "$(load storm "ws://$address/notify?user=storm" "ws://$address/notify?user=publisher" \
            --trigger '{"to":"storm","text":"while you were away"}' --sessions "$storm_sessions" \
            --messages "$storm_messages" --resume-after-ms "$storm_resume_ms")"
        stop_server
    done
fi

# --- permessage-deflate on and off ------------------------------------------------------
# With the repository's Rust client on both sides, offering permessage-deflate ("on") or not
# ("off"); the host accepts it by default. The chat sample's traffic (each connection alone
# in its room, $chat_size-byte lines out, the room's JSON event back), the echo run, the idle
# memory, and a publish of a chat line to a group (the notify sample).
# deflate_run WHAT SIDE REP: one measurement of the deflate section on a fresh server.
deflate_run() {
    local what=$1 side=$2 rep=$3 flags
    flags=$(side_flags deflate "$side")
    start_server wsfn
    say "deflate $side: $what, run $rep of $reps"
    case $what in
        chat) record "deflate-$side" "$rep" "$(load bytes "ws://$address/chat?room=r{n}&user=u{n}" \
            --connections "$connections" --size "$chat_size" --seconds "$seconds" $flags)" ;;
        echo) record "deflate-$side" "$rep" "$(load echo "ws://$address/echo" --connections "$connections" \
            --size "$size" --seconds "$seconds" $flags)" ;;
        idle) measure_idle "deflate-$side" "$rep" "ws://$address/echo" $flags ;;
        publish) record "deflate-$side" "$rep" "$(load broadcast "ws://$address/notify?user=bench" \
            "ws://$address/notify?user=publisher" --trigger "{\"to\":\"bench\",\"text\":\"$chat_line\"}" \
            --members "$members" --rounds 5 $flags)" ;;
    esac
    stop_server
}
if section deflate; then
    wsfn_functions+=(target/functions/chat.wasm)
    for rep in $(seq 1 "$reps"); do
        for what in chat echo idle publish; do
            for side in off on; do
                deflate_run "$what" "$side" "$rep"
            done
        done
    done
    # Back to the components every other section serves.
    wsfn_functions=("${wsfn_functions[@]:0:2}")
fi

# --- report -----------------------------------------------------------------------------
mkdir -p target/bench
cp "$results" target/bench/results.jsonl
python3 - "$results" "$connections" "$size" "$idle_connections" "$members" "$chat_size" \
    "$storm_sessions" "$storm_messages" "$storm_resume_ms" <<'EOF'
import json, statistics, sys
path = sys.argv[1]
connections, size, idle, members, chat_size, storm_sessions, storm_messages, storm_resume_ms = map(int, sys.argv[2:])
rows = [json.loads(line) for line in open(path)]
def runs(server, mode):
    return [r["result"] for r in rows if r["server"] == server and r["result"]["mode"] == mode]
def med(server, mode, key):
    values = [r[key] for r in runs(server, mode)]
    return statistics.median(values) if values else float("nan")
def ratio(a, b):
    return a / b if b else float("nan")
def per_connection(r):
    return (r["rss_after_kib"] - r["rss_before_kib"]) * 1024 / r["connections"]
def idle_per_connection(server):
    values = [per_connection(r) for r in runs(server, "idle")]
    return statistics.median(values) if values else float("nan")

if runs("wsfn", "echo"):
    print(f"\n## Echo: {connections} connections x {size} B, closed loop (median of {len(runs('wsfn', 'echo'))} runs)\n")
    print("| server | msg/s | p50 µs | p90 µs | p99 µs | p99.9 µs |")
    print("|---|---:|---:|---:|---:|---:|")
    for server in ["raw", "node", "wsfn"] + (["before"] if runs("before", "echo") else []):
        print(f"| {server} | {med(server,'echo','per_second'):,.0f} | {med(server,'echo','p50_us'):.0f} | "
              f"{med(server,'echo','p90_us'):.0f} | {med(server,'echo','p99_us'):.0f} | {med(server,'echo','p999_us'):.0f} |")
    w, r, n = (med(s, "echo", "per_second") for s in ["wsfn", "raw", "node"])
    print(f"\n- wsfn / raw throughput: **{w/r:.2f}** (target ≥ 0.9)")
    print(f"- wsfn / node throughput: **{w/n:.2f}** (target ≥ 1.8)")
    print(f"- wsfn / raw p99: **{med('wsfn','echo','p99_us')/med('raw','echo','p99_us'):.2f}** (target ≤ 1.5)")
    if runs("before", "echo"):
        print(f"- wsfn / before throughput: **{w/med('before','echo','per_second'):.2f}**; "
              f"p99: **{med('wsfn','echo','p99_us')/med('before','echo','p99_us'):.2f}**")

if runs("wsfn", "idle"):
    print("\n## Memory per idle connection\n")
    print(f"| server | RSS before | RSS with {idle:,} connections | bytes per connection |")
    print("|---|---:|---:|---:|")
    for server in ["raw", "node", "wsfn", "before"]:
        for r in runs(server, "idle"):
            print(f"| {server} | {r['rss_before_kib']:,} KiB | {r['rss_after_kib']:,} KiB | {per_connection(r):,.0f} |")
    if runs("before", "idle"):
        print(f"\n- wsfn / before bytes per idle connection (medians of {len(runs('before', 'idle'))}): "
              f"**{idle_per_connection('wsfn')/idle_per_connection('before'):.2f}**")

if runs("wsfn", "connect"):
    print("\n## New connections per second (handshake and on-connect included)\n")
    print("| server | connections/s |")
    print("|---|---:|")
    for server in ["raw", "node", "wsfn"] + (["before"] if runs("before", "connect") else []):
        print(f"| {server} | {med(server,'connect','per_second'):,.0f} |")

if runs("wsfn", "broadcast"):
    print(f"\n## Publish to a group of {members:,} members, until the last one received (median of {len(runs('wsfn', 'broadcast'))} runs of 5 rounds)\n")
    print("| server | median ms | rounds ms |")
    print("|---|---:|---|")
    for server in ["raw", "wsfn"] + (["before"] if runs("before", "broadcast") else []):
        rounds = ", ".join(f"{t:.1f}" for r in runs(server, "broadcast") for t in r["rounds_ms"])
        print(f"| {server} | {med(server,'broadcast','median_ms'):.1f} | {rounds} |")
    print(f"\n- wsfn / raw time: **{med('wsfn','broadcast','median_ms')/med('raw','broadcast','median_ms'):.2f}** (target: wsfn ≤ 50 ms)")

if runs("swap-during-low", "echo"):
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
              f"{failed} | {in_run} | {statistics.median(times) if times else float('nan'):,.0f} ms |")

def echo_table(feature, prefix):
    print(f"\n### Echo: {connections} connections x {size} B, closed loop (median of {len(runs(prefix + '-on', 'echo'))} runs)\n")
    print(f"| {feature} | msg/s | p50 µs | p90 µs | p99 µs | p99.9 µs |")
    print("|---|---:|---:|---:|---:|---:|")
    for side in ["off", "on"]:
        s = f"{prefix}-{side}"
        print(f"| {side} | {med(s,'echo','per_second'):,.0f} | {med(s,'echo','p50_us'):.0f} | {med(s,'echo','p90_us'):.0f} | "
              f"{med(s,'echo','p99_us'):.0f} | {med(s,'echo','p999_us'):.0f} |")
    return (ratio(med(f"{prefix}-on", "echo", "per_second"), med(f"{prefix}-off", "echo", "per_second")),
            ratio(med(f"{prefix}-on", "echo", "p99_us"), med(f"{prefix}-off", "echo", "p99_us")))

def idle_table(feature, prefix):
    print(f"\n### Memory per idle connection ({idle:,} connections; median of {len(runs(prefix + '-on', 'idle'))} runs)\n")
    print(f"| {feature} | RSS before | RSS with {idle:,} connections | bytes per connection |")
    print("|---|---:|---:|---:|")
    for side in ["off", "on"]:
        s = f"{prefix}-{side}"
        print(f"| {side} | {med(s,'idle','rss_before_kib'):,.0f} KiB | {med(s,'idle','rss_after_kib'):,.0f} KiB | {idle_per_connection(s):,.0f} |")
    return ratio(idle_per_connection(f"{prefix}-on"), idle_per_connection(f"{prefix}-off"))

if runs("sessions-on", "echo"):
    print("\n## Resumable sessions on and off (wsfn-client on both sides)")
    throughput, p99 = echo_table("sessions", "sessions")
    memory = idle_table("sessions", "sessions")
    print(f"\n- on / off throughput: **{throughput:.2f}** (target ≥ 0.9)")
    print(f"- on / off p99: **{p99:.2f}**")
    print(f"- on / off bytes per idle connection: **{memory:.2f}** (target ≤ 1.25)")

if runs("storm", "storm"):
    storms = runs("storm", "storm")
    print(f"\n## Resume storm: {storm_sessions:,} sessions cut at once, {storm_messages} messages published to them while away, "
          f"all resumed {storm_resume_ms} ms after the cut ({len(storms)} runs)\n")
    print("| run | all caught up, ms after the cut | ms after resuming began | publishes answered, ms | resumed | reset | a message twice |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for i, r in enumerate(storms, 1):
        print(f"| {i} | {r['caught_up_ms']:,.0f} | {r['after_resume_ms']:,.0f} | {r['published_ms']:,.0f} | "
              f"{r['resumed']:,} | {r['resets']} | {r['repeated']} |")
    print(f"\n- time until every session had every message: **{med('storm','storm','caught_up_ms'):,.0f} ms** after the cut, "
          f"**{med('storm','storm','after_resume_ms'):,.0f} ms** after the resumes began (medians)")

if runs("deflate-on", "bytes"):
    print("\n## permessage-deflate on and off (wsfn-client on both sides)")
    print(f"\n### The chat sample's JSON: {connections} connections, each alone in its room, {chat_size}-byte lines "
          f"(median of {len(runs('deflate-on', 'bytes'))} runs)\n")
    print("| deflate | msg/s | p50 µs | p99 µs | line, bytes | sent on the wire per message | JSON event, bytes | received on the wire per message |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for side in ["off", "on"]:
        s = f"deflate-{side}"
        print(f"| {side} | {med(s,'bytes','per_second'):,.0f} | {med(s,'bytes','p50_us'):.0f} | {med(s,'bytes','p99_us'):.0f} | "
              f"{med(s,'bytes','payload_sent_per_message'):.0f} | {med(s,'bytes','wire_sent_per_message'):.1f} | "
              f"{med(s,'bytes','payload_received_per_message'):.0f} | {med(s,'bytes','wire_received_per_message'):.1f} |")
    wire = lambda key: ratio(med("deflate-on", "bytes", key), med("deflate-off", "bytes", key))
    chat_rate = ratio(med("deflate-on", "bytes", "per_second"), med("deflate-off", "bytes", "per_second"))
    throughput, p99 = echo_table("deflate", "deflate")
    memory = idle_table("deflate", "deflate")
    print(f"\n### Publish of a {chat_size}-byte chat line to a group of {members:,} members, until the last one received "
          f"(median of {len(runs('deflate-on', 'broadcast'))} runs of 5 rounds)\n")
    print("| deflate | median ms | rounds ms |")
    print("|---|---:|---|")
    for side in ["off", "on"]:
        s = f"deflate-{side}"
        rounds = ", ".join(f"{t:.1f}" for r in runs(s, "broadcast") for t in r["rounds_ms"])
        print(f"| {side} | {med(s,'broadcast','median_ms'):.1f} | {rounds} |")
    publish = ratio(med("deflate-on", "broadcast", "median_ms"), med("deflate-off", "broadcast", "median_ms"))
    print(f"\n- chat JSON on the wire, on / off: received **{wire('wire_received_per_message'):.2f}**, "
          f"sent **{wire('wire_sent_per_message'):.2f}**; chat msg/s on / off **{chat_rate:.2f}**")
    print(f"- echo on / off throughput: **{throughput:.2f}**, p99: **{p99:.2f}**")
    print(f"- on / off bytes per idle connection: **{memory:.2f}** (target 0.9–1.1)")
    print(f"- on / off publish time: **{publish:.2f}** (target ≤ 1.2)")
EOF
