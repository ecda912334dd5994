#!/usr/bin/env bash
# Installs wsfn-host the way the README says (`cargo install --path host`) into a directory of
# its own, then, from outside the checkout, does what a new user does: `wsfn-host new hello`,
# `./build.sh`, `wsfn-host run hello.wasm`, and checks that the function answers over a real
# WebSocket. It also reports the installed binary's size.
#
# Not part of ./scripts/test.sh: `cargo install` is a release build (about 13 minutes on two
# cores the first time). Run it by hand, or in a release check.
#
# Usage: scripts/install-test.sh      Environment: CARGO_TARGET_DIR is honoured (a warm one
# makes the install quick).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly root
say() { echo "install-test: $*" >&2; }
die() {
    say "FAILED: $*"
    exit 1
}

work=$(mktemp -d)
host_pid=
cleanup() {
    [[ -n $host_pid ]] && kill "$host_pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

# The install is made from a copy of the checkout (its files as they are now), which is deleted
# before `new` runs: the binary then cannot find a checkout's SDK, as on a user's machine.
mkdir -p "$work/checkout"
(cd "$root" && git ls-files -z --cached --others --exclude-standard |
    tar --null -T - -cf - 2>/dev/null) | tar -xf - -C "$work/checkout"
say "cargo install --path host --root $work/install (from a copy of the checkout)"
cargo install --quiet --locked --path "$work/checkout/host" --root "$work/install"
rm -rf "$work/checkout"
binary="$work/install/bin/wsfn-host"
[[ -x $binary ]] || die "cargo install left no $binary"
say "installed binary: $(wc -c <"$binary" | tr -d ' ') bytes"

export PATH="$work/install/bin:$PATH"
mkdir -p "$work/away" && cd "$work/away"
wsfn-host new hello | tee new.log
grep -q "wsfn-sdk" new.log || die "new did not write its bundled SDK: $(cat new.log)"
[[ -f hello/wsfn-sdk/Cargo.toml && -f hello/wit/function.wit ]] || die "the bundled SDK or WIT is missing"

say "./build.sh"
(cd hello && ./build.sh) || die "./build.sh failed"
[[ -f hello/hello.wasm ]] || die "./build.sh wrote no hello.wasm"

(cd hello && exec wsfn-host run --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 hello.wasm) \
    >"$work/run.log" 2>&1 &
host_pid=$!
for _ in $(seq 1 300); do
    address=$(grep -o 'ws://127\.0\.0\.1:[0-9]*' "$work/run.log" | head -n 1 || true)
    [[ -n $address ]] && break
    kill -0 "$host_pid" 2>/dev/null || die "wsfn-host run exited: $(cat "$work/run.log")"
    sleep 0.1
done
[[ -n $address ]] || die "wsfn-host run never said where it listens: $(cat "$work/run.log")"

# A WebSocket conversation by hand (RFC 6455: the handshake, one masked text frame, the
# echo back), so the check needs nothing but python3.
reply=$(python3 - "${address#ws://}" <<'PY'
import base64, os, socket, sys
host, port = sys.argv[1].split(":")
s = socket.create_connection((host, int(port)), timeout=10)
key = base64.b64encode(os.urandom(16)).decode()
s.sendall((f"GET /hello?name=ann HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
head = b""
while b"\r\n\r\n" not in head:
    head += s.recv(1)
if not head.startswith(b"HTTP/1.1 101"):
    sys.exit(f"handshake refused: {head.decode(errors='replace').splitlines()[0]}")
def exchange(text):
    payload, mask = text.encode(), os.urandom(4)
    s.sendall(bytes([0x81, 0x80 | len(payload)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))
    first, second = s.recv(1), s.recv(1)
    data = b""
    while len(data) < second[0] & 0x7F:
        data += s.recv((second[0] & 0x7F) - len(data))
    return data.decode()
print(exchange("whoami"))
PY
) || die "the WebSocket check failed: $reply $(cat "$work/run.log")"
[[ $reply == ann ]] || die "/hello answered 'whoami' with '$reply', not 'ann'"
say "ok: installed, scaffolded, built and served /hello from outside the checkout (whoami -> $reply)"
