//! Protocol conformance of the WebSocket front, case by case against RFC 6455, organised after
//! the categories of the Autobahn testsuite (1 framing, 2 pings and pongs, 3 reserved bits,
//! 4 opcodes, 5 fragmentation, 6 UTF-8, 7 close handling, 9 limits, 10 miscellaneous) plus
//! the opening handshake. Every test talks to the real host through [`RawSocket`], which puts
//! exactly the bytes under test on the wire and checks every frame that comes back.
//!
//! The `echo` function replies to every message with the same message, so what comes back
//! shows what the host delivered.

mod closing;
mod compression;
mod fragmentation;
mod framing;
mod handshake;
mod limits;
mod misc;
mod opcodes;
mod pings;
mod reserved_bits;
mod utf8;

use crate::support::{Host, RawSocket};

/// Close codes of RFC 6455 §7.4.1.
const NORMAL_CLOSURE: u16 = 1000;
const PROTOCOL_ERROR: u16 = 1002;
const INVALID_PAYLOAD: u16 = 1007;
const MESSAGE_TOO_BIG: u16 = 1009;

async fn echo_host() -> Host {
    Host::builder().function("echo").start().await
}

/// A connection to `echo` that has shown it works by echoing one message, so a close that
/// follows is the answer to what the test sends next and not to something before it.
async fn working_connection(host: &Host) -> RawSocket {
    let mut socket = host.raw_connect("echo").await;
    socket.send(crate::support::RawFrame::text("ready")).await;
    socket.expect_text("ready").await;
    socket
}

/// `len` bytes of every value, in an order that does not repeat at power-of-two strides, so
/// a dropped, repeated or misplaced chunk changes what comes back.
fn binary_payload(len: usize) -> Vec<u8> {
    (0..len)
        .map(|index| (index.wrapping_mul(31) ^ (index >> 8)) as u8)
        .collect()
}

/// `len` bytes of printable ASCII (so also exactly `len` bytes of UTF-8), not repeating at
/// power-of-two strides.
fn text_payload(len: usize) -> String {
    (0..len)
        .map(|index| char::from(b' ' + ((index * 7 + index / 95) % 95) as u8))
        .collect()
}
