#!/usr/bin/env bash
# Writes the seed corpus of every fuzz target into fuzz/corpus/<target>/ (not committed: this
# script makes it again): the frames of the conformance tests' Autobahn categories (framing,
# pings, reserved bits, opcodes, fragmentation, UTF-8, closing, limits, compression), real
# opening handshakes (browser-like, permessage-deflate offers, subprotocols, sessions, a
# valid signed URL), real admin API requests, the example config file, and session control
# messages. Targets that take structured input start from a few deterministic byte strings.
#
# Usage: scripts/fuzz-seeds.sh [OUTPUT_DIR]   (default fuzz/corpus)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
out="${1:-fuzz/corpus}"
mkdir -p "$out"
python3 - "$out" <<'PY'
import hashlib, hmac, os, random, struct, sys, zlib

out = sys.argv[1]
MASK = bytes([0x37, 0xFA, 0x21, 0x3D])

def seed(target, name, data):
    d = os.path.join(out, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)

def frame(first, payload=b"", masked=True):
    n = len(payload)
    b = bytes([first])
    m = 0x80 if masked else 0
    if n < 126:
        b += bytes([m | n])
    elif n <= 0xFFFF:
        b += bytes([m | 126]) + struct.pack(">H", n)
    else:
        b += bytes([m | 127]) + struct.pack(">Q", n)
    if masked:
        b += MASK + bytes(c ^ MASK[i % 4] for i, c in enumerate(payload))
    else:
        b += payload
    return b

def deflate(data):
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    body = c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)
    return body[:-4] if body.endswith(b"\x00\x00\xff\xff") else body

def close(code=None, reason=b""):
    return frame(0x88, b"" if code is None else struct.pack(">H", code) + reason)

TEXT, BIN, CONT, PING, PONG = 0x1, 0x2, 0x0, 0x9, 0xA
FIN = 0x80
utf8 = "κόσμε Hello-µ@ßöäüàá-UTF-8!! 😀".encode()

