//! Guest-side: a host runs in this process with the `imports` test fixture deployed
//! (tests/fixtures/imports, built by scripts/build-functions.sh), and each input is a program
//! of import calls the fixture makes from inside WebAssembly — key-value gets, sets, deletes
//! and counters, bucket names, sends (to itself, to ids that do not exist, after its own
//! close), closes, joins, leaves, publishes, attachments, send-many with huge id lists — with
//! lengths at and next to every documented limit, sent over a real WebSocket.
//!
//! Asserted: the host never panics (a panic anywhere aborts the process); every import
//! answers as the README's limits say (the fixture checks each answer and traps on a wrong
//! one, which the host reports by closing with 1011); the host answers the message that
//! follows the program, so no call left the connection stuck.
#![no_main]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::LazyLock;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use wsfn_fuzz::{client_frame, take_server_frame};
use wsfn_host::launch::{ComponentFile, RunningHost, Secret, Settings, start};
use wsfn_host::state::StoreKind;

const MASK: [u8; 4] = [0x12, 0x34, 0x56, 0x78];

struct Running {
    _runtime: tokio::runtime::Runtime,
    _host: RunningHost,
    address: SocketAddr,
}

static HOST: LazyLock<Running> = LazyLock::new(|| {
    let component = std::env::var_os("WSFN_FUZZ_IMPORTS_WASM")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/functions/imports.wasm")
        });
    assert!(
        component.is_file(),
        "{} is missing: build it with scripts/build-functions.sh",
        component.display()
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let dir = std::env::temp_dir().join(format!("wsfn-fuzz-imports-{}", std::process::id()));
    let mut settings = Settings::new(&dir);
    settings.listen = "127.0.0.1:0".parse().expect("an address");
    settings.admin_listen = "127.0.0.1:0".parse().expect("an address");
    settings.store = StoreKind::Memory;
    settings.admin_token = Some(Secret::Value(
        "fuzz-admin-token-0123456789abcdef".to_owned(),
    ));
    settings.functions = vec![ComponentFile {
        name: "imports".to_owned(),
        path: component,
    }];
    let host = runtime
        .block_on(start(settings))
        .expect("an in-process host starts");
    Running {
        address: host.address(),
        _runtime: runtime,
        _host: host,
    }
});

fuzz_target!(|program: &[u8]| {
    let program = &program[..program.len().min(3 * 32)];
    let mut socket = TcpStream::connect(HOST.address).expect("connect to the host");
    socket
        .set_read_timeout(Some(Duration::from_secs(60)))
        .expect("a read timeout");
    let request = "GET /imports HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n\
                   Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
                   Sec-WebSocket-Version: 13\r\n\r\n";
    socket
        .write_all(request.as_bytes())
        .expect("send the handshake");
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 65536];
    let head_end = loop {
        if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let n = match socket.read(&mut chunk) {
            Ok(n) => n,
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(error) => panic!("no answer to the handshake: {error}"),
        };
        assert!(n > 0, "the host closed during the handshake");
        buffer.extend_from_slice(&chunk[..n]);
    };
    assert!(
        buffer.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&buffer)
    );
    buffer.drain(..head_end);

    let mut frames = Vec::new();
    client_frame(&mut frames, 0x82, program, MASK);
    client_frame(&mut frames, 0x81, b"done", MASK);
    socket.write_all(&frames).expect("send the program");

    loop {
        while let Some(frame) = take_server_frame(&mut buffer) {
            match frame.opcode {
                0x1 if frame.payload == b"done" => {
                    let mut close = Vec::new();
                    client_frame(&mut close, 0x88, &1000u16.to_be_bytes(), MASK);
                    let _ = socket.write_all(&close);
                    return;
                }
                0x8 => {
                    let code = match frame.payload[..] {
                        [hi, lo, ..] => u16::from_be_bytes([hi, lo]),
                        _ => 1005,
                    };
                    let reason = String::from_utf8_lossy(frame.payload.get(2..).unwrap_or(&[]));
                    assert_ne!(code, 1011, "the function failed: {reason}");
                    return;
                }
                _ => {}
            }
        }
        let n = match socket.read(&mut chunk) {
            Ok(n) => n,
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(error) => panic!("no answer from the host: {error}"),
        };
        assert!(n > 0, "the host closed the socket without a close frame");
        buffer.extend_from_slice(&chunk[..n]);
    }
});