# Conversations by Autobahn category: (name, bytes, compression negotiated).
cases = [
    # 1 framing
    ("1-text-empty", frame(FIN | TEXT) + close(1000), False),
    ("1-text-125", frame(FIN | TEXT, b"*" * 125), False),
    ("1-text-126", frame(FIN | TEXT, b"*" * 126), False),
    ("1-text-65535", frame(FIN | TEXT, b"*" * 65535), False),
    ("1-binary-65536", frame(FIN | BIN, bytes(range(256)) * 256), False),
    ("1-binary-small", frame(FIN | BIN, b"\xfe\xff\x00") + close(1000, b"bye"), False),
    # 2 pings and pongs
    ("2-ping-empty", frame(FIN | PING), False),
    ("2-ping-125", frame(FIN | PING, b"\xfe" * 125), False),
    ("2-ping-126", frame(FIN | PING, b"x" * 126), False),
    ("2-unsolicited-pong", frame(FIN | PONG, b"p") + frame(FIN | TEXT, b"after"), False),
    ("2-ping-fragmented", frame(PING, b"x"), False),
    # 3 reserved bits
    ("3-rsv1", frame(FIN | 0x40 | TEXT, b"x"), False),
    ("3-rsv2", frame(FIN | 0x20 | TEXT, b"x"), False),
    ("3-rsv3-ping", frame(FIN | 0x10 | PING), False),
    # 4 opcodes
    ("4-opcode-3", frame(FIN | 0x3), False),
    ("4-opcode-b", frame(FIN | 0xB, b"x"), False),
    # 5 fragmentation
    ("5-two-fragments", frame(TEXT, b"frag") + frame(FIN | CONT, b"ment"), False),
    ("5-ping-between", frame(TEXT, b"a") + frame(FIN | PING, b"p") + frame(FIN | CONT, b"b"), False),
    ("5-orphan-continuation", frame(FIN | CONT, b"x"), False),
    ("5-unfinished-then-new", frame(TEXT, b"a") + frame(FIN | TEXT, b"b"), False),
    ("5-many-empty", frame(BIN) + frame(CONT) + frame(CONT) + frame(FIN | CONT), False),
    ("5-fragmented-close", frame(0x08, b"\x03\xe8"), False),
    # 6 UTF-8
    ("6-valid", frame(FIN | TEXT, utf8), False),
    ("6-split-in-character", frame(TEXT, utf8[:2]) + frame(FIN | CONT, utf8[2:]), False),
    ("6-byte-per-fragment", b"".join(frame((FIN if i == len(utf8) - 1 else 0) | (TEXT if i == 0 else CONT), utf8[i:i + 1]) for i in range(len(utf8))), False),
    ("6-invalid", frame(FIN | TEXT, b"ok\xff"), False),
    ("6-invalid-in-continuation", frame(TEXT, b"ok") + frame(FIN | CONT, b"\xc0\xaf"), False),
    ("6-ends-in-character", frame(FIN | TEXT, "é".encode()[:1]), False),
    ("6-surrogate", frame(FIN | TEXT, b"\xed\xa0\x80"), False),
    ("6-overlong", frame(FIN | TEXT, b"\xf0\x80\x80\xaf"), False),
    # 7 closing
    ("7-close-empty", close(), False),
    ("7-close-one-byte", frame(0x88, b"\x03"), False),
    ("7-close-1000-reason", close(1000, "bye ✓".encode()), False),
    ("7-close-1005", close(1005), False),
    ("7-close-999", close(999), False),
    ("7-close-4999", close(4999), False),
    ("7-close-invalid-reason", close(1000, b"\xff"), False),
    ("7-close-125", close(1000, b"r" * 123), False),
    ("7-after-close", close(1000) + frame(FIN | TEXT, b"late"), False),
    # 9 limits
    ("9-64k-in-fragments", b"".join(frame((FIN if i == 15 else 0) | (BIN if i == 0 else CONT), b"\x00" * 4096) for i in range(16)), False),
    ("9-length-msb", bytes([0x82, 0xFF]) + b"\x80" + b"\x00" * 7 + MASK, False),
    ("9-length-64bit", bytes([0x82, 0xFF]) + struct.pack(">Q", 1 << 40) + MASK, False),
    # 10 miscellaneous
    ("10-unmasked", frame(FIN | TEXT, b"x", masked=False), False),
    # 12/13 compression
    ("13-compressed-text", frame(FIN | 0x40 | TEXT, deflate(b"Hello " * 50)), True),
    ("13-compressed-fragments", (lambda d: frame(0x40 | TEXT, d[:5]) + frame(FIN | CONT, d[5:]))(deflate(utf8 * 20)), True),
    ("13-compressed-bomb", frame(FIN | 0x40 | BIN, deflate(b"\x00" * 200000)), True),
    ("13-compressed-invalid", frame(FIN | 0x40 | BIN, b"\xff\xff\xff\xff"), True),
    ("13-compressed-continuation-rsv1", frame(0x40 | TEXT, deflate(b"a")) + frame(FIN | 0x40 | CONT, b"x"), True),
    ("13-compressed-ping", frame(FIN | 0x40 | PING), True),
]
for name, data, compression in cases:
    for limit, read_size in ((65535, 255), (1023, 0), (65535, 3)):
        flags = (read_size << 2) | (1 if compression else 0)
        seed("frame_reader", f"{name}-{limit}-{read_size}", struct.pack("<H", limit) + bytes([flags & 0xFF]) + data)
# Session messages in frames (flag 2: a session socket).
for i, text in enumerate([b"mhello", b"a0", b"a18446744073709551615", b"r" + b"0f" * 16 + b" 3", b"x"]):
    seed("frame_reader", f"session-{i}", struct.pack("<H", 4096) + bytes([2 | (255 << 2) & 0xFF]) + frame(FIN | TEXT, text))

# Session control messages: a kind byte (1: text frames), then the message.
for i, (text, msg) in enumerate([
    (1, b"mhello"), (0, b"m\x00\xff"), (1, b"a0"), (1, b"a42"), (1, b"a18446744073709551615"),
    (1, b"a18446744073709551616"), (1, b"a007"), (0, b"a1"), (1, b"r" + b"0123456789abcdef" * 2 + b" 0"),
    (1, b"rABCDEF 12"), (1, b"r 1"), (1, b"r" + b"f" * 70 + b" 1"), (1, b""), (1, b"z"),
    (1, b"0123456789abcdef0123456789ABCDEF"),
]):
    seed("session_frames", f"seed-{i}", bytes([text]) + msg)

# Opening handshakes.
KEY = "dGhlIHNhbXBsZSBub25jZQ=="
def handshake(path, extra=""):
    return (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n")

def signed(function, pairs, expires):
    # The host's canonical MAC input: domain, function, pair count, pairs, expiry.
    key = bytes([7] * 32)
    mac = hmac.new(key, digestmod=hashlib.sha256)
    field = lambda b: mac.update(struct.pack(">Q", len(b)) + b)
    mac.update(b"wsfn signed url v1\0")
    field(function.encode())
    mac.update(struct.pack(">Q", len(pairs)))
    for k, v in pairs:
        field(k.encode()); field(v.encode())
    mac.update(struct.pack(">Q", expires))
    from urllib.parse import urlencode
    return f"/{function}?" + urlencode(pairs + [("wsfn-expires", str(expires)), ("wsfn-signature", mac.hexdigest())])

handshakes = {
    "plain": handshake("/echo"),
    "browser": handshake("/echo?room=lobby&user=%C3%A9", "Origin: http://localhost:8080\r\nUser-Agent: Mozilla/5.0\r\nSec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"),
    "subprotocols": handshake("/echo", "Sec-WebSocket-Protocol: chat.v2, chat.v1\r\nSec-WebSocket-Protocol: json\r\n"),
    "deflate-offers": handshake("/echo", "Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=8, permessage-deflate; server_max_window_bits=\"10\"; client_no_context_takeover\r\n"),
    "deflate-bad": handshake("/echo", "Sec-WebSocket-Extensions: permessage-deflate; foo, permessage-deflate; server_max_window_bits=16, x-webkit-deflate-frame\r\n"),
    "session-new": handshake("/echo?wsfn-session=1"),
    "session-resume": handshake("/echo?wsfn-session=1&wsfn-resume=0123456789abcdef0123456789abcdef"),
    "session-v2": handshake("/echo?wsfn-session=2"),
    "signed-valid": handshake(signed("signed", [("room", "lobby"), ("user", "ana")], 4102444800)),
    "signed-tampered": handshake(signed("signed", [("room", "lobby")], 4102444800).replace("lobby", "admin")),
    "signed-missing": handshake("/signed?room=lobby"),
    "signed-repeated": handshake("/echo?wsfn-expires=1&wsfn-expires=2&wsfn-signature=00"),
    "no-upgrade": "GET /echo HTTP/1.1\r\nHost: x\r\n\r\n",
    "version-8": handshake("/echo").replace("Version: 13", "Version: 8"),
    "no-key": handshake("/echo").replace(f"Sec-WebSocket-Key: {KEY}\r\n", ""),
    "post": handshake("/echo").replace("GET", "POST"),
}
for name, text in handshakes.items():
    seed("handshake", name, text)

# Admin API requests, as the README and the end-to-end tests make them.
admin = {
    "healthz": "GET /healthz\n\n",
    "openapi": "GET /v1/openapi.json\n\n",
    "list-functions": "GET /v1/functions\n\n",
    "get-function": "GET /v1/functions/echo\n\n",
    "put-function": "PUT /v1/functions/echo\ncontent-type: application/wasm\n\n\x00asm\x0d\x00\x01\x00",
    "put-core-module": "PUT /v1/functions/echo\n\n\x00asm\x01\x00\x00\x00",
    "delete-function": "DELETE /v1/functions/echo\n\n",
    "versions": "GET /v1/functions/echo/versions\n\n",
    "rollback": "POST /v1/functions/echo/rollback\ncontent-type: application/json\n\n{\"version\": 1}",
    "signed-url": "POST /v1/functions/echo/signed-url\ncontent-type: application/json\n\n{\"query\": [[\"room\", \"lobby\"]], \"ttl_seconds\": 60}",
    "signed-url-object": "POST /v1/functions/echo/signed-url\ncontent-type: application/json\n\n{\"query\": {\"room\": \"lobby\"}}",
    "connections": "GET /v1/functions/echo/connections\n\n",
    "send": "POST /v1/connections/0123456789abcdef0123456789abcdef/send\n\nhello",
    "send-binary": "POST /v1/connections/0123456789abcdef0123456789abcdef/send?binary=true\ncontent-type: application/octet-stream\n\n\x00\x01",
    "close": "DELETE /v1/connections/0123456789abcdef0123456789abcdef?code=4000&reason=bye\n\n",
    "close-bad-code": "DELETE /v1/connections/zz?code=1006\n\n",
    "publish": "POST /v1/functions/echo/groups/lobby/send\n\nhello all",
    "metrics": "GET /metrics\n\n",
    "no-token": "GET /v1/functions\nauthorization: Bearer wrong\n\n",
    "unknown": "PATCH /v1/nothing\n\n",
}
for name, text in admin.items():
    seed("admin_api", name, text)

# Config files: the example, and small ones of each kind of value.
with open("wsfn.example.toml", "rb") as f:
    seed("config_file", "example", f.read())
configs = {
    "limits": "[limits]\nmax-message-size = \"64KiB\"\nmax-connections = 100\nidle-timeout-ms = 30000\n",
    "function": "[functions.echo]\npath = \"echo.wasm\"\nrequire-signed-url = true\n",
    "listen": "listen = \"127.0.0.1:0\"\nstore = \"memory\"\n",
    "unknown": "no-such-option = 1\n",
    "bad-size": "[limits]\nmax-message-size = \"12 parsecs\"\n",
    "not-toml": "[limits\n=",
}
for name, text in configs.items():
    seed("config_file", name, text)

# --redis values: every shape, and the mistakes the parser names.
addresses = {
    "one": "redis://127.0.0.1:6379/",
    "password": "redis://:a-long-password-here@127.0.0.1:6379/0",
    "seeds": "redis://127.0.0.1:7000/, redis://127.0.0.1:7001/",
    "sentinel": "redis+sentinel://127.0.0.1:26379,127.0.0.1:26380/mymaster",
    "sentinel-no-name": "redis+sentinel://127.0.0.1:26379",
    "sentinel-no-port": "redis+sentinel://ann:secret123@127.0.0.1/main",
    "not-a-url": "localhost:6379",
    "empty": " , ",
}
for name, text in addresses.items():
    seed("redis_address", name, text)

# Import programs for the `imports` fixture: every operation with every length at or next to
# a limit, one program per operation, and a close followed by sends.
for op in range(14):
    seed("guest_imports", f"op-{op}", bytes(b for size in range(14) for b in (op, size, size * 17 % 256)))
seed("guest_imports", "close-then-send", bytes([7, 129, 0, 5, 130, 1, 11, 131, 2, 8, 132, 3]))
seed("guest_imports", "unknown-ids", bytes([6, 6, 0, 6, 7, 1, 6, 128, 2]))
seed("guest_imports", "many", bytes([12, 13, 0, 12, 8, 1, 10, 130, 5]))

# Structured targets: a few deterministic byte strings to start from.
rng = random.Random(6455)
for target in ("message_model", "inflate", "signed_url", "session_retention"):
    for i, size in enumerate((0, 16, 64, 256, 1024)):
        seed(target, f"random-{i}", bytes(rng.randrange(256) for _ in range(size)))
PY
for dir in "$out"/*/; do
    echo "$(basename "$dir"): $(find "$dir" -type f | wc -l) seeds"
done
